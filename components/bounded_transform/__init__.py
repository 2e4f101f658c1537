"""BoundedTransform: TFX's Transform with a fixed Beam batch size, so its memory does not grow with the data."""
