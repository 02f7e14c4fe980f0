"""Evolution: rule mining, rule-set versions, MLflow registry and promotion (see DESIGN.md)."""
