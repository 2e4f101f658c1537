"""AudioExampleGen: GTZAN-style audio folders -> segment tf.Examples (train/eval/test) + quarantine report."""
