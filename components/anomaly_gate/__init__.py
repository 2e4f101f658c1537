"""AnomalyGate: fails the run when ExampleValidator found anomalies, before anything trains."""
