"""Launch helpers: the SLURM launcher's preflight checks and sweep dependency planning.

The local single-node SLURM cluster for tests is a developer's tool: tools/local_slurm.py.
"""
