"""The embedded default: a real multilingual encoder and real data from two PyPI artifacts."""
