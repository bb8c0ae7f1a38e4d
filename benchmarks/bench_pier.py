"""Does the pier's task matter? The effect of HalfCheetahPier-v0's block properties, and its speed.

A fixed open-loop sine gait ``a_j(t) = A_j sin(2 pi f t + phi_j)`` is found by seeded random search on
HalfCheetah-v5 (the gait that covers the most ground in 10 s), then replayed on the pier under the four
extreme tasks of the declared ranges (every block at the low or high damping x the low or high friction) and
under random tasks of the default distribution. Printed:

- 10 s progress (median over reset seeds) on each extreme task, and the ratio of the largest to the smallest
  (target >= 2); with a smallest progress <= 0 the ratio is reported as "inf" (the gait goes nowhere there);
- the one-step effect between two extreme tasks: from the same saved MuJoCo state (taken along the gait under
  the middle task), the same action is stepped under both; the mean distance between the two next
  observations over the mean distance of a next observation from the current one (target >= 10 %), for the
  corner pair, damping alone and friction alone;
- whether the cheetah can still run (the gait's progress on random pier tasks against HalfCheetah-v5), never
  falls through (lowest torso height above the water), sits on a block's hard stop (fraction of steps) and
  never runs out of pier (its distance to the nearest block centre);
- steps per second against HalfCheetah-v5, interleaved (``bench_envs.paired_steps_per_second``; target >= 0.6).

    python benchmarks/bench_pier.py --candidates 300 --seeds 5 --speed-steps 4000 --speed-repeats 5
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass

import gymnasium as gym
import mujoco
import numpy as np

import meta_mujoco_envs  # noqa: F401  (registers the environments)
from meta_mujoco_envs.base import Task

STEPS_10S = 200  # 10 s at dt = 0.05


@dataclass
class SineGait:
    """An open-loop gait: joint ``j``'s action is ``amplitude[j] * sin(2 pi frequency t + phase[j])``."""

    frequency: float
    amplitude: np.ndarray
    phase: np.ndarray

    def actions(self, n_steps: int, dt: float = 0.05) -> np.ndarray:
        t = np.arange(n_steps)[:, None] * dt
        return np.clip(self.amplitude * np.sin(2 * np.pi * self.frequency * t + self.phase), -1.0, 1.0)


def progress(env, actions: np.ndarray, seed: int, task: Task | None = None) -> float:
    """Distance along x covered by replaying ``actions`` from ``reset(seed)`` (under ``task`` if given)."""
    env.reset(seed=seed, options=None if task is None else {"task": task})
    x0 = env.data.qpos[0]
    for action in actions:
        env.step(action)
    return float(env.data.qpos[0] - x0)


def search_gait(n_candidates: int, seed: int = 0) -> tuple[SineGait, float]:
    """The sine gait (of ``n_candidates`` random ones) that covers most ground in 10 s on HalfCheetah-v5."""
    rng = np.random.default_rng(seed)
    env = gym.make("HalfCheetah-v5", reset_noise_scale=0.0).unwrapped
    best, best_distance = None, -np.inf
    for _ in range(n_candidates):
        gait = SineGait(rng.uniform(1.0, 4.0), rng.uniform(0.0, 1.0, 6), rng.uniform(0.0, 2 * np.pi, 6))
        distance = progress(env, gait.actions(STEPS_10S), seed=0)
        if distance > best_distance:
            best, best_distance = gait, distance
    return best, best_distance


def uniform_task(env, damping: float, friction: float) -> Task:
    """Every block with the same damping and friction."""
    return {"damping": (damping,) * env.n_blocks, "friction": (friction,) * env.n_blocks}


def extreme_tasks(env) -> dict[tuple[float, float], Task]:
    """The four corners of the declared ranges, keyed by (damping, friction)."""
    ranges = env.task_ranges
    return {(d, f): uniform_task(env, d, f) for d, f in itertools.product(ranges["damping"], ranges["friction"])}


def middle_task(env) -> Task:
    ranges = env.task_ranges
    return uniform_task(env, float(np.mean(ranges["damping"])), float(np.mean(ranges["friction"])))


def one_step_effect(env, task_a: Task, task_b: Task, actions: np.ndarray, n_states: int = 40) -> float:
    """Mean ||o'_A - o'_B|| over mean ||o' - o||, same saved states and actions, along the gait (middle task)."""
    model, data = env.model, env.data
    kind = mujoco.mjtState.mjSTATE_INTEGRATION  # the whole simulation state: warm starts included
    state = np.empty(mujoco.mj_stateSize(model, kind))
    env.reset(seed=0, options={"task": middle_task(env)})
    sampled = set(np.linspace(10, len(actions) - 1, n_states).astype(int).tolist())
    between, normal = [], []
    for t, action in enumerate(actions):
        if t in sampled:
            mujoco.mj_getState(model, data, state, kind)
            obs, task = env._get_obs(), env.get_task()
            nexts = []
            for other in (task_a, task_b):
                mujoco.mj_setState(model, data, state, kind)
                env.set_task(other)
                nexts.append(env.step(action)[0])
            mujoco.mj_setState(model, data, state, kind)
            env.set_task(task)
            between.append(np.linalg.norm(nexts[0] - nexts[1]))
            normal.extend(np.linalg.norm(n - obs) for n in nexts)
        env.step(action)
    return float(np.mean(between) / np.mean(normal))


