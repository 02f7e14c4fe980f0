"""The typed row builder: rows by field name, checked against the declared schema."""

from __future__ import annotations

import pytest

from kosmoi.schemas import SCHEMAS, RowBuffer

CALL = dict(
    episode_id="e1", campaign_id="c1", attempt=0, tier="grunt", provider="endpoint", model="m", status="ok", error="",
    input_tokens=10, output_tokens=5, cost_usd=0.0, latency_s=0.1, retries=0, sim_time=1.5,
)


def test_rows_by_name_drain_to_the_declared_schema_with_constants_filled_in():
    buffer = RowBuffer("calls", {"run_id": "r", "replica": 3})
    buffer.append(**CALL)
    buffer.append(**{**CALL, "attempt": 1})
    assert len(buffer) == 2
    table = buffer.drain()
    assert table.schema.equals(SCHEMAS["calls"]) and table.num_rows == 2
    assert table.column("replica").to_pylist() == [3, 3] and table.column("attempt").to_pylist() == [0, 1]
    assert len(buffer) == 0 and buffer.drain().num_rows == 0


def test_a_missing_or_misspelt_field_is_an_error_naming_it():
    buffer = RowBuffer("calls", {"run_id": "r", "replica": 0})
    with pytest.raises(KeyError, match=r"missing \['sim_time'\], unknown \['simtime'\]"):
        buffer.append(**{k: v for k, v in CALL.items() if k != "sim_time"}, simtime=1.0)
    with pytest.raises(KeyError, match="has no columns"):
        RowBuffer("calls", {"run": "r"})
    assert len(buffer) == 0  # the bad row left nothing behind
