"""Reports over finished runs and sweeps."""
