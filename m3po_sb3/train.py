"""Train M3PO, M2PO, M3PO-h or history-SAC on one env and write the model, evaluations and learning curve.

``python -m m3po_sb3.train --env HalfCheetahFwdBwd-v0 --algo m3po --seed 0 --out runs/hc`` trains with the
env's Table-2 preset (:mod:`m3po_sb3.presets`) and writes ``model.zip``, ``eval.csv``, ``learning_curve.png``
and ``config.json`` into ``--out``. ``sac`` is the model-free baseline with the same history wrapper, features
extractor, networks, ``G`` and warm-up.
"""

import argparse
import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import stable_baselines3
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from m3po_sb3.diagnostics import DiagnosticsCallback
from m3po_sb3.evaluation import MetaEvalCallback
from m3po_sb3.history import HistoryObservation, history_policy_kwargs
from m3po_sb3.m3po import M2PO, M3PO
from m3po_sb3.plotting import plot_learning_curve
from m3po_sb3.presets import PRESETS, get_preset

try:  # registers the meta-RL envs with Gymnasium
    import meta_mujoco_envs  # noqa: F401
except ImportError:  # pragma: no cover - the package is optional for plain Gymnasium envs
    pass

ALGOS = ("m3po", "m2po", "m3po-h", "sac")
# Preset entries the command line may override (flag ``--rollouts-per-step`` for ``rollouts_per_step``, ...).
OVERRIDABLE = (
    "rollouts_per_step",
    "gradient_steps",
    "rollout_length",
    "history_length",
    "ensemble_size",
    "epoch_length",
    "rollout_every",
    "hybrid_schedule",
)


