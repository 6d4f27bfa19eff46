"""A last line of defence: no bearer token or configured API key is ever printed."""

from __future__ import annotations

import logging
import re

from django.conf import settings

BEARER_RE = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)
REDACTED = "[redacted]"


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = BEARER_RE.sub(rf"\g<1>{REDACTED}", message)
        key = settings.OPENAI_API_KEY
        if key and len(key) >= 8:
            cleaned = cleaned.replace(key, REDACTED)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
