"""``immune scan``: JSON lines in, one verdict line out per input line.

Input lines are ``{"text": "..."}``. Output lines are
``{"verdict": "allow"|"flag"|"block", "rules": [...], "score": float}`` plus
``"text"`` (the redacted text) for the output stage. A line that is not valid
UTF-8, not JSON, not an object or has no string ``text`` gets
``{"error": "..."}``; the following lines go on. Lines are processed in
batches and output is flushed per batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import BinaryIO, Literal, TextIO

from app.rules_source import LiveRuleSet
from targets.input_guard import InputGuard
from targets.output_guard import OutputGuard
from targets.rules import RuleSet

MAX_LINE_BYTES = 64 * 1024 * 1024  # longer lines are answered with an error, not read into memory


def iter_lines(stream: BinaryIO, max_bytes: int = MAX_LINE_BYTES) -> Iterator[bytes | None]:
    """Yield raw lines (without the newline); ``None`` for a line longer than ``max_bytes``."""
    while True:
        line = stream.readline(max_bytes + 1)
        if not line:
            return
        if len(line) > max_bytes and not line.endswith(b"\n"):
            while True:  # discard the rest of the over-long line
                rest = stream.readline(1 << 20)
                if not rest or rest.endswith(b"\n"):
                    break
            yield None
            continue
        yield line[:-1] if line.endswith(b"\n") else line


def _parse(raw: bytes | None) -> str | dict[str, str]:
    """The text of one input line, or an error object."""
    if raw is None:
        return {"error": f"line longer than {MAX_LINE_BYTES} bytes"}
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return {"error": f"not valid UTF-8 (byte {exc.start})"}
    try:
        obj = json.loads(decoded)
    except json.JSONDecodeError as exc:
        return {"error": f"not JSON: {exc.msg} at column {exc.colno}"}
    except RecursionError:
        return {"error": "not JSON: nested too deeply"}
    if not isinstance(obj, dict):
        return {"error": f"expected a JSON object, got {type(obj).__name__}"}
    text = obj.get("text")
    if text is None:
        return {"error": 'missing "text"'}
    if not isinstance(text, str):
        return {"error": f'"text" must be a string, got {type(text).__name__}'}
    return text


class Scanner:
    """Answers scan lines with one guard of one rule set (or of a :class:`LiveRuleSet` that may change)."""

    def __init__(self, ruleset: RuleSet | LiveRuleSet, stage: Literal["input", "output"]) -> None:
        self.stage = stage
        self.live = ruleset if isinstance(ruleset, LiveRuleSet) else None
        self._build(ruleset.current if isinstance(ruleset, LiveRuleSet) else ruleset)

    def _build(self, ruleset: RuleSet) -> None:
        self.input_guard = InputGuard(ruleset) if self.stage == "input" else None
        self.output_guard = OutputGuard(ruleset) if self.stage == "output" else None

    def answer(self, text: str) -> dict[str, object]:
        return self.answer_many([text])[0]

    def answer_many(self, texts: list[str]) -> list[dict[str, object]]:
        """Answers for many texts; the input guard judges them as one batch (``InputGuard.scan_many``)."""
        if self.input_guard is not None:
            return [{"verdict": v.action.value, "rules": list(v.rule_ids), "score": round(v.score, 4)} for v in self.input_guard.scan_many(texts)]
        assert self.output_guard is not None
        answers: list[dict[str, object]] = []
        for text in texts:
            verdict = self.output_guard.scan(text)
            answer: dict[str, object] = {"verdict": verdict.action.value, "rules": list(verdict.rule_ids), "score": round(verdict.score, 4), "text": verdict.text}
            if verdict.reasons:
                answer["reasons"] = list(verdict.reasons)
            answers.append(answer)
        return answers

    def _answer_batch(self, items: list[dict[str, str] | str]) -> tuple[list[str], int]:
        """JSON lines for a batch of parsed lines (errors as they are), and how many lines failed."""
        texts = [item for item in items if isinstance(item, str)]
        errors = len(items) - len(texts)
        try:
            answers = iter(self.answer_many(texts))
        except Exception:  # one bad line must not lose the batch: answer line by line to isolate it
            answers = iter(self._answer_each(texts))
        results: list[str] = []
        for item in items:
            result = dict(item) if isinstance(item, dict) else next(answers)
            errors += isinstance(item, str) and "error" in result
            results.append(json.dumps(result))
        return results, errors

    def _answer_each(self, texts: list[str]) -> list[dict[str, object]]:
        answers: list[dict[str, object]] = []
        for text in texts:
            try:
                answers.append(self.answer(text))
            except Exception as exc:
                answers.append({"error": f"internal error: {type(exc).__name__}"})
        return answers

    def run(self, stream: BinaryIO, out: TextIO, batch: int = 1024) -> tuple[int, int]:
        """Scan every line of ``stream`` (in batches of ``batch`` lines); returns (lines, errors)."""
        lines = errors = 0
        pending: list[dict[str, str] | str] = []
        for raw in iter_lines(stream):
            lines += 1
            pending.append(_parse(raw))
            if len(pending) >= batch:
                errors += self._flush(pending, out)
        if pending:
            errors += self._flush(pending, out)
        return lines, errors

    def _flush(self, pending: list[dict[str, str] | str], out: TextIO) -> int:
        if self.live is not None and self.live.refresh():
            self._build(self.live.current)
        results, errors = self._answer_batch(pending)
        out.write("\n".join(results) + "\n")
        out.flush()
        pending.clear()
        return errors