def build_parser() -> argparse.ArgumentParser:
    """:return: the command line parser of ``python -m m3po_sb3.train``"""
    parser = argparse.ArgumentParser(prog="python -m m3po_sb3.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True, help="Gymnasium env id, e.g. HalfCheetahFwdBwd-v0")
    parser.add_argument("--algo", choices=ALGOS, default="m3po")
    parser.add_argument("--timesteps", type=int, default=None, help="env steps (default: the preset's N * E)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--preset", default=None, help=f"hyper-parameter preset (default: the env id); one of {', '.join(PRESETS)}")
    parser.add_argument("--rollouts-per-step", type=int, help="M, model rollouts per env step")
    parser.add_argument("--gradient-steps", type=int, help="G, policy updates per env step")
    parser.add_argument("--rollout-length", type=int, help="k, steps per model rollout")
    parser.add_argument("--history-length", type=int, help="L, past (observation, action) pairs in a history")
    parser.add_argument("--ensemble-size", type=int, help="B, members of the model ensemble")
    parser.add_argument("--epoch-length", type=int, help="E, env steps per epoch (between model trainings)")
    parser.add_argument("--rollout-every", type=int, help="make the rollouts of this many env steps at once")
    parser.add_argument("--hybrid-schedule", type=int, nargs=2, metavar=("A", "B"), help="M3PO-h: beta from 1 at epoch A to 0 at B")
    parser.add_argument("--eval-freq", type=int, default=None, help="env steps between evaluations (default: E)")
    parser.add_argument("--eval-episodes", type=int, default=5, help="episodes per evaluation (the paper: 50)")
    parser.add_argument("--diagnostics", action="store_true", help="log eps_m, eps_pi and the TD error every epoch (diagnostics.csv)")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--torch-threads", type=int, default=None, help="torch CPU threads (default: torch's); 1 avoids contention on a busy machine"
    )
    parser.add_argument("--no-progress-bar", dest="progress_bar", action="store_false")
    return parser


def make_env(env_id: str, history_length: int) -> HistoryObservation:
    """
    :param env_id: Gymnasium env id
    :param history_length: ``L``
    :return: the env with history observations
    """
    return HistoryObservation(gym.make(env_id), history_length)


def make_agent(algo: str, env: HistoryObservation, config: dict[str, Any], seed: int, device: str = "auto") -> SAC:
    """
    :param algo: one of :data:`ALGOS`
    :param env: the training env (history observations)
    :param config: a preset (see :mod:`m3po_sb3.presets`)
    :param seed: random seed
    :param device: torch device
    :return: the agent; all use the same history networks, ``G`` and warm-up of one epoch of random actions
    """
    policy_kwargs = history_policy_kwargs(env.history_layout, config["gru_units"], config["net_arch"])
    common = dict(
        gradient_steps=config["gradient_steps"],
        batch_size=config["batch_size"],
        learning_starts=config["epoch_length"],
        policy_kwargs=policy_kwargs,
        seed=seed,
        device=device,
    )
    if algo == "sac":
        return SAC("MlpPolicy", env, buffer_size=config["env_buffer_size"], **common)
    if algo == "m3po-h" and config.get("hybrid_schedule") is None:
        raise ValueError("m3po-h needs a beta schedule: this preset has none, pass --hybrid-schedule A B")
    agent_class = M2PO if algo == "m2po" else M3PO
    model_kwargs = dict(config["model_kwargs"])
    ensemble_size = config["ensemble_size"]
    if agent_class is M3PO:  # the meta-model's GRU is the policy's size (M2PO's model has none)
        model_kwargs["gru_units"] = config["gru_units"]
    else:  # MBPO's model (seed A.9)
        ensemble_size, model_kwargs = config["m2po_ensemble_size"], dict(config["m2po_model_kwargs"])
    return agent_class(
        "MlpPolicy",
        env,
        env_buffer_size=config["env_buffer_size"],
        epoch_length=config["epoch_length"],
        rollouts_per_step=config["rollouts_per_step"],
        rollout_length=config["rollout_length"],
        rollout_every=config.get("rollout_every", 1),
        ensemble_size=ensemble_size,
        model_kwargs=model_kwargs,
        model_fit_kwargs=config.get("model_fit_kwargs"),
        hybrid_schedule=config["hybrid_schedule"] if algo == "m3po-h" else None,
        **common,
    )


def train(args: argparse.Namespace) -> SAC:
    """
    Train as the parsed command line says and write ``model.zip``, ``eval.csv``, ``learning_curve.png`` and
    ``config.json`` into ``args.out``.

    :param args: parsed by :func:`build_parser`
    :return: the trained agent
    """
    preset = args.env if args.preset is None else args.preset
    if preset not in PRESETS:
        raise SystemExit(f"no preset for {args.env!r}: pass --preset, one of {', '.join(PRESETS)}")
    config = get_preset(preset)
    config.update({key: getattr(args, key) for key in OVERRIDABLE if getattr(args, key) is not None})
    timesteps = config["n_epochs"] * config["epoch_length"] if args.timesteps is None else args.timesteps
    eval_freq = config["epoch_length"] if args.eval_freq is None else args.eval_freq

    if args.torch_threads is not None:
        th.set_num_threads(args.torch_threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "eval.csv"
    csv_path.unlink(missing_ok=True)  # one run per folder: no rows of an earlier run
    run = dict(vars(args), preset=preset, timesteps=timesteps, eval_freq=eval_freq, hyperparameters=config)
    run["versions"] = dict(python=platform.python_version(), torch=th.__version__, stable_baselines3=stable_baselines3.__version__)
    (out / "config.json").write_text(json.dumps(run, indent=2, default=str))

    agent = make_agent(args.algo, make_env(args.env, config["history_length"]), config, args.seed, args.device)
    eval_env = DummyVecEnv([lambda: Monitor(make_env(args.env, config["history_length"]))])
    eval_env.seed(args.seed + 1)  # evaluation episodes differ from the training ones
    callbacks: list[BaseCallback] = [MetaEvalCallback(eval_env, str(csv_path), n_eval_episodes=args.eval_episodes, eval_freq=eval_freq)]
    if args.diagnostics:
        (out / "diagnostics.csv").unlink(missing_ok=True)
        callbacks.append(DiagnosticsCallback(config["epoch_length"], str(out / "diagnostics.csv")))
    agent.learn(timesteps, callback=callbacks, progress_bar=args.progress_bar)
    agent.save(out / "model.zip")
    plot_learning_curve([csv_path], out / "learning_curve.png", labels=[f"{args.algo} seed {args.seed}"], title=args.env)
    return agent


def main(argv: Sequence[str] | None = None) -> SAC:
    """
    :param argv: command line arguments (default: ``sys.argv[1:]``)
    :return: the trained agent
    """
    return train(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
