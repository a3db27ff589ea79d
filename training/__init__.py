"""Train model families of the SDK and write checkpoints the export understands."""
