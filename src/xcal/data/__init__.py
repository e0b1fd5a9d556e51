"""Data: the task registry, sources, nested subsampling, tokenization, LightningDataModules."""
