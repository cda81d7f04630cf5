"""Secrets kept in the data folder: generated once, never overwritten, never raced."""
from __future__ import annotations

import os
from typing import Callable


def load_or_create(path: str, generate: Callable[[], bytes]) -> bytes:
    """Return the secret in `path`, creating it with `generate()` if it does not exist.

    The file is written to a temporary name and hard-linked into place: the link fails if
    another process got there first, so every process ends up with the same secret and
    nobody ever reads a half-written file.
    """
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    temp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(generate())
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            pass  # another process won; use its secret
    finally:
        os.unlink(temp)
    with open(path, "rb") as f:
        return f.read()
