"""The persistent budget ledger and the DEFCON policy.

Every paid model call is reserved before it is made, settled with its real
cost afterwards, or released if it failed: reserve-before-call /
settle-after / release-on-failure. The ledger is a SQLite database in WAL
mode; a reservation runs in one ``BEGIN IMMEDIATE`` transaction (count
today's attacks and dollars, compare with the caps, insert), so caps hold
across threads and processes. A reservation that is never settled (a crash)
keeps counting against the caps: the ledger errs on the side of spending less.

Location: config ``budget.ledger``, else ``IMMUNE_LEDGER_PATH``, else
``<user data dir>/kosmoi-immune/ledger.sqlite``. Days and hours are UTC wall
clock: this is real money, not simulated time.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reservations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    day TEXT NOT NULL,
    hour TEXT NOT NULL,
    tier TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    estimate_usd REAL NOT NULL,
    cost_usd REAL,
    status TEXT NOT NULL CHECK (status IN ('reserved', 'settled', 'released')),
    run_id TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS reservations_day ON reservations (day, tier, status);
CREATE INDEX IF NOT EXISTS reservations_hour ON reservations (hour, tier, status);
"""


class Caps(BaseModel):
    """Limits for one tier at one DEFCON level (None = uncapped)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attacks_per_day: int | None = Field(default=None, ge=0)
    attacks_per_hour: int | None = Field(default=None, ge=0)
    usd_per_day: float | None = Field(default=None, ge=0)


DEFAULT_POLICY: dict[int, Caps] = {
    5: Caps(attacks_per_day=50, attacks_per_hour=2, usd_per_day=5.0),  # peace: local models plus a trickle of sniper attacks
    4: Caps(attacks_per_day=200, attacks_per_hour=20, usd_per_day=25.0),
    3: Caps(attacks_per_day=1_000, attacks_per_hour=100, usd_per_day=100.0),
    2: Caps(attacks_per_day=5_000, attacks_per_hour=1_000, usd_per_day=500.0),
    1: Caps(),  # active breach: uncapped
}


def default_ledger_path() -> Path:
    env = os.environ.get("IMMUNE_LEDGER_PATH")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("kosmoi-immune")) / "ledger.sqlite"


def _stamps(now: float) -> tuple[str, str]:
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    return moment.strftime("%Y-%m-%d"), moment.strftime("%Y-%m-%dT%H")


@dataclass(frozen=True, slots=True)
class Usage:
    """What one tier has used in the current day and hour."""

    attacks_today: int
    attacks_this_hour: int
    usd_today: float
    open_reservations: int


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a reservation was refused."""

    reason: str


class BudgetLedger:
    """Transactional ledger of paid model calls; safe across threads and processes."""

    def __init__(self, path: str | Path | None = None, *, clock=time.time) -> None:
        self.path = Path(path) if path is not None else default_ledger_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._local = threading.local()
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
        return db

    def _usage(self, db: sqlite3.Connection, tier: str, day: str, hour: str) -> Usage:
        row = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN status='settled' THEN cost_usd ELSE estimate_usd END), 0),"
            " SUM(status='reserved') FROM reservations WHERE day=? AND tier=? AND status!='released'",
            (day, tier),
        ).fetchone()
        in_hour = db.execute("SELECT COUNT(*) FROM reservations WHERE hour=? AND tier=? AND status!='released'", (hour, tier)).fetchone()[0]
        return Usage(int(row[0]), int(in_hour), float(row[1]), int(row[2] or 0))

    def usage(self, tier: str) -> Usage:
        day, hour = _stamps(self._clock())
        return self._usage(self._connect(), tier, day, hour)

    def reserve(self, tier: str, provider: str, model: str, estimate_usd: float, caps: Caps, run_id: str = "") -> int | Refusal:
        """Reserve one attack; returns the reservation id, or a Refusal naming the cap that binds."""
        day, hour = _stamps(self._clock())
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        try:
            used = self._usage(db, tier, day, hour)
            refusal = None
            if caps.attacks_per_day is not None and used.attacks_today >= caps.attacks_per_day:
                refusal = Refusal(f"daily cap of {caps.attacks_per_day} {tier} attacks reached")
            elif caps.attacks_per_hour is not None and used.attacks_this_hour >= caps.attacks_per_hour:
                refusal = Refusal(f"hourly cap of {caps.attacks_per_hour} {tier} attacks reached")
            elif caps.usd_per_day is not None and used.usd_today + estimate_usd > caps.usd_per_day + 1e-9:
                refusal = Refusal(f"daily budget of ${caps.usd_per_day:.2f} would be exceeded (${used.usd_today:.4f} used)")
            if refusal is not None:
                db.execute("ROLLBACK")
                return refusal
            cursor = db.execute(
                "INSERT INTO reservations (created_at, day, hour, tier, provider, model, estimate_usd, status, run_id) VALUES (?,?,?,?,?,?,?, 'reserved', ?)",
                (self._clock(), day, hour, tier, provider, model, float(estimate_usd), run_id),
            )
            db.execute("COMMIT")
            return int(cursor.lastrowid or 0)
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def settle(self, reservation: int, cost_usd: float, note: str = "") -> None:
        """Record the real cost of a call that was made."""
        self._connect().execute("UPDATE reservations SET status='settled', cost_usd=?, note=? WHERE id=? AND status='reserved'", (float(cost_usd), note[:200], reservation))

    def release(self, reservation: int, note: str = "") -> None:
        """Give back a reservation whose call failed before costing anything."""
        self._connect().execute("UPDATE reservations SET status='released', cost_usd=0, note=? WHERE id=? AND status='reserved'", (note[:200], reservation))

    def today(self) -> list[dict[str, object]]:
        """Per tier, provider and model: today's attacks and dollars."""
        day, _ = _stamps(self._clock())
        rows = self._connect().execute(
            "SELECT tier, provider, model, COUNT(*), COALESCE(SUM(CASE WHEN status='settled' THEN cost_usd ELSE estimate_usd END), 0), SUM(status='reserved')"
            " FROM reservations WHERE day=? AND status!='released' GROUP BY tier, provider, model ORDER BY tier, provider, model",
            (day,),
        ).fetchall()
        return [{"tier": t, "provider": p, "model": m, "attacks": int(n), "usd": float(u), "open": int(o or 0)} for t, p, m, n, u, o in rows]
