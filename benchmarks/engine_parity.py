"""The model-based engine against plain SAC on stationary tasks nobody tuned it for.

MBPO's claim is that its model's rollouts make SAC more sample-efficient at the same number of updates per env
step. This benchmark checks whether M2PO (MBPO with a history-conditioned policy: its class defaults, i.e. MBPO's
fit period, rollout batch, real-data ratio and model) and M3PO reach plain SB3 SAC's return at equal ``G``, in
settings named ``L<history length>-lr<SAC's learning rate>``, optionally followed by ``-rr<ratio>``, the share of
real transitions in every SAC minibatch of M2PO and M3PO (``real_ratio``; without it each class's default: M2PO
0.05 as MBPO, M3PO 0 as the paper), and by ``-G<updates per step>`` (without it the env's ``G`` below).

Per env (``--env``; :data:`BENCHES`):

- ``Pendulum-v1``: 3 000 env steps, ``G = 5``, 64-64 SAC networks, an evaluation of 10 episodes every 500 steps;
  M2PO's model has 64 units (MBPO's 200 cost about three times as much here), M3PO runs Table 2's meta-model at
  64 units with ``M = 100`` rollouts per step, M2PO MBPO's 400. ``L`` 2 or 10, the learning rate 3e-4 (SB3's
  default) or 1e-3 (RL Zoo's for Pendulum).
- ``HalfCheetah-v5`` and ``Hopper-v5``: 20 000 env steps, ``G = 10``, 256-256 SAC networks (MBPO's), an
  evaluation of 5 episodes every 1 000 steps; M2PO with MBPO's model (200 units) and ``M = 400``; M3PO's
  meta-model at 200 units with ``M = 400``.

Common to all: batches of 256, one torch thread; M3PO fits its model every 250 steps and makes its rollouts 50
steps' worth at a time. Plain SAC (``sb3-sac``) sees the raw observation, so ``L`` and the real-data ratio do not
apply to it; history-SAC (``sac``) is the same SAC with the model-based agents' history-conditioned networks,
which separates what the model adds from what reading a history costs. SB3's ``EvalCallback`` scores the policy
(mean return of deterministic episodes of a seeded env).

    python benchmarks/engine_parity.py --settings L10-lr3e-4 --algos sb3-sac m2po m3po --seeds 0 1 2 3 4
    python benchmarks/engine_parity.py --settings L10-lr3e-4-rr0.5 --algos m2po m3po --seeds 5 6 7 --prefix pendulum-dev
    python benchmarks/engine_parity.py --env HalfCheetah-v5 --settings L10-lr3e-4 L10-lr3e-4-G20 --algos sb3-sac m2po
    python benchmarks/engine_parity.py --settings L10-lr3e-4 --aggregate-only    # the tables of the runs found

Each run is a folder of the results page (``benchmarks/results_page.py``): ``--runs/PREFIX_SETTING/ENV/ALGO/
seed_N/`` with ``eval.csv``, ``random_policy.csv``, ``config.json`` and ``status.json``, ``PREFIX`` the env's
(``pendulum``, ``halfcheetah``, ``hopper``) or ``--prefix``; plain SAC's under ``PREFIX_lrLR`` (``-G<G>`` appended
where the setting names one), shared by the settings of its learning rate. A finished run is not run again. The tables are
the page's: IQM over seeds with 95 % stratified-bootstrap intervals at the last step and over the last
evaluations, and each model-based agent's probability of improvement over SAC with a rank test.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Bench:
    """The fixed part of an env's benchmark (module docstring)."""

    prefix: str  # of its run folders
    steps: int
    eval_freq: int
    eval_episodes: int
    gradient_steps: int  # G, unless the setting names one
    net_arch: tuple[int, ...]
    model_units: int  # hidden units of M2PO's model and M3PO's meta-model
    m3po_rollouts_per_step: int  # M of M3PO (M2PO's is its class default, MBPO's 400)


