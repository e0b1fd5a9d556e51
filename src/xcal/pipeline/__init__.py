"""The pipeline: config validation, the three stages, the encoder cache, results, the entry point."""
