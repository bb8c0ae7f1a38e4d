"""Does the pier's task matter? The effect of HalfCheetahPier-v0's block properties, and its speed.

Fixed open-loop sine gaits ``a_j(t) = A_j sin(2 pi f t + phi_j)`` are found by seeded random search on
HalfCheetah-v5 (the gaits that cover the most ground in 10 s), then replayed on the pier under the four
extreme tasks of the declared ranges (every block at the low or high damping x the low or high friction) and
under random tasks of the default distribution. Printed:

- 10 s progress (median over reset seeds) on each extreme task, and the ratio of the largest to the smallest
  (target >= 2); with a smallest progress <= 0 the ratio is reported as "inf" (the gait goes nowhere there);
- the one-step effect between two extreme tasks: from the same saved MuJoCo state (taken along the gait under
  the middle task), the same action is stepped under both; the mean distance between the two next
  observations over the mean distance of a next observation from the current one (target >= 10 %), for the
  corner pair, damping alone and friction alone;
- whether the cheetah can still run (the gait's progress on random pier tasks against HalfCheetah-v5), never
  falls through (how deep it sinks below the lowest block top, against HalfCheetah-v5 below its floor), how
  often a block sits on its hard stop (fraction of steps), and never runs out of pier (its distance to the
  nearest block centre);
- steps per second against HalfCheetah-v5, interleaved (``bench_envs.paired_steps_per_second``; target >= 0.6).

    python benchmarks/bench_pier.py --candidates 300 --top 5 --seeds 3 --random-seeds 16 \\
        --speed-steps 4000 --speed-repeats 5

Open-loop gaits are chaotic (a few centimetres early or late at a ledge change everything after), so the
figures are given for the best gait and as medians over the best ``--top`` gaits.
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


def search_gaits(n_candidates: int, top: int = 1, seed: int = 0) -> tuple[list[SineGait], list[float]]:
    """The ``top`` sine gaits (of ``n_candidates`` random ones) that cover most ground in 10 s on HalfCheetah-v5."""
    rng = np.random.default_rng(seed)
    env = gym.make("HalfCheetah-v5", reset_noise_scale=0.0).unwrapped
    scored = []
    for _ in range(n_candidates):
        gait = SineGait(rng.uniform(1.0, 4.0), rng.uniform(0.0, 1.0, 6), rng.uniform(0.0, 2 * np.pi, 6))
        scored.append((progress(env, gait.actions(STEPS_10S), seed=0), gait))
    scored.sort(key=lambda pair: -pair[0])
    return [gait for _, gait in scored[:top]], [distance for distance, _ in scored[:top]]


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


def lowest_cheetah_point(env, geoms: np.ndarray) -> float:
    """Height of the lowest surface point of ``geoms`` (capsules: the lower axis end minus the radius)."""
    axes = env.data.geom_xmat[geoms].reshape(-1, 3, 3)[:, 2, 2]  # z component of each capsule's axis
    centres, (radius, half_length) = env.data.geom_xpos[geoms, 2], env.model.geom_size[geoms, :2].T
    return float(np.min(centres - np.abs(axes) * half_length - radius))


def safety(env, base, actions: np.ndarray, seeds: range) -> dict[str, float]:
    """How deep the cheetah sinks below the lowest block top (and below HalfCheetah-v5's floor, for scale: MuJoCo's
    contacts are soft), the fraction of steps with a block on its hard stop, the largest distance to a block centre.
    """
    joints = env.model.body_jntadr[env._block_bodies]
    low_stop = env.model.jnt_range[joints, 0]
    cheetah_geoms = np.flatnonzero(~np.isin(env.model.geom_bodyid, np.r_[0, env._block_bodies]))
    base_geoms = np.flatnonzero(base.model.geom_bodyid > 0)
    below_pier, below_floor, at_stop, far, steps = 0.0, 0.0, 0, 0.0, 0
    for seed in seeds:
        env.reset(seed=seed)
        base.reset(seed=seed)
        for action in actions:
            env.step(action)
            base.step(action)
            below_pier = max(below_pier, env.block_heights().min() - lowest_cheetah_point(env, cheetah_geoms))
            below_floor = max(below_floor, -lowest_cheetah_point(base, base_geoms))
            at_stop += bool(np.any(env.block_heights() <= low_stop + 1e-3))
            centres = env.model.body_pos[env._block_bodies, 0]
            far = max(far, float(np.abs(centres - env.data.qpos[0]).min()))
            steps += 1
    return {
        "below_pier": below_pier,
        "below_floor": below_floor,
        "hard_stop_fraction": at_stop / steps,
        "farthest_from_a_block": far,
    }


def ratio_text(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{high / low:.2f}" if low > 0 else "inf (smallest <= 0)"


def figures(env, base, actions: np.ndarray, seeds: range, random_seeds: range) -> dict[str, object]:
    """Every figure of the module docstring, for one gait."""
    corners = {
        key: float(np.median([progress(env, actions, s, task) for s in seeds])) for key, task in extreme_tasks(env).items()
    }
    randoms = [progress(env, actions, s) for s in random_seeds]
    base_progress = float(np.median([progress(base, actions, s) for s in random_seeds]))
    (d_low, d_high), (f_low, f_high) = env.task_ranges.values()
    d_mid, f_mid = (d_low + d_high) / 2, (f_low + f_high) / 2
    pairs = {
        "corners (low d, low f) vs (high d, high f)": ((d_low, f_low), (d_high, f_high)),
        "corners (low d, high f) vs (high d, low f)": ((d_low, f_high), (d_high, f_low)),
        "damping alone (friction mid)": ((d_low, f_mid), (d_high, f_mid)),
        "friction alone (damping mid)": ((d_mid, f_low), (d_mid, f_high)),
    }
    effects = {
        name: one_step_effect(env, uniform_task(env, *a), uniform_task(env, *b), actions) for name, (a, b) in pairs.items()
    }
    return {
        "corners": corners,
        "random": float(np.median(randoms)),
        "random_over_5m": float(np.mean(np.array(randoms) > 5.0)),
        "base": base_progress,
        "effects": effects,
        **safety(env, base, actions, random_seeds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=300, help="random sine gaits tried on HalfCheetah-v5")
    parser.add_argument("--top", type=int, default=5, help="best gaits replayed on the pier (the first is 'the' gait)")
    parser.add_argument("--seeds", type=int, default=3, help="reset seeds per progress median on an extreme task")
    parser.add_argument("--random-seeds", type=int, default=16, help="random pier tasks (reset seeds) per gait")
    parser.add_argument("--speed-steps", type=int, default=4000, help="steps per speed measurement (0: skip)")
    parser.add_argument("--speed-repeats", type=int, default=5)
    parser.add_argument("--xml-file", help="another pier MJCF (e.g. an older design), to compare")
    parser.add_argument("--damping-range", type=float, nargs=2, help="block_damping_range (default: the env's)")
    parser.add_argument("--friction-range", type=float, nargs=2, help="block_friction_range (default: the env's)")
    args = parser.parse_args()
    design = {
        key: value
        for key, value in (
            ("xml_file", args.xml_file),
            ("block_damping_range", args.damping_range),
            ("block_friction_range", args.friction_range),
        )
        if value is not None
    }
    seeds = range(args.seeds)

    gaits, searched = search_gaits(args.candidates, args.top)
    print(f"sine gaits: the best {args.top} of {args.candidates} on HalfCheetah-v5 cover {np.round(searched, 1)} m in 10 s")
    env = gym.make("HalfCheetahPier-v0", task_switch_seconds=None, **design).unwrapped
    base = gym.make("HalfCheetah-v5").unwrapped
    print(f"pier ranges: {env.task_ranges}; columns: the best gait | median over the {args.top} best gaits\n")
    random_seeds = range(1000, 1000 + args.random_seeds)
    per_gait = [figures(env, base, gait.actions(STEPS_10S), seeds, random_seeds) for gait in gaits]
    best = per_gait[0]

    def both(values: list[float], fmt: str) -> str:
        return f"{fmt.format(values[0])} | {fmt.format(float(np.median(values)))}"

    print(f"10 s progress, median of {args.seeds} reset seeds:")
    for key in best["corners"]:
        values = [f["corners"][key] for f in per_gait]
        print(f"  extreme task damping {key[0]:6.1f}, friction {key[1]:5.2f}: {both(values, '{:6.1f} m')}")
    medians = {key: float(np.median([f["corners"][key] for f in per_gait])) for key in best["corners"]}
    print(
        f"  largest / smallest over the extreme tasks: {ratio_text(list(best['corners'].values()))} | "
        f"{ratio_text(list(medians.values()))} (target >= 2)"
    )
    print(f"  {args.random_seeds} random pier tasks, median: {both([f['random'] for f in per_gait], '{:6.1f} m')}")
    print(f"  the same seeds on HalfCheetah-v5:  {both([f['base'] for f in per_gait], '{:6.1f} m')}")
    print(f"  pier / HalfCheetah-v5:             {both([f['random'] / f['base'] for f in per_gait], '{:6.2f}')}")
    print(f"  random piers crossed beyond 5 m:   {both([f['random_over_5m'] for f in per_gait], '{:6.2f}')}")
    print("one-step effect (target >= 10 %):")
    for name in best["effects"]:
        print(f"  {name:44s} {both([100 * f['effects'][name] for f in per_gait], '{:5.1f} %')}")
    print(
        f"deepest the cheetah sinks below the lowest block top: {max(f['below_pier'] for f in per_gait):.3f} m "
        f"(HalfCheetah-v5 below its floor: {max(f['below_floor'] for f in per_gait):.3f} m), over all gaits\n"
        f"blocks on their hard stop: {both([100 * f['hard_stop_fraction'] for f in per_gait], '{:.1f} %')} of steps\n"
        f"farthest from a block centre: {max(f['farthest_from_a_block'] for f in per_gait):.2f} m over all gaits "
        f"(blocks are 4 m long)"
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
            f"steps/s: pier {np.median(rates[:, 0]):.0f}, HalfCheetah-v5 {np.median(rates[:, 1]):.0f}, "
            f"ratio {ratio:.2f} (median of {args.speed_repeats} interleaved repeats; target >= 0.6)"
        )


if __name__ == "__main__":
    main()
