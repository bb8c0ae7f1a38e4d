"""stable-baselines3 callbacks for meta-RL runs: evaluation on episodes with task switches, and the
diagnostics of the theory's error terms."""
