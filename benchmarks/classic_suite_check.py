"""The classic suite with the library's agents: an oracle SAC that sees the task learns, and history-SAC, M3PO and
PEARL run on the classic envs unchanged, against the random policy.

By default one reward family (``PointRobot-v0``, 3 000 steps per run) and one dynamics family
(``HopperRandParams-v0``, 8 000 steps), the oracle (history-SAC on ``task_in_obs=True``), history-SAC (``sac``),
M3PO and PEARL, 3 seeds, with the ``cpu`` preset (one task per episode, as the originals; the first 1 000 steps
random). The budgets are what two CPU cores run in about an hour and a half; they are short for the cheetahs: on
``HalfCheetahVel-v0`` the oracle was still below standing still after 4 000 steps. The grid is trained and
aggregated by ``compare.py`` (its tables and plots go to ``--results``); this script then prints, per env and algorithm, the final evaluation return
(mean ± std over seeds) next to the random policy's, and the verdicts: the oracle learns (every seed's final
return above the random policy's and above standing still's, which beats the random policy on the reward
families); every run finished with finite returns. It exits with status 1 unless both hold.

    python benchmarks/classic_suite_check.py                     # the check (about 1.5 h on 2 cores)
    python benchmarks/classic_suite_check.py --envs HalfCheetahVel-v0 --timesteps 20000   # a longer one
    python benchmarks/classic_suite_check.py --timesteps 500 --seeds 0 --runs /tmp/classic -- --preset demo \
        --epoch-length 250 --eval-freq 250 --eval-episodes 1 --no-progress-bar      # a smoke test (minutes)
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
from compare import main as compare_main

from m3po_sb3.run.plotting import random_policy_return, read_csv_columns
from m3po_sb3.run.folders import read_status
from m3po_sb3.run.sweep import run_dir

# env -> env steps per run: the point robot's oracle is near its goals by 3 000 steps; the hopper's was not yet
# above standing still (87) at 3 000 on the two seeds that got there first (these same seeds are reported).
DEFAULT_BUDGETS = {"PointRobot-v0": 3000, "HopperRandParams-v0": 8000}
DEFAULT_ALGOS = ("oracle", "sac", "m3po", "pearl")
DEFAULT_TRAIN_ARGS = "--preset cpu --eval-freq 1000 --eval-episodes 5 --no-progress-bar"


def final_returns(folders: list[Path]) -> list[float]:
    """The last evaluation's mean return of each run that evaluated (NaN for one that did not)."""
    returns = []
    for folder in folders:
        path = folder / "eval.csv"
        returns.append(float(read_csv_columns(path)["mean_return"][-1]) if path.is_file() else math.nan)
    return returns


def standing_still_return(env_id: str, episodes: int = 5) -> float:
    """Mean return of the zero action over ``episodes`` seeded episodes: a floor a learner must clear too, since on
    the reward families standing still beats the random policy (on HalfCheetahVel-v0 it scores -200 E[v] = -300,
    the random policy about -360)."""
    env = gym.make(env_id)
    returns = []
    for episode in range(episodes):
        env.reset(seed=episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(np.zeros(env.action_space.shape))
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def check(runs: str, envs: list[str], algos: list[str], seeds: list[int]) -> bool:
    """Print the final returns against the random policy's and standing still's, and the verdicts; ``True`` if
    all hold."""
    all_hold = True
    print(f"{'env':22s} {'algo':8s} {'final return (mean ± std)':>27s} {'random':>8s} {'still':>8s}  verdict")
    for env in envs:
        folders = {algo: [run_dir(runs, env, algo, seed) for seed in seeds] for algo in algos}
        random = random_policy_return([folder for algo in algos for folder in folders[algo]])
        still = standing_still_return(env)
        for algo in algos:
            returns = np.array(final_returns(folders[algo]))
            statuses = [(read_status(folder) or {}).get("status") for folder in folders[algo]]
            ran = np.isfinite(returns).all() and all(status == "finished" for status in statuses)
            verdict = "ran" if ran else f"FAILED (status {statuses})"
            if algo == "oracle" and ran and random is not None:
                learned = bool(returns.min() > max(random, still))
                verdict = "learns" if learned else "does NOT learn"
                ran = ran and learned
            all_hold = all_hold and ran
            random_text = f"{random:8.1f}" if random is not None else "     n/a"
            print(f"{env:22s} {algo:8s} {returns.mean():18.1f} ± {returns.std():6.1f} {random_text} {still:8.1f}  {verdict}")
    return all_hold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=list(DEFAULT_BUDGETS))
    parser.add_argument("--algos", nargs="+", default=list(DEFAULT_ALGOS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--timesteps", type=int, default=None, help=f"env steps per run (default: per env, {DEFAULT_BUDGETS})")
    parser.add_argument("--runs", default="benchmarks/comparison/classic", help="folder of the runs")
    parser.add_argument("--results", default="benchmarks/results/classic", help="folder of compare.py's outputs, one subfolder per env")
    parser.add_argument("--workers", type=int, default=None, help="local processes (default: the CPU count)")
    parser.add_argument("--aggregate-only", action="store_true", help="do not train, check the runs found")
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help=f"after --: arguments of every run ({DEFAULT_TRAIN_ARGS})")
    args = parser.parse_args()
    train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    for env in args.envs:
        if args.timesteps is None and env not in DEFAULT_BUDGETS:
            parser.error(f"no default budget for {env}: pass --timesteps")
        timesteps = args.timesteps or DEFAULT_BUDGETS[env]
        argv = ["--envs", env, "--algos", *args.algos, "--seeds", *map(str, args.seeds), "--timesteps", str(timesteps)]
        argv += ["--runs", args.runs, "--results", str(Path(args.results) / env), "--no-diagnostics"]
        argv += ["--workers", str(args.workers)] if args.workers else []
        argv += ["--aggregate-only"] if args.aggregate_only else []
        compare_main([*argv, "--", *(train_args or DEFAULT_TRAIN_ARGS.split())])
    print()
    if not check(args.runs, args.envs, args.algos, args.seeds):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
