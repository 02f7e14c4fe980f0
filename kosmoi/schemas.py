"""One Arrow schema per persisted table, each with a schema version.

The version travels in the schema metadata (``kosmoi.table`` and
``kosmoi.schema_version``) so every Parquet file says what it holds. Bump a
table's version whenever a column is added, removed or changes type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

TABLES = ("episodes", "events", "cases", "warrants", "calls")

SCHEMA_VERSIONS: dict[str, int] = {"episodes": 4, "events": 1, "cases": 2, "warrants": 1, "calls": 1}
CORPUS_SCHEMA_VERSION = 1  # the labelled-text corpora of evolve.corpus (not a run table)

_STR_LIST = pa.list_(pa.string())


def _with_version(name: str, fields: list[pa.Field], version: int | None = None) -> pa.Schema:
    version = SCHEMA_VERSIONS[name] if version is None else version
    meta = {b"kosmoi.table": name.encode(), b"kosmoi.schema_version": str(version).encode()}
    return pa.schema(fields, metadata=meta)


EPISODES = _with_version(
    "episodes",
    [
        pa.field("episode_id", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("generation", pa.int32(), nullable=False),
        pa.field("replica", pa.int32(), nullable=False),
        pa.field("campaign_id", pa.string(), nullable=False),
        pa.field("attempt", pa.int32(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("goal", pa.string(), nullable=False),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("tier", pa.string(), nullable=False),
        pa.field("generator", pa.string(), nullable=False),
        pa.field("identity", pa.string(), nullable=False),
        pa.field("agent", pa.string(), nullable=False),
        pa.field("techniques", _STR_LIST, nullable=False),
        pa.field("seed_id", pa.string(), nullable=False),  # v2: the library seed of an attack ("" otherwise)
        pa.field("parent_ids", _STR_LIST, nullable=False),
        pa.field("payload", pa.string(), nullable=False),
        pa.field("blocked_stage", pa.string(), nullable=True),
        pa.field("rule_ids", _STR_LIST, nullable=False),
        pa.field("input_action", pa.string(), nullable=False),
        pa.field("input_score", pa.float32(), nullable=False),
        pa.field("output_action", pa.string(), nullable=False),
        pa.field("breached", pa.bool_(), nullable=False),
        pa.field("damage_usd", pa.float64(), nullable=False),
        pa.field("secrets_leaked", pa.int32(), nullable=False),
        pa.field("records_exfiltrated", pa.int32(), nullable=False),
        pa.field("task_completed", pa.bool_(), nullable=True),
        pa.field("cost_usd", pa.float64(), nullable=False),
        pa.field("sim_time", pa.float64(), nullable=False),
        # v3: OWASP LLM 2025 and MITRE ATLAS ids (kosmoi.taxonomy); null in runs written before
        pa.field("owasp", _STR_LIST, nullable=True),
        pa.field("atlas", _STR_LIST, nullable=True),
        # v3: the planting episode whose retrieved document did this episode's damage (knowledge poisoning)
        pa.field("poisoned_by", pa.string(), nullable=True),
        # v4: conversations — the conversation an episode is a turn of, the turn (from 0) and the attacker's
        # multi-turn strategy; null for single messages and in runs written before
        pa.field("conversation_id", pa.string(), nullable=True),
        pa.field("turn", pa.int32(), nullable=True),
        pa.field("strategy", pa.string(), nullable=True),
    ],
)

EVENTS = _with_version(
    "events",
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("replica", pa.int32(), nullable=False),
        pa.field("event_id", pa.int64(), nullable=False),
        pa.field("sim_time", pa.float64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("identity", pa.string(), nullable=False),
        pa.field("agent", pa.string(), nullable=False),
        pa.field("episode_id", pa.string(), nullable=False),
        pa.field("service", pa.string(), nullable=False),
        pa.field("ok", pa.bool_(), nullable=False),
        pa.field("amount_usd", pa.float64(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
    ],
)

CASES = _with_version(
    "cases",
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("replica", pa.int32(), nullable=False),
        pa.field("case_id", pa.string(), nullable=False),
        pa.field("sentinel", pa.string(), nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("subject", pa.string(), nullable=False),
        pa.field("subject_kind", pa.string(), nullable=False),
        pa.field("severity", pa.int8(), nullable=False),
        pa.field("confidence", pa.float32(), nullable=False),
        pa.field("window_start", pa.float64(), nullable=False),
        pa.field("window_end", pa.float64(), nullable=False),
        pa.field("evidence", pa.list_(pa.int64()), nullable=False),
        # v2: OWASP LLM 2025 and MITRE ATLAS ids (kosmoi.taxonomy); null in runs written before
        pa.field("owasp", _STR_LIST, nullable=True),
        pa.field("atlas", _STR_LIST, nullable=True),
    ],
)

WARRANTS = _with_version(
    "warrants",
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("replica", pa.int32(), nullable=False),
        pa.field("warrant_id", pa.string(), nullable=False),
        pa.field("action", pa.string(), nullable=False),
        pa.field("subject", pa.string(), nullable=False),
        pa.field("subject_kind", pa.string(), nullable=False),
        pa.field("case_ids", _STR_LIST, nullable=False),
        pa.field("reasoning", pa.string(), nullable=False),
        pa.field("sim_time", pa.float64(), nullable=False),
        # Ground truth added by the simulator (the court never sees it):
        pa.field("subject_is_benign", pa.bool_(), nullable=False),
    ],
)

CALLS = _with_version(
    "calls",
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("replica", pa.int32(), nullable=False),
        pa.field("episode_id", pa.string(), nullable=False),
        pa.field("campaign_id", pa.string(), nullable=False),
        pa.field("attempt", pa.int32(), nullable=False),
        pa.field("tier", pa.string(), nullable=False),
        pa.field("provider", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),  # ok | error | refused | unparsable
        pa.field("error", pa.string(), nullable=False),
        pa.field("input_tokens", pa.int64(), nullable=False),
        pa.field("output_tokens", pa.int64(), nullable=False),
        pa.field("cost_usd", pa.float64(), nullable=False),
        pa.field("latency_s", pa.float64(), nullable=False),
        pa.field("retries", pa.int32(), nullable=False),
        pa.field("sim_time", pa.float64(), nullable=False),
    ],
)

CORPUS = _with_version(
    "corpus",
    [
        pa.field("text", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),  # attack | benign
        pa.field("category", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("licence", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("origin", pa.string(), nullable=False),
        pa.field("framing", pa.string(), nullable=False),
    ],
    CORPUS_SCHEMA_VERSION,
)

SCHEMAS: dict[str, pa.Schema] = {"episodes": EPISODES, "events": EVENTS, "cases": CASES, "warrants": WARRANTS, "calls": CALLS}


def schema_version(schema: pa.Schema) -> tuple[str, int] | None:
    """Return ``(table, version)`` recorded in a schema's metadata, or None."""
    meta = schema.metadata or {}
    table = meta.get(b"kosmoi.table")
    version = meta.get(b"kosmoi.schema_version")
    if table is None or version is None:
        return None
    return table.decode(), int(version)


