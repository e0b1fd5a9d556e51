"""Small helpers with one home each: file digests and fingerprints, the wording of user-facing problems."""
