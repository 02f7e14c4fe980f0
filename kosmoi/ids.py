"""Stable ids and seed derivation.

Everything random in a run is derived from ``(seed, names...)`` through
BLAKE2b, never from process state, so results do not depend on how work is
spread over workers.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os

_U64 = float(1 << 64)


def stable_hash64(*parts: object) -> int:
    """A 64-bit hash of the parts' string forms, identical on every machine."""
    key = "\x1f".join(map(str, parts)).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def derive_seed(seed: int, *parts: object) -> int:
    """A child seed for a named sub-stream of a seeded run."""
    return stable_hash64("seed", seed, *parts)


def unit_interval(*parts: object) -> float:
    """A deterministic number in [0, 1) for the given parts."""
    return stable_hash64(*parts) / _U64


def episode_id(config_hash: str, seed: int, campaign_id: str, attempt: int) -> str:
    """Episode id: unique within and across runs of different configs/seeds, deterministic."""
    return format(stable_hash64("episode", config_hash, seed, campaign_id, attempt), "016x")


def new_run_id(now: _dt.datetime | None = None) -> str:
    """A run id that sorts by start time (UTC) and is unique: ``20261126T162300Z-3fa9c1``."""
    now = now or _dt.datetime.now(_dt.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{os.urandom(3).hex()}"
