"""Training engine: the trainer, checkpoints, device and precision."""