_MBPO_SIZES = dict(
    steps=20_000, eval_freq=1_000, eval_episodes=5, gradient_steps=10, net_arch=(256, 256), model_units=200, m3po_rollouts_per_step=400
)
BENCHES = {
    "Pendulum-v1": Bench(
        "pendulum",
        steps=3_000,
        eval_freq=500,
        eval_episodes=10,
        gradient_steps=5,
        net_arch=(64, 64),
        model_units=64,
        m3po_rollouts_per_step=100,
    ),
    "HalfCheetah-v5": Bench("halfcheetah", **_MBPO_SIZES),
    "Hopper-v5": Bench("hopper", **_MBPO_SIZES),
}
ALGOS = ("sb3-sac", "sac", "m2po", "m3po")
SETTING = re.compile(r"^L(\d+)-lr([0-9.]+(?:e-?[0-9]+)?)(?:-rr([0-9.]+))?(?:-G(\d+))?$")


@dataclass(frozen=True)
class Setting:
    """A setting named ``L<history length>-lr<learning rate>[-rr<real_ratio>][-G<updates per step>]``."""

    history_length: int
    learning_rate: float
    real_ratio: float | None  # None: each agent's class default
    gradient_steps: int | None  # None: the env's

    def updates_per_step(self, bench: Bench) -> int:
        """:return: ``G``, the setting's or else the env's"""
        return self.gradient_steps or bench.gradient_steps


def parse_setting(setting: str) -> Setting:
    """:return: the setting named ``setting`` (:class:`Setting`)"""
    match = SETTING.match(setting)
    real_ratio = None if match is None or match[3] is None else float(match[3])
    if match is None or not (real_ratio is None or 0.0 <= real_ratio <= 1.0) or (match[4] is not None and int(match[4]) == 0):
        raise ValueError(
            "a setting reads L<history length>-lr<learning rate>[-rr<real_ratio in [0, 1]>][-G<updates per step>], "
            f"e.g. L10-lr3e-4, L10-lr3e-4-rr0.5 or L10-lr3e-4-G20; got {setting!r}"
        )
    return Setting(int(match[1]), float(match[2]), real_ratio, None if match[4] is None else int(match[4]))


def group(env: str, setting: str, algo: str, prefix: str | None = None) -> str:
    """
    :param prefix: of the run folders (default: the env's)
    :return: the results page's group (``FOLDER:ENV:ALGO``) of an algorithm's runs in a setting
    """
    prefix, match = prefix or BENCHES[env].prefix, SETTING.match(setting)
    folder = f"{prefix}_lr{match[2]}" + (f"-G{match[4]}" if match[4] else "") if algo == "sb3-sac" else f"{prefix}_{setting}"
    return f"{folder}:{env}:{algo}"


def make_agent(env_id: str, algo: str, setting: Setting, seed: int, m2po_model_units: int):
    """:return: the agent of ``algo`` in one setting (module docstring), and the wrapper of its observations"""
    bench = BENCHES[env_id]
    common = dict(learning_rate=setting.learning_rate, gradient_steps=setting.updates_per_step(bench), batch_size=256, seed=seed)
    if algo == "sb3-sac":
        return SAC("MlpPolicy", gym.make(env_id), policy_kwargs=dict(net_arch=list(bench.net_arch)), **common), lambda env: env

    def wrap(env: gym.Env) -> HistoryObservation:
        return HistoryObservation(env, setting.history_length)

    env = wrap(gym.make(env_id))
    common.update(policy_kwargs=history_policy_kwargs(env.history_layout, net_arch=bench.net_arch))
    model_based = dict(env_buffer_size=bench.steps, **common)
    model_based |= {} if setting.real_ratio is None else dict(real_ratio=setting.real_ratio)
    if algo == "sac":
        agent = HistorySAC("MlpPolicy", env, buffer_size=bench.steps, **common)
    elif algo == "m2po":
        agent = M2PO("MlpPolicy", env, model_kwargs=dict(MBPO_MODEL_KWARGS, hidden_units=m2po_model_units), **model_based)
    else:
        agent = M3PO(
            "MlpPolicy",
            env,
            epoch_length=250,
            rollouts_per_step=bench.m3po_rollouts_per_step,
            rollout_every=50,
            model_kwargs=dict(hidden_units=bench.model_units, num_hidden_layers=2),
            **model_based,
        )
    return agent, wrap


