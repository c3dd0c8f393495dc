"""The host side of a run: the trainer that drives compiled chunks (trainer.py) and what it writes: the run
dir (run_dir.py), checkpoints, metrics and progress (logger.py), curves.png, videos, wandb and TensorBoard,
and the divergence guard."""
