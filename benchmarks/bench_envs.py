"""Env steps per second of each meta_mujoco_envs environment against its Gymnasium v5 base environment.

Both are made with ``gym.make`` (same wrappers) and stepped alternately, one step each, with the same seeded
random actions from the same start state; resets (and so task draws) and task switches are included. Each
pair is repeated with different seeds and the median of the per-repeat ratios is reported, because these
machines are noisy.

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


def paired_steps_per_second(
    env_id: str, base_id: str, n_steps: int, seed: int, max_episode_steps: int, base_kwargs: dict | None = None
):
    """Steps per second of ``env_id`` and of ``base_id``, stepped alternately with the same actions.

    Alternating single steps makes a burst of machine load hit both envs equally. Both episodes start from
    the same state (the base env's reset state is copied into ours where the robots have the same joints;
    not for the pier, whose blocks add joints), so a direction env, whose dynamics are the base's, follows
    the very same trajectory, and the others differ only by what their task changes. Resets and task
    switches are timed too.

    :param max_episode_steps: the time limit of both envs.
    :param base_kwargs: arguments of the base env (e.g. the v5 options whose defaults ``env_id`` changes).
    """
    ours = gym.make(env_id, max_episode_steps=max_episode_steps)
    base = gym.make(base_id, max_episode_steps=max_episode_steps, **(base_kwargs or {}))
    same_joints = ours.unwrapped.model.nq == base.unwrapped.model.nq
    actions = np.random.default_rng(seed).uniform(
        ours.action_space.low, ours.action_space.high, size=(n_steps,) + ours.action_space.shape
    )
    elapsed = {"ours": 0.0, "base": 0.0}

    def reset_both(episode: int) -> None:
        for name, env in (("ours", ours), ("base", base)):
            start = time.perf_counter()
            env.reset(seed=seed * 100_003 + episode)
            elapsed[name] += time.perf_counter() - start
        if same_joints:
            ours.unwrapped.set_state(base.unwrapped.data.qpos, base.unwrapped.data.qvel)

    episode = 0
    reset_both(episode)
    for action in actions:
        done = False
        for name, env in (("ours", ours), ("base", base)):
            start = time.perf_counter()
            _, _, terminated, truncated, _ = env.step(action)
            elapsed[name] += time.perf_counter() - start
            done = done or terminated or truncated
        if done:  # both start the next episode together
            episode += 1
            reset_both(episode)
    ours.close()
    base.close()
    return n_steps / elapsed["ours"], n_steps / elapsed["base"]


HEADER = f"{'env':26s} {'steps/s':>9s} {'base':14s} {'steps/s':>9s} {'ratio (median)':>15s} {'target':>7s}"


def report_pair(env_id: str, base_id: str, target: float, args: argparse.Namespace, base_kwargs: dict | None = None):
    """Measure ``env_id`` against ``base_id`` ``args.repeats`` times and print the medians and the verdict."""
    rates = np.array(
        [
            paired_steps_per_second(env_id, base_id, args.steps, repeat, args.max_episode_steps, base_kwargs)
            for repeat in range(args.repeats)
        ]
    )
    ours, base = rates[:, 0], rates[:, 1]
    ratio = float(np.median(ours / base))
    verdict = "ok" if ratio >= target else "BELOW"
    print(f"{env_id:26s} {np.median(ours):9.0f} {base_id:14s} {np.median(base):9.0f} {ratio:15.2f} {target:>5.1f} {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5000, help="steps per measurement")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats per pair")
    parser.add_argument("--max-episode-steps", type=int, default=1000, help="time limit used for both envs")
    parser.add_argument("--envs", nargs="*", default=list(PAIRS), help="subset of env ids")
    args = parser.parse_args()

    print(HEADER)
    for env_id in args.envs:
        base_id, target = PAIRS[env_id]
        report_pair(env_id, base_id, target, args)


if __name__ == "__main__":
    main()
