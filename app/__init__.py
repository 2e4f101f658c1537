"""The web page: hear a clip and see its genre, answered by TF Serving over gRPC (`make app`).

The page process never loads the TensorFlow runtime: it reaches the model only through
serving/client.py (protos only, serving/protos.py), and the model card comes from MLflow.
"""
