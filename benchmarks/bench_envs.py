"""Env steps per second of each meta_mujoco_envs environment against its Gymnasium v5 base environment.

Both are made with ``gym.make`` (same wrappers), driven by the same seeded random actions, resets (and so
task draws and switches) included. The pairs are interleaved, repeated, and the median of the per-repeat
ratios is reported, because these machines are noisy.

    python benchmarks/bench_envs.py --steps 5000 --repeats 5
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import meta_mujoco_envs  # noqa: F401  (registers the environments)

# env id -> (its Gymnasium v5 base, target ratio of steps per second)
PAIRS = {
    "HalfCheetahFwdBwd-v0": ("HalfCheetah-v5", 0.9),
    "HalfCheetahPier-v0": ("HalfCheetah-v5", 0.6),
    "AntFwdBwd-v0": ("Ant-v5", 0.9),
    "AntCrippledLeg-v0": ("Ant-v5", 0.9),
    "Walker2dRandomParams-v0": ("Walker2d-v5", 0.9),
    "HumanoidDirec-v0": ("Humanoid-v5", 0.9),
}


def steps_per_second(env_id: str, n_steps: int, seed: int, max_episode_steps: int) -> float:
    """Time ``n_steps`` random-action steps of ``env_id``, resetting at episode ends.

    :param max_episode_steps: the same time limit for both envs of a pair, so that both reset equally often.
    """
    env = gym.make(env_id, max_episode_steps=max_episode_steps)
    env.reset(seed=seed)
    actions = np.random.default_rng(seed).uniform(
        env.action_space.low, env.action_space.high, size=(n_steps,) + env.action_space.shape
    )
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return n_steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5000, help="steps per measurement")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats per pair")
    parser.add_argument("--max-episode-steps", type=int, default=1000, help="time limit used for both envs")
    parser.add_argument("--envs", nargs="*", default=list(PAIRS), help="subset of env ids")
    args = parser.parse_args()

    print(f"{'env':26s} {'steps/s':>9s} {'base':14s} {'steps/s':>9s} {'ratio (median)':>15s} {'target':>7s}")
    for env_id in args.envs:
        base_id, target = PAIRS[env_id]
        ours, base = [], []
        for repeat in range(args.repeats):
            # Alternate which runs first, so slow drifts of the machine hit both equally.
            order = [(env_id, ours), (base_id, base)][:: 1 if repeat % 2 == 0 else -1]
            for name, out in order:
                out.append(steps_per_second(name, args.steps, seed=repeat, max_episode_steps=args.max_episode_steps))
        ratio = float(np.median(np.array(ours) / np.array(base)))
        verdict = "ok" if ratio >= target else "BELOW"
        print(
            f"{env_id:26s} {np.median(ours):9.0f} {base_id:14s} {np.median(base):9.0f} "
            f"{ratio:15.2f} {target:>5.1f} {verdict}"
        )


if __name__ == "__main__":
    main()
