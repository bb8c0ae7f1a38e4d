"""Env steps per second of each classic-suite environment against its Gymnasium v5 base environment.

As ``bench_envs.py``: both made with ``gym.make`` at the originals' horizon (200 steps), stepped alternately with
the same seeded random actions from the same start state, resets and task draws included; the median of the
per-repeat ratios is reported. The base is made with the v5 options whose defaults the classic env changes (the
observation's entries, ``frame_skip``, termination), so that the ratio measures what the task costs. The point
robots have no v5 base: their steps per second alone are reported.

    python benchmarks/bench_classic_envs.py --steps 4000 --repeats 5
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
from bench_envs import HEADER, report_pair

from meta_mujoco_envs import CLASSIC_ENV_IDS  # (registers the environments)

TARGET = 0.9  # steps per second of at least 0.9 times the base's
# env id -> (its Gymnasium v5 base, the base's arguments that match the classic env's changed v5 defaults)
PAIRS = {
    "HalfCheetahVel-v0": ("HalfCheetah-v5", {}),
    "HalfCheetahDir-v0": ("HalfCheetah-v5", {}),
    "AntDir-v0": ("Ant-v5", {"include_cfrc_ext_in_observation": False}),
    "AntGoal-v0": ("Ant-v5", {"exclude_current_positions_from_observation": False, "terminate_when_unhealthy": False}),
    "HumanoidDir-v0": ("Humanoid-v5", {}),
    "HopperRandParams-v0": ("Hopper-v5", {"frame_skip": 8}),
    "Walker2dRandParams-v0": ("Walker2d-v5", {"frame_skip": 8}),
}


def steps_per_second(env_id: str, n_steps: int, seed: int, max_episode_steps: int) -> float:
    """Steps per second of ``env_id`` alone (resets included), for the envs without a v5 base."""
    env = gym.make(env_id, max_episode_steps=max_episode_steps)
    actions = np.random.default_rng(seed).uniform(-1, 1, size=(n_steps,) + env.action_space.shape)
    start = time.perf_counter()
    env.reset(seed=seed)
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return n_steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4000, help="steps per measurement")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats per pair")
    parser.add_argument("--max-episode-steps", type=int, default=200, help="time limit of both envs")
    parser.add_argument("--envs", nargs="*", default=list(CLASSIC_ENV_IDS), help="subset of env ids")
    args = parser.parse_args()

    print(HEADER)
    for env_id in args.envs:
        if env_id in PAIRS:
            base_id, base_kwargs = PAIRS[env_id]
            report_pair(env_id, base_id, TARGET, args, base_kwargs)
        else:
            rate = np.median([steps_per_second(env_id, args.steps, r, args.max_episode_steps) for r in range(args.repeats)])
            print(f"{env_id:26s} {rate:9.0f} (no v5 base)")


if __name__ == "__main__":
    main()
