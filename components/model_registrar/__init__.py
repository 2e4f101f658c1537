"""ModelRegistrar: records a pushed model in MLflow's model registry."""
