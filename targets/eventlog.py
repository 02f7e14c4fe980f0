"""The typed event log of one staging replica.

Rows are appended as tuples (one list append per event: the hot path) and
turned into an Arrow table of the ``events`` schema when drained. Sentinels
read the rows of each closed window through :meth:`EventLog.window`.
"""

from __future__ import annotations

from typing import NamedTuple

import pyarrow as pa

from kosmoi.schemas import EVENTS
from kosmoi.types import EventKind

EVENT_KINDS = frozenset(kind.value for kind in EventKind)


class EventRow(NamedTuple):
    event_id: int
    sim_time: float
    kind: str
    identity: str
    agent: str
    episode_id: str
    service: str
    ok: bool
    amount_usd: float
    detail: str


class EventLog:
    """Append-only event buffer with window reads and Arrow drains."""

    def __init__(self, replica: int) -> None:
        self.replica = replica
        self._rows: list[EventRow] = []
        self._next_id = replica << 40  # ids unique across replicas of a run
        self._window_start_index = 0

    def emit(
        self,
        sim_time: float,
        kind: EventKind,
        identity: str,
        agent: str,
        episode_id: str,
        service: str = "",
        ok: bool = True,
        amount_usd: float = 0.0,
        detail: str = "",
    ) -> int:
        """Append one event; returns its id."""
        event_id = self._next_id
        self._next_id += 1
        self._rows.append(EventRow(event_id, sim_time, kind.value, identity, agent, episode_id, service, ok, amount_usd, detail))
        return event_id

    def __len__(self) -> int:
        return len(self._rows)

    def pending_window(self) -> bool:
        """Whether any row was emitted since the last :meth:`window` call."""
        return self._window_start_index < len(self._rows)

    def window(self) -> list[EventRow]:
        """Rows emitted since the previous call (the window that just closed)."""
        rows = self._rows[self._window_start_index :]
        self._window_start_index = len(self._rows)
        return rows

    def drain(self, run_id: str) -> pa.Table:
        """Remove every buffered row and return them as an ``events`` table."""
        rows = self._rows
        self._rows = []
        self._window_start_index = max(0, self._window_start_index - len(rows))
        if not rows:
            return EVENTS.empty_table()
        columns = list(zip(*rows))
        arrays = [
            pa.array([run_id] * len(rows), pa.string()),
            pa.array([self.replica] * len(rows), pa.int32()),
            *(pa.array(col, EVENTS.field(i + 2).type) for i, col in enumerate(columns)),
        ]
        return pa.Table.from_arrays(arrays, schema=EVENTS)
