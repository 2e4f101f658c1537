"""The web page: hear a clip and see its genre, answered by TF Serving over gRPC (`make app`).

The page process never loads the TensorFlow runtime; the model card comes from MLflow.
"""
