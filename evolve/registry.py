"""Rule-set versions in the MLflow model registry: register, promote with a gate, roll back.

Every version is a pyfunc model (``evolve/pyfunc_model.py``) registered under
``kosmoi-guardrails`` with tags (parent version, generation, source runs,
content hash) and gets the ``staging`` alias. ``production`` moves only
through :func:`promote` — when the gate passes (on the held-out attacks of
both the candidate and production it lets through no more than production
does, and its benign
false-positive rate on the gate corpus is within the bound) or when forced
with a reason — and back through :func:`rollback`. Every move is appended to
the registered model's ``kosmoi.alias_history`` tag and to the moved
version's tags.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from evolve.gate import Evaluation, evaluate
from sim.environment import apply_defaults
from targets.rules import RuleSet, RuleSetError
from targets.signing import load_verified, sign, signature_path, signing_key

log = logging.getLogger(__name__)

MODEL_NAME = "kosmoi-guardrails"
HISTORY_TAG = "kosmoi.alias_history"
FPR_BOUND = 0.01
PIP_REQUIREMENTS = ["pandas", "numpy", "pydantic>=2", "google-re2", "hyperscan; platform_machine == 'x86_64'", "confusable-homoglyphs", "pyjwt[crypto]"]


class RegistryError(RuleSetError):
    """The MLflow registry could not be reached, or refused a request."""


def _client(tracking_uri: str | None) -> Any:
    """A client for ``tracking_uri``, checked to answer (so a dead server is not mistaken for an empty registry)."""
    apply_defaults()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        client.search_registered_models(max_results=1)
    except Exception as exc:
        raise RegistryError(f"cannot reach the MLflow registry at {client.tracking_uri}: {_short(exc)}") from None
    return client


def _short(exc: BaseException) -> str:
    """One readable line for an MLflow / HTTP failure (the root cause, not the retry machinery)."""
    text = str(exc)
    cause = re.search(r"\[Errno -?\d+\][^'\")]*|Read timed out|timed out", text)
    if "Max retries exceeded" in text or cause:
        return f"connection failed ({cause.group(0).strip() if cause else 'no answer'})"
    return f"{type(exc).__name__}: {text.split(' (Caused by', 1)[0][:300]}"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def register_version(
    ruleset: RuleSet,
    *,
    tracking_uri: str,
    run_id: str,
    generation: int,
    parent_version: str | None,
    source_runs: list[str],
    metrics: dict[str, float],
    heldout_attacks: list[str],
    name: str = MODEL_NAME,
) -> str:
    """Log ``ruleset`` as a pyfunc model into MLflow run ``run_id``, register it, alias it ``staging``.

    ``generation`` is the evolution generation whose results the version was mined from (0 for the first),
    the number `immune evolve` prints next to it.
    """
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, Schema

    import kosmoi
    import targets

    mlflow.set_tracking_uri(tracking_uri)
    signature = ModelSignature(
        inputs=Schema([ColSpec(DataType.string, "text")]),
        outputs=Schema([ColSpec(DataType.string, "verdict"), ColSpec(Array(DataType.string), "rules"), ColSpec(DataType.double, "score")]),
    )
    with tempfile.TemporaryDirectory() as tmp:
        rules_path = Path(tmp) / "ruleset.json"
        rules_path.write_text(ruleset.to_json(), "utf-8")
        signature_file = signature_path(rules_path)
        signature_file.write_text(sign(ruleset, signing_key()).to_json(), "utf-8")
        heldout_path = Path(tmp) / "heldout_attacks.jsonl"
        heldout_path.write_text("".join(json.dumps({"text": t}) + "\n" for t in heldout_attacks), "utf-8")
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name="guardrails",
                python_model=str(Path(__file__).with_name("pyfunc_model.py")),
                artifacts={"ruleset": str(rules_path), "ruleset_signature": str(signature_file), "heldout_attacks": str(heldout_path)},
                code_paths=[str(Path(targets.__file__).parent), str(Path(kosmoi.__file__).parent)],
                pip_requirements=PIP_REQUIREMENTS,
                signature=signature,
                input_example=pd.DataFrame({"text": ["What is the price of the desk lamp?"]}),
            )
            mlflow.log_metrics({f"ruleset.{k}": float(v) for k, v in metrics.items()})
    client = _client(tracking_uri)
    try:
        client.get_registered_model(name)
    except Exception:
        client.create_registered_model(name, description="Kosmoi Immune input-guardrail rule sets (pyfunc: text -> verdict, rules, score)")
    version = str(client.create_model_version(name, info.model_uri, run_id=run_id).version)
    tags = {
        "kosmoi.hash": str(ruleset.hash),
        "kosmoi.ruleset_version": ruleset.version,
        "kosmoi.generation": str(generation),
        "kosmoi.parent_version": parent_version or "",
        "kosmoi.source_runs": ",".join(source_runs),
        "kosmoi.rules": str(len(ruleset.rules)),
        **{f"kosmoi.metric.{k}": f"{v:.6g}" for k, v in metrics.items()},
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    previous = _alias_version(client, name, "staging")
    client.set_registered_model_alias(name, "staging", version)
    _record(client, name, {"alias": "staging", "version": version, "from": previous, "at": _now(), "by": "evolve", "reason": f"mined from generation {generation}"})
    return version


def _history(client: Any, name: str) -> list[dict[str, Any]]:
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise RegistryError(f"{name}: {_short(exc)}") from None
    return json.loads(model.tags.get(HISTORY_TAG, "[]"))


def _record(client: Any, name: str, entry: dict[str, Any]) -> None:
    history = _history(client, name) + [entry]
    text = json.dumps(history)
    while len(text) > 4500 and len(history) > 1:  # MLflow tag values are bounded; keep the most recent moves
        history = history[1:]
        text = json.dumps(history)
    client.set_registered_model_tag(name, HISTORY_TAG, text)


def history(tracking_uri: str | None, name: str = MODEL_NAME) -> list[dict[str, Any]]:
    """Every recorded alias move, oldest first."""
    return _history(_client(tracking_uri), name)


def _alias_version(client: Any, name: str, alias: str) -> str | None:
    """The version ``alias`` points to; None if the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise RegistryError(f"{name}@{alias}: {_short(exc)}") from None


