"""A last line of defence: no bearer token, configured API key or share token is ever printed."""

from __future__ import annotations

import logging
import re

from django.conf import settings

BEARER_RE = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)
# A share token in a path: an old-form link (/s/<token>/), a link (/s/#<token>), a socket path.
SHARE_PATH_RE = re.compile(r"(/s/#?|/ws/share/)[A-Za-z0-9_-]+")
REDACTED = "[redacted]"


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = BEARER_RE.sub(rf"\g<1>{REDACTED}", message)
        cleaned = SHARE_PATH_RE.sub(rf"\g<1>{REDACTED}", cleaned)
        key = settings.OPENAI_API_KEY
        if key and len(key) >= 8:
            cleaned = cleaned.replace(key, REDACTED)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
