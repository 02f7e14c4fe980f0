"""MLflow "model from code": a guardrail rule-set version as a pyfunc model.

``predict`` takes a DataFrame with a ``text`` column and returns one row per
text: ``verdict`` (allow | flag | block), ``rules`` (ids that fired) and
``score``. The rule set travels as the ``ruleset`` artifact with its
signature beside it (both checked on load: a tampered, unsigned or
foreign-signed rule set is refused); the ``targets`` and ``kosmoi`` packages travel as code paths, so a
fresh process only needs the dependencies, not this project installed.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class GuardrailModel(PythonModel):
    """The input guardrail of one rule-set version."""

    def load_context(self, context) -> None:
        from pathlib import Path

        from targets.input_guard import InputGuard
        from targets.signing import load_verified

        self.guard = InputGuard(load_verified(Path(context.artifacts["ruleset"]), require=True))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        if "text" not in model_input.columns:
            raise ValueError('the model expects a DataFrame with a "text" column')
        verdicts = self.guard.scan_many(text if isinstance(text, str) else "" for text in model_input["text"])
        return pd.DataFrame(
            {
                "verdict": [v.action.value for v in verdicts],
                "rules": [list(v.rule_ids) for v in verdicts],
                "score": [float(v.score) for v in verdicts],
            }
        )


mlflow.models.set_model(GuardrailModel())
