"""A lock per experiment, so two scheduled runs of the same experiment never overlap.

``<out>/.locks/<experiment>.lock`` held with ``flock`` for the whole run; the
kernel releases it when the process dies, so a crashed run never leaves a
stale lock behind. The file records who holds it, for the error message.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path


class LockHeld(RuntimeError):
    """Another run of the same experiment is in progress."""


@contextlib.contextmanager
def experiment_lock(out: Path, experiment: str) -> Iterator[Path]:
    directory = out / ".locks"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{experiment}.lock"
    handle = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise LockHeld(f"another run of {experiment!r} is in progress ({holder}); lock file {path}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}))
        handle.flush()
        yield path
    finally:
        handle.close()
