"""Launch helpers: a local single-node SLURM cluster for tests (`local_slurm`)."""