def run_one(folder: Path, env_id: str, algo: str, setting_name: str, seed: int, m2po_model_units: int) -> str:
    """Train one run into ``folder`` (a run folder of the results page)."""
    if (read_status(folder) or {}).get("status") == "finished":
        return f"{folder}: finished before"
    th.set_num_threads(1)
    bench, setting = BENCHES[env_id], parse_setting(setting_name)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("eval.csv", RANDOM_POLICY_CSV):
        (folder / stale).unlink(missing_ok=True)
    args = dict(env=env_id, algo=algo, seed=seed, timesteps=bench.steps, eval_freq=bench.eval_freq, eval_episodes=bench.eval_episodes)
    args |= dict(gradient_steps=setting.updates_per_step(bench), learning_rate=setting.learning_rate)
    args |= {} if algo == "sb3-sac" else dict(history_length=setting.history_length)
    args |= dict(m2po_model_units=m2po_model_units) if algo == "m2po" else {}
    args |= dict(real_ratio=setting.real_ratio) if setting.real_ratio is not None and algo in ("m2po", "m3po") else {}
    (folder / "config.json").write_text(json.dumps(dict(args=args), indent=2))
    write_status(folder, "running", 0, bench.steps)
    agent, wrap = make_agent(env_id, algo, setting, seed, m2po_model_units)
    eval_env = DummyVecEnv([lambda: Monitor(wrap(gym.make(env_id)))])
    eval_env.seed(1000 + seed)
    append_eval_row(folder / RANDOM_POLICY_CSV, 0, random_policy_returns(eval_env, bench.eval_episodes, seed))
    eval_env.seed(1000 + seed)
    evaluations = EvalCallback(
        eval_env, n_eval_episodes=bench.eval_episodes, eval_freq=bench.eval_freq, log_path=str(folder / "sb3_eval"), verbose=0
    )
    agent.learn(bench.steps, callback=evaluations)
    for step, returns in zip(evaluations.evaluations_timesteps, evaluations.evaluations_results):
        if not np.isfinite(returns).all():
            raise FloatingPointError(f"{folder}: non-finite evaluation returns at step {step}: {returns}")
        append_eval_row(folder / "eval.csv", step, returns)
    write_status(folder, "finished", bench.steps, bench.steps)
    return f"{folder}: final {sum(returns) / len(returns):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", choices=BENCHES, default="Pendulum-v1")
    parser.add_argument("--settings", nargs="+", default=["L10-lr3e-4", "L2-lr3e-4", "L10-lr1e-3", "L2-lr1e-3"])
    parser.add_argument("--algos", nargs="+", choices=ALGOS, default=list(ALGOS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--runs", type=Path, default=Path(__file__).resolve().parent / "comparison")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--prefix", default=None, help="of the run folders (default: the env's), e.g. for runs on seeds not reported")
    parser.add_argument("--m2po-model-units", type=int, default=None, help="hidden units of M2PO's model (default: the env's)")
    parser.add_argument("--aggregate-only", action="store_true", help="do not train: the tables of the runs found")
    args = parser.parse_args()
    for setting in args.settings:
        try:
            parse_setting(setting)
        except ValueError as error:
            parser.error(str(error))
    steps, m2po_model_units = BENCHES[args.env].steps, args.m2po_model_units or BENCHES[args.env].model_units
    if not args.aggregate_only:
        jobs = {}  # folder -> job: plain SAC's run serves every setting of its learning rate
        for setting, seed, algo in itertools.product(args.settings, args.seeds, args.algos):
            folder, env, name = group(args.env, setting, algo, args.prefix).split(":")
            jobs.setdefault(args.runs / folder / env / name / f"seed_{seed}", (args.env, algo, setting, seed))
        with ProcessPoolExecutor(args.workers) as pool:
            futures = [pool.submit(run_one, folder, *job, m2po_model_units) for folder, job in jobs.items()]
            for future in futures:
                print(future.result(), flush=True)
    for setting in args.settings:
        groups = [group(args.env, setting, algo, args.prefix) for algo in args.algos]
        print(f"\n{setting}\n" + groups_table(steps, groups, args.runs))
        pairs = [f"{name}>{group(args.env, setting, 'sb3-sac', args.prefix)}" for name in groups if not name.endswith("sb3-sac")]
        if pairs and "sb3-sac" in args.algos:
            print(orders_table(steps, pairs, args.runs))


if __name__ == "__main__":
    main()
