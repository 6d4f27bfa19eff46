"""The collected static files every child serves, as ``make run`` collects them.

With DEBUG off a page names its static files by their hashed names, which exist only after
``collectstatic``; collecting takes a couple of seconds, so it happens once per content of the
files (the checkout's ``static/`` and the installed apps' versions), into the temporary folder,
and every test worker, live server and benchmark process shares the result.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from playground.static_files import MANIFEST

ROOT = Path(__file__).resolve().parent.parent
APPS_WITH_STATIC = ("django", "django-htmx", "whitenoise")


def fingerprint() -> str:
    digest = hashlib.sha256()
    for name in APPS_WITH_STATIC:
        digest.update(f"{name}=={metadata.version(name)}\n".encode())
    for path in sorted((ROOT / "static").rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@functools.cache
def collected_static() -> Path:
    """A STATIC_ROOT filled by ``manage.py collectstatic`` from this checkout."""
    target = Path(tempfile.gettempdir()) / f"playground-static-{fingerprint()}"
    if (target / MANIFEST).is_file():
        return target
    scratch = Path(tempfile.mkdtemp(prefix="playground-static-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "playground.settings",
        "STATIC_ROOT": str(scratch),
    }
    try:
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--no-input", "--verbosity", "0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    try:
        scratch.rename(target)  # atomic: another worker's finished copy is never half-replaced
    except OSError:  # another process got there first
        shutil.rmtree(scratch, ignore_errors=True)
    return target
