"""TF Serving deployment files, the gRPC client, and a test double of TF Serving."""
