"""TrackedTrainer: TFX's Trainer whose Model artifact carries its MLflow run id in MLMD."""
