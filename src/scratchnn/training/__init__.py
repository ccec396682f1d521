"""Training: the Trainer loop, callbacks, metrics, checkpoints, run directories and plots."""
