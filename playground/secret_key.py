"""The secret key of a process that was given none: made once, kept in the data directory.

Every process of one site must sign with the same key (a session cookie set by one is read by
another), and a restart must not log everyone out; so the first process to start writes a
random key to ``DATA_DIR/secret_key`` and every later one reads it. There is no development
default: a served process never signs with a key anyone could read in the source.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

FILE_NAME = "secret_key"
KEY_BYTES = 50  # token_urlsafe(50): 67 characters, well past Django's check (50, 5 unique)


def kept_secret_key(data_dir: Path) -> str:
    """The key in ``data_dir/secret_key``, written first (mode 0600) if there is none.

    Two processes starting at once both try to create the file exclusively: one writes, the
    other reads what it wrote (retrying while the file is still empty)."""
    path = data_dir / FILE_NAME
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"Cannot create {path} for the generated secret key ({exc.strerror}); "
            "set SECRET_KEY (or SECRET_KEY_FILE), or DATA_DIR to a writable directory."
        ) from exc
    key = secrets.token_urlsafe(KEY_BYTES)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    return key


def _read(path: Path) -> str:
    for _ in range(50):  # another process may be between creating the file and writing it
        try:
            key = path.read_text(encoding="ascii").strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"Cannot read {path} ({exc.strerror}).") from exc
        if key:
            return key
        time.sleep(0.02)
    raise ImproperlyConfigured(f"{path} is empty: delete it, and a new key is made at start.")