class RowBuffer:
    """Rows of one table, appended by field name and drained as a schema-conforming Arrow table.

    ``constants`` are columns with one value for every row (a run id, a
    replica); every other field of the schema must be given on each append,
    and nothing else — a misspelt or forgotten field is an error at once, not
    a shifted column.
    """

    def __init__(self, table: str, constants: Mapping[str, Any] | None = None) -> None:
        self.table = table
        self.schema = SCHEMAS[table]
        self.constants = dict(constants or {})
        unknown = set(self.constants) - set(self.schema.names)
        if unknown:
            raise KeyError(f"{table} has no columns {sorted(unknown)}")
        self._fields = frozenset(name for name in self.schema.names if name not in self.constants)
        self._columns: dict[str, list[Any]] = {name: [] for name in self._fields}
        self._rows = 0

    def __len__(self) -> int:
        return self._rows

    def append(self, **values: Any) -> None:
        """One row, every non-constant field by name."""
        if values.keys() != self._fields:
            missing, extra = sorted(self._fields - values.keys()), sorted(values.keys() - self._fields)
            raise KeyError(f"{self.table} row: missing {missing}, unknown {extra}")
        columns = self._columns
        for name, value in values.items():
            columns[name].append(value)
        self._rows += 1

    def drain(self) -> pa.Table:
        """The rows so far as a table (the buffer is empty afterwards)."""
        if not self._rows:
            return self.schema.empty_table()
        n, columns = self._rows, self._columns
        self._columns, self._rows = {name: [] for name in self._fields}, 0
        data = {name: columns[name] if name in columns else [self.constants[name]] * n for name in self.schema.names}
        return pa.Table.from_pydict(data, schema=self.schema)


def to_table(table: str, columns: dict[str, list[Any]]) -> pa.Table:
    """Build a schema-conforming Arrow table from column lists."""
    return pa.Table.from_pydict(columns, schema=SCHEMAS[table])
