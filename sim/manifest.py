"""The manifest of a run: what has been committed, so a run can be resumed.

``DIR/<run_id>/manifest.json`` is rewritten atomically after every unit of
work whose Parquet files are all on disk. A unit of work is committed only
once it is listed here; files of an uncommitted unit (a crash between
writing its files and listing it) are simply rewritten on resume, under the
same names, so nothing is duplicated.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["running", "interrupted", "complete", "failed"]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str
    experiment: str
    seed: int
    config_hash: str
    generation: int = 0  # evolution generation (0 outside the evolution loop)
    status: Status = "running"
    segments: int
    committed: list[int] = Field(default_factory=list)
    checkpoint: int | None = None  # latest unit of work whose replica snapshots are complete on disk
    started_at: str = Field(default_factory=_now)
    updated_at: str = Field(default_factory=_now)
    resumes: int = 0
    worker_restarts: int = 0
    note: str = ""

    @property
    def next_segment(self) -> int:
        return max(self.committed) + 1 if self.committed else 0

    def save(self, run_dir: Path) -> None:
        self.updated_at = _now()
        path = run_dir / "manifest.json"
        tmp = path.with_name(f"manifest.json.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(self.model_dump(), indent=2) + "\n", "utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)  # the previous manifest stays the truth
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc

    @classmethod
    def load(cls, run_dir: Path) -> Manifest:
        return cls.model_validate_json((run_dir / "manifest.json").read_text("utf-8"))
