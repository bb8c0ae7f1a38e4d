"""The model-based engine against plain SAC on a stationary task nobody tuned it for: ``Pendulum-v1``.

MBPO's claim is that its model's rollouts make SAC more sample-efficient at the same number of updates per env
step. This benchmark checks whether M2PO (MBPO with a history-conditioned policy: its class defaults, i.e. MBPO's
fit period, rollout batch, real-data ratio and model) and M3PO reach plain SB3 SAC's final return on
``Pendulum-v1`` at equal ``G``, in several settings named ``L<history length>-lr<SAC's learning rate>``: ``L`` 2 or
10, the learning rate 3e-4 (SB3's default) or 1e-3 (RL Zoo's for Pendulum). Common to all: 3 000 env steps,
``G = 5`` updates per step, 64-64 SAC networks, batches of 256, one torch thread. M2PO's model has 64 units
(``--m2po-model-units``; MBPO's 200 cost about three times as much here), M3PO runs Table 2's meta-model at 64
units with a fit every 250 steps and ``M = 100`` rollouts per step made 50 steps' worth at a time. Plain SAC
(``sb3-sac``) sees the raw observation, so ``L`` does not apply to it; history-SAC (``sac``) is the same SAC
with the model-based agents' history-conditioned networks, which separates what the model adds from what
reading a history costs. Every 500 steps SB3's ``EvalCallback``
scores the policy (mean return of 10 deterministic episodes of a seeded env).

    python benchmarks/pendulum_parity.py --settings L10-lr3e-4 --algos sb3-sac m2po m3po --seeds 0 1 2 3 4
    python benchmarks/pendulum_parity.py --settings L10-lr3e-4 --aggregate-only    # the tables of the runs found

Each run is a folder of the results page (``benchmarks/results_page.py``): ``--runs/pendulum_SETTING/Pendulum-v1/
ALGO/seed_N/`` with ``eval.csv``, ``random_policy.csv``, ``config.json`` and ``status.json`` (plain SAC's under
``pendulum_lrLR``, shared by the settings of its learning rate); a finished run is not run again. The tables are
the page's: IQM over seeds with 95 % stratified-bootstrap intervals at the last step and over the last
evaluations, and each model-based agent's probability of improvement over SAC with a rank test.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
from results_page import groups_table, orders_table
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from m3po_sb3 import M2PO, M3PO, HistorySAC
from m3po_sb3.callbacks.evaluation import append_eval_row, random_policy_returns
from m3po_sb3.history import HistoryObservation, history_policy_kwargs
from m3po_sb3.models.networks import MBPO_MODEL_KWARGS
from m3po_sb3.run.folders import read_status, write_status
from m3po_sb3.run.plotting import RANDOM_POLICY_CSV

ENV = "Pendulum-v1"
STEPS = 3_000
EVAL_FREQ = 500
EVAL_EPISODES = 10
GRADIENT_STEPS = 5
NET_ARCH = (64, 64)
ALGOS = ("sb3-sac", "sac", "m2po", "m3po")
SETTING = re.compile(r"^L(\d+)-lr([0-9.e-]+)$")


def parse_setting(setting: str) -> tuple[int, float]:
    """:return: ``(L, learning rate)`` of a setting named ``L<history length>-lr<learning rate>``"""
    match = SETTING.match(setting)
    if match is None:
        raise ValueError(f"a setting reads L<history length>-lr<learning rate>, e.g. L10-lr3e-4; got {setting!r}")
    return int(match[1]), float(match[2])


def group(setting: str, algo: str) -> str:
    """:return: the results page's group (``FOLDER:ENV:ALGO``) of an algorithm's runs in a setting"""
    folder = f"pendulum_lr{setting.split('-lr')[1]}" if algo == "sb3-sac" else f"pendulum_{setting}"
    return f"{folder}:{ENV}:{algo}"


def make_agent(algo: str, history_length: int, learning_rate: float, seed: int, m2po_model_units: int):
    """:return: the agent of ``algo`` in one setting (module docstring), and the wrapper of its observations"""
    common = dict(learning_rate=learning_rate, gradient_steps=GRADIENT_STEPS, batch_size=256, seed=seed)
    if algo == "sb3-sac":
        return SAC("MlpPolicy", gym.make(ENV), policy_kwargs=dict(net_arch=list(NET_ARCH)), **common), lambda env: env

    def wrap(env: gym.Env) -> HistoryObservation:
        return HistoryObservation(env, history_length)

    env = wrap(gym.make(ENV))
    common.update(policy_kwargs=history_policy_kwargs(env.history_layout, net_arch=NET_ARCH))
    if algo == "sac":
        agent = HistorySAC("MlpPolicy", env, buffer_size=STEPS, **common)
    elif algo == "m2po":
        agent = M2PO("MlpPolicy", env, env_buffer_size=STEPS, model_kwargs=dict(MBPO_MODEL_KWARGS, hidden_units=m2po_model_units), **common)
    else:
        model_kwargs = dict(hidden_units=64, num_hidden_layers=2)
        agent = M3PO(
            "MlpPolicy", env, env_buffer_size=STEPS, epoch_length=250, rollouts_per_step=100, rollout_every=50, model_kwargs=model_kwargs, **common
        )
    return agent, wrap


def run_one(folder: Path, algo: str, setting: str, seed: int, m2po_model_units: int) -> str:
    """Train one run into ``folder`` (a run folder of the results page)."""
    if (read_status(folder) or {}).get("status") == "finished":
        return f"{folder}: finished before"
    th.set_num_threads(1)
    history_length, learning_rate = parse_setting(setting)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("eval.csv", RANDOM_POLICY_CSV):
        (folder / stale).unlink(missing_ok=True)
    args = dict(env=ENV, algo=algo, seed=seed, timesteps=STEPS, eval_freq=EVAL_FREQ, eval_episodes=EVAL_EPISODES)
    args |= dict(gradient_steps=GRADIENT_STEPS, learning_rate=learning_rate) | ({} if algo == "sb3-sac" else dict(history_length=history_length))
    args |= dict(m2po_model_units=m2po_model_units) if algo == "m2po" else {}
    (folder / "config.json").write_text(json.dumps(dict(args=args), indent=2))
    write_status(folder, "running", 0, STEPS)
    agent, wrap = make_agent(algo, history_length, learning_rate, seed, m2po_model_units)
    eval_env = DummyVecEnv([lambda: Monitor(wrap(gym.make(ENV)))])
    eval_env.seed(1000 + seed)
    append_eval_row(folder / RANDOM_POLICY_CSV, 0, random_policy_returns(eval_env, EVAL_EPISODES, seed))
    eval_env.seed(1000 + seed)
    evaluations = EvalCallback(eval_env, n_eval_episodes=EVAL_EPISODES, eval_freq=EVAL_FREQ, log_path=str(folder / "sb3_eval"), verbose=0)
    agent.learn(STEPS, callback=evaluations)
    for step, returns in zip(evaluations.evaluations_timesteps, evaluations.evaluations_results):
        if not np.isfinite(returns).all():
            raise FloatingPointError(f"{folder}: non-finite evaluation returns at step {step}: {returns}")
        append_eval_row(folder / "eval.csv", step, returns)
    write_status(folder, "finished", STEPS, STEPS)
    return f"{folder}: final {sum(returns) / len(returns):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=["L10-lr3e-4", "L2-lr3e-4", "L10-lr1e-3", "L2-lr1e-3"])
    parser.add_argument("--algos", nargs="+", choices=ALGOS, default=list(ALGOS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--runs", type=Path, default=Path(__file__).resolve().parent / "comparison")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--m2po-model-units", type=int, default=64, help="hidden units of M2PO's model (MBPO: 200)")
    parser.add_argument("--aggregate-only", action="store_true", help="do not train: the tables of the runs found")
    args = parser.parse_args()
    for setting in args.settings:
        try:
            parse_setting(setting)
        except ValueError as error:
            parser.error(str(error))
    if not args.aggregate_only:
        jobs = {}  # folder -> job: plain SAC's run serves every setting of its learning rate
        for setting, seed, algo in itertools.product(args.settings, args.seeds, args.algos):
            folder, env, name = group(setting, algo).split(":")
            jobs.setdefault(args.runs / folder / env / name / f"seed_{seed}", (algo, setting, seed))
        with ProcessPoolExecutor(args.workers) as pool:
            futures = [pool.submit(run_one, folder, *job, args.m2po_model_units) for folder, job in jobs.items()]
            for future in futures:
                print(future.result(), flush=True)
    for setting in args.settings:
        groups = [group(setting, algo) for algo in args.algos]
        print(f"\n{setting}\n" + groups_table(STEPS, groups, args.runs))
        pairs = [f"{name}>{group(setting, 'sb3-sac')}" for name in groups if not name.endswith("sb3-sac")]
        if pairs and "sb3-sac" in args.algos:
            print(orders_table(STEPS, pairs, args.runs))


if __name__ == "__main__":
    main()
