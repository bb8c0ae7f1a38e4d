"""The model-based engine against plain SAC on a stationary task nobody tuned it for: ``Pendulum-v1``.

MBPO's claim is that its model's rollouts make SAC more sample-efficient at the same number of updates per env
step. This benchmark checks that M2PO (MBPO with a history-conditioned policy; its class defaults, i.e. MBPO's
model, fit period, rollout batch and real-data ratio) and M3PO reach plain SB3 SAC's final return on
``Pendulum-v1`` at equal ``G``, in several settings: ``L`` (history length: 2 or 10) and SAC's learning rate
(3e-4, SB3's default, or 1e-3, RL Zoo's for Pendulum). Common to all: 3 000 env steps, ``G = 5`` updates per
step, 64-64 SAC networks, batches of 256, one torch thread. M3PO runs Table 2's meta-model at 64 units with a
fit every 250 steps and ``M = 100`` rollouts per step made 50 steps' worth at a time; M2PO runs its defaults
(``--m2po-model-units`` shrinks MBPO's 200-unit model). Plain SAC sees the raw observation (``L`` does not
apply). Every 500 steps SB3's ``EvalCallback`` scores the policy (mean return of 10 deterministic episodes of a
seeded env); the summary reports the final evaluation's IQM over seeds with its stratified-bootstrap 95 %
interval, and each model-based agent's probability of improvement over SAC (rliable).

    python benchmarks/pendulum_parity.py --settings L10-lr3e-4 --algos sac m2po m3po --seeds 0 1 2 3 4
    python benchmarks/pendulum_parity.py --aggregate-only         # the summary of the runs found

Runs go to ``--runs/SETTING/ALGO/seed_N/eval.csv`` (``timesteps, mean_return, std_return, n_episodes``, as
``compare.py``'s; plain SAC's to ``--runs/lrLR/sac/seed_N``, shared by the settings of its learning rate); a
finished run is not run again.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
from compare import iqm_with_interval
from results_page import probability_of_improvement
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.monitor import Monitor

from m3po_sb3 import M2PO, M3PO
from m3po_sb3.history import HistoryObservation, history_policy_kwargs
from m3po_sb3.models.networks import MBPO_MODEL_KWARGS
from m3po_sb3.run.plotting import read_csv_columns

STEPS = 3_000
EVAL_FREQ = 500
EVAL_EPISODES = 10
GRADIENT_STEPS = 5
NET_ARCH = (64, 64)
ALGOS = ("sac", "m2po", "m3po")
SETTING_PATTERN = re.compile(r"^L(\d+)-lr([0-9.e-]+)$")


def parse_setting(setting: str) -> tuple[int, float]:
    """:return: ``(L, learning rate)`` of a setting named ``L<history length>-lr<learning rate>``"""
    match = SETTING_PATTERN.match(setting)
    if match is None:
        raise argparse.ArgumentTypeError(f"a setting reads L<history length>-lr<learning rate>, e.g. L10-lr3e-4; got {setting!r}")
    return int(match[1]), float(match[2])


def make_agent(algo: str, history_length: int, learning_rate: float, seed: int, m2po_model_units: int | None):
    """:return: the agent of ``algo`` on ``Pendulum-v1`` in one setting (module docstring), and its evaluation env's wrapper"""
    common = dict(learning_rate=learning_rate, gradient_steps=GRADIENT_STEPS, batch_size=256, seed=seed)
    if algo == "sac":
        return SAC("MlpPolicy", gym.make("Pendulum-v1"), policy_kwargs=dict(net_arch=list(NET_ARCH)), **common), lambda env: env
    env = HistoryObservation(gym.make("Pendulum-v1"), history_length)
    policy_kwargs = history_policy_kwargs(env.history_layout, net_arch=NET_ARCH)
    if algo == "m2po":
        model_kwargs = None if m2po_model_units is None else dict(MBPO_MODEL_KWARGS, hidden_units=m2po_model_units)
        agent = M2PO("MlpPolicy", env, env_buffer_size=STEPS, model_kwargs=model_kwargs, policy_kwargs=policy_kwargs, **common)
    else:
        agent = M3PO(
            "MlpPolicy",
            env,
            epoch_length=250,
            rollouts_per_step=100,
            rollout_every=50,
            env_buffer_size=STEPS,
            model_kwargs=dict(hidden_units=64, num_hidden_layers=2),
            policy_kwargs=policy_kwargs,
            **common,
        )
    return agent, lambda env: HistoryObservation(env, history_length)


