"""pytest set-up for serving/: test_server.py is the TF Serving test double, not a test module."""
collect_ignore = ["test_server.py"]
