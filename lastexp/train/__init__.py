"""Training core: optimizer groups, schedules, the epoch loop, checkpoints and run logging."""