def run_folder(runs: Path, setting: str, algo: str, seed: int) -> Path:
    """:return: the folder of a run; plain SAC's depends on the learning rate alone"""
    if algo == "sac":
        setting = f"lr{parse_setting(setting)[1]:g}"
    return runs / setting / algo / f"seed_{seed}"


def run_one(folder: Path, algo: str, setting: str, seed: int, m2po_model_units: int | None) -> str:
    """Train one run and write its ``eval.csv`` (once finished: a partial run leaves nothing)."""
    path = folder / "eval.csv"
    if path.is_file():
        return f"{path} exists"
    th.set_num_threads(1)
    history_length, learning_rate = parse_setting(setting)
    agent, wrap = make_agent(algo, history_length, learning_rate, seed, m2po_model_units)
    eval_env = Monitor(wrap(gym.make("Pendulum-v1")))
    eval_env.reset(seed=1000 + seed)
    log = folder / "sb3_eval"
    evaluations = EvalCallback(eval_env, n_eval_episodes=EVAL_EPISODES, eval_freq=EVAL_FREQ, log_path=str(log), deterministic=True, verbose=0)
    agent.learn(STEPS, callback=evaluations)
    scores = np.asarray(evaluations.evaluations_results, dtype=float)
    if not np.isfinite(scores).all():
        raise FloatingPointError(f"{folder}: non-finite evaluation returns {scores}")
    rows = zip(evaluations.evaluations_timesteps, scores.mean(axis=1), scores.std(axis=1), [scores.shape[1]] * len(scores))
    partial = path.with_suffix(".partial")
    with open(partial, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["timesteps", "mean_return", "std_return", "n_episodes"])
        writer.writerows(rows)
    partial.rename(path)
    return f"{path}: final {scores[-1].mean():.0f}"


def summary(runs: Path, settings: list[str], algos: list[str], seeds: list[int]) -> str:
    """:return: a markdown table per setting of the final evaluation's IQM [95 % interval] and P(improvement) over SAC"""
    lines = ["| setting | algo | seeds | final return, IQM [95 % CI] | P(algo > SAC) [95 % CI] |", "|---|---|---|---|---|"]
    for setting in settings:
        finals = {}
        for algo in algos:
            paths = [run_folder(runs, setting, algo, seed) / "eval.csv" for seed in seeds]
            found = [path for path in paths if path.is_file()]
            if found:
                finals[algo] = np.array([read_csv_columns(path)["mean_return"][-1] for path in found], dtype=float)
        for algo, scores in finals.items():
            iqm, low, high = (float(x[0]) for x in iqm_with_interval(scores[:, None]))
            poi = "–"
            if algo != "sac" and "sac" in finals:
                poi = "{:.2f} [{:.2f}, {:.2f}]".format(*probability_of_improvement(scores, finals["sac"]))
            lines.append(f"| {setting} | {algo} | {len(scores)} | {iqm:.0f} [{low:.0f}, {high:.0f}] | {poi} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=["L10-lr3e-4", "L2-lr3e-4", "L10-lr1e-3", "L2-lr1e-3"])
    parser.add_argument("--algos", nargs="+", choices=ALGOS, default=list(ALGOS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--runs", type=Path, default=Path("benchmarks/comparison/pendulum"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--m2po-model-units", type=int, default=None, help="hidden units of M2PO's model (default: MBPO's 200)")
    parser.add_argument("--aggregate-only", action="store_true")
    args = parser.parse_args()
    for setting in args.settings:
        try:
            parse_setting(setting)
        except argparse.ArgumentTypeError as error:
            parser.error(str(error))
    if not args.aggregate_only:
        jobs = {run_folder(args.runs, *job[:2], job[2]): job for job in itertools.product(args.settings, args.algos, args.seeds)}
        with ProcessPoolExecutor(args.workers) as pool:
            futures = [pool.submit(run_one, folder, algo, setting, seed, args.m2po_model_units) for folder, (setting, algo, seed) in jobs.items()]
            for future in futures:
                print(future.result(), flush=True)
    print(summary(args.runs, args.settings, args.algos, args.seeds))


if __name__ == "__main__":
    main()
