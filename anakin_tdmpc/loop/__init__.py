"""The compiled side: the fused training loop (fused.py), its replay buffer (replay.py), evaluation
episodes (episodes.py), and the same loop over devices, processes and vmapped seeds (parallel.py)."""
