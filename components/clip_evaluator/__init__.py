"""ClipEvaluator: clip-level (vote) accuracy gate, combined with TFMA's blessing."""