def safety(env, actions: np.ndarray, seeds: range) -> dict[str, float]:
    """Lowest torso height, fraction of steps with a block on its hard stop, largest distance to a block centre."""
    joints = env.model.body_jntadr[env._block_bodies]
    low_stop = env.model.jnt_range[joints, 0]
    lowest, at_stop, far, steps = np.inf, 0, 0.0, 0
    for seed in seeds:
        env.reset(seed=seed)
        for action in actions:
            env.step(action)
            lowest = min(lowest, env.data.xpos[env.model.body("torso").id, 2])
            at_stop += bool(np.any(env.block_heights() <= low_stop + 1e-3))
            centres = env.model.body_pos[env._block_bodies, 0]
            far = max(far, float(np.abs(centres - env.data.qpos[0]).min()))
            steps += 1
    return {"lowest_torso_z": lowest, "hard_stop_fraction": at_stop / steps, "farthest_from_a_block": far}


def ratio_text(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{high / low:.2f}" if low > 0 else "inf (smallest <= 0)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=300, help="random sine gaits tried on HalfCheetah-v5")
    parser.add_argument("--seeds", type=int, default=5, help="reset seeds per progress median")
    parser.add_argument("--speed-steps", type=int, default=4000, help="steps per speed measurement (0: skip)")
    parser.add_argument("--speed-repeats", type=int, default=5)
    args = parser.parse_args()
    seeds = range(args.seeds)

    gait, searched = search_gait(args.candidates)
    actions = gait.actions(STEPS_10S)
    base = gym.make("HalfCheetah-v5").unwrapped
    base_progress = np.median([progress(base, actions, s) for s in seeds])
    print(f"sine gait: best of {args.candidates} on HalfCheetah-v5, {searched:.1f} m in 10 s without reset noise")
    print(f"HalfCheetah-v5, 10 s progress (median of {args.seeds} seeds): {base_progress:.1f} m")

    env = gym.make("HalfCheetahPier-v0", task_switch_seconds=None).unwrapped
    print(f"\npier ranges: {env.task_ranges}")
    corners = {}
    for key, task in extreme_tasks(env).items():
        corners[key] = float(np.median([progress(env, actions, s, task) for s in seeds]))
        print(f"  damping {key[0]:6.1f}, friction {key[1]:5.2f}: {corners[key]:6.1f} m")
    print(f"extreme tasks, largest / smallest 10 s progress: {ratio_text(list(corners.values()))} (target >= 2)")
    randoms = [progress(env, actions, 1000 + s) for s in seeds]
    print(
        f"random pier tasks: {np.median(randoms):.1f} m (median), {np.min(randoms):.1f} to {np.max(randoms):.1f}; "
        f"{np.median(randoms) / base_progress:.2f} of HalfCheetah-v5's"
    )

    ranges = env.task_ranges
    (d_low, d_high), (f_low, f_high) = ranges["damping"], ranges["friction"]
    d_mid, f_mid = (d_low + d_high) / 2, (f_low + f_high) / 2
    pairs = {
        "corners (low d, low f) vs (high d, high f)": ((d_low, f_low), (d_high, f_high)),
        "corners (low d, high f) vs (high d, low f)": ((d_low, f_high), (d_high, f_low)),
        "damping alone (friction mid)": ((d_low, f_mid), (d_high, f_mid)),
        "friction alone (damping mid)": ((d_mid, f_low), (d_mid, f_high)),
    }
    print("\none-step effect (target >= 10 %):")
    for name, (a, b) in pairs.items():
        effect = one_step_effect(env, uniform_task(env, *a), uniform_task(env, *b), actions)
        print(f"  {name:44s} {100 * effect:5.1f} %")

    checks = safety(env, actions, range(1000, 1000 + args.seeds))
    print(
        f"\nlowest torso height {checks['lowest_torso_z']:.3f} m (block tops rest at 0, the water at -0.35), "
        f"blocks on their hard stop {100 * checks['hard_stop_fraction']:.1f} % of steps, "
        f"farthest from a block centre {checks['farthest_from_a_block']:.2f} m (blocks are 4 m long)"
    )

    if args.speed_steps > 0:
        from bench_envs import paired_steps_per_second  # noqa: PLC0415  (benchmarks/ is the script's folder)

        rates = np.array(
            [
                paired_steps_per_second("HalfCheetahPier-v0", "HalfCheetah-v5", args.speed_steps, r, 1000)
                for r in range(args.speed_repeats)
            ]
        )
        ratio = float(np.median(rates[:, 0] / rates[:, 1]))
        print(
            f"\nsteps/s: pier {np.median(rates[:, 0]):.0f}, HalfCheetah-v5 {np.median(rates[:, 1]):.0f}, "
            f"ratio {ratio:.2f} (median of {args.speed_repeats}; target >= 0.6)"
        )


if __name__ == "__main__":
    main()