def download_ruleset(uri: str, tracking_uri: str | None = None) -> tuple[RuleSet, Path]:
    """The rule set behind ``models:/name@alias`` or ``models:/name/version`` (hash- and signature-checked)."""
    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except Exception as exc:
        raise RegistryError(f"{uri}: cannot load from the MLflow registry at {mlflow.get_tracking_uri()} ({_short(exc)})") from None
    matches = sorted(local.rglob("ruleset.json"))
    if not matches:
        raise RuleSetError(f"{uri}: the model has no ruleset.json artifact")
    return load_verified(matches[0], require=True), local


@dataclass
class GateResult:
    passed: bool
    reason: str
    candidate: dict[str, Any]
    production: dict[str, Any] | None


def gate(candidate: RuleSet, production: RuleSet | None, heldout: list[str], benign: list[str], fpr_bound: float = FPR_BOUND) -> GateResult:
    """The promotion gate: held-out attacks allowed no more often than production; benign FPR within the bound."""
    attacks = [(text, "heldout") for text in heldout]
    new: Evaluation = evaluate(candidate, attacks, benign)
    old: Evaluation | None = evaluate(production, attacks, benign) if production is not None else None
    problems = []
    if new.false_positive_rate.value > fpr_bound:
        problems.append(f"benign false-positive rate {new.false_positive_rate.value:.4f} above the bound {fpr_bound}")
    if old is not None and new.allow_rate.value > old.allow_rate.value + 1e-9:
        problems.append(f"lets through {new.allow_rate.value:.3f} of the held-out attacks, production {old.allow_rate.value:.3f}")
    return GateResult(not problems, "; ".join(problems) or "gate passed", new.as_dict(), old.as_dict() if old else None)


def promote(
    *,
    tracking_uri: str | None,
    benign: list[str],
    version: str | None = None,
    force: bool = False,
    reason: str = "",
    name: str = MODEL_NAME,
    fpr_bound: float = FPR_BOUND,
) -> tuple[str, GateResult]:
    """Move ``production`` to ``version`` (default: the ``staging`` one) if the gate passes, or if forced."""
    client = _client(tracking_uri)
    target = version or _alias_version(client, name, "staging")
    if target is None:
        raise RuleSetError(f"{name}: no version given and no 'staging' alias to promote")
    if force and not reason.strip():
        raise RuleSetError("--force needs --reason: every forced promotion is recorded with why")
    candidate, local = download_ruleset(f"models:/{name}/{target}", tracking_uri)
    current = _alias_version(client, name, "production")
    production, production_local = download_ruleset(f"models:/{name}/{current}", tracking_uri) if current else (None, None)
    # Both versions' held-out attacks: a candidate must not reopen what production already closes.
    heldout = list(dict.fromkeys(_heldout(local) + (_heldout(production_local) if production_local else [])))
    result = gate(candidate, production, heldout, benign, fpr_bound)
    if not result.passed and not force:
        return target, result
    client.set_registered_model_alias(name, "production", target)
    by = os.environ.get("USER") or getpass.getuser()
    entry = {"alias": "production", "version": target, "from": current, "at": _now(), "by": by, "forced": bool(force and not result.passed), "reason": reason or result.reason}
    _record(client, name, entry)
    client.set_model_version_tag(name, target, "kosmoi.promoted_at", entry["at"])
    return target, result


def _heldout(local: Path) -> list[str]:
    """The held-out attacks stored with a downloaded model version."""
    files = sorted(local.rglob("heldout_attacks.jsonl"))
    return [json.loads(line)["text"] for line in files[0].read_text("utf-8").splitlines() if line.strip()] if files else []


def rollback(*, tracking_uri: str | None, name: str = MODEL_NAME, reason: str = "") -> tuple[str, str]:
    """Move ``production`` back to the version it held before the last promotion."""
    client = _client(tracking_uri)
    current = _alias_version(client, name, "production")
    moves = [h for h in _history(client, name) if h.get("alias") == "production"]
    # The promotion (not a rollback) that last put the current version in production says what came before.
    previous = next((m.get("from") for m in reversed(moves) if not m.get("rollback") and m.get("version") == current and m.get("from")), None)
    if current is None or previous is None:
        raise RuleSetError(f"{name}: nothing to roll back to (production is {current or 'unset'})")
    client.set_registered_model_alias(name, "production", previous)
    _record(client, name, {"alias": "production", "version": previous, "from": current, "at": _now(), "by": os.environ.get("USER") or getpass.getuser(), "rollback": True, "reason": reason or "rollback"})
    return current, previous
