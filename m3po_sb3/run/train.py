"""Train M3PO, M2PO, M3PO-h or a baseline (history-SAC, oracle, RL², PEARL) on one env; write the agent, its
evaluations and learning curve.

``python -m m3po_sb3.train --env HalfCheetahFwdBwd-v0 --algo m3po --seed 0`` trains with the env's Table-2
preset (:mod:`m3po_sb3.run.config`) into a new run folder, numbered as RL Zoo's (``logs/m3po/ENV_1``,
``ENV_2``, ...; ``--out DIR`` names it instead), which gets ``model.zip``, ``best_model.zip``, ``eval.csv``,
``random_policy.csv``, ``learning_curve.png``, ``config.json`` and ``status.json`` (:mod:`m3po_sb3.run.folders`).
Ctrl-C stops after the current step (RL²: after the current rollout of 1 000 steps) and leaves all of them
and a checkpoint; ``--resume DIR`` continues the run (:mod:`m3po_sb3.run.checkpoint`). ``sac`` is the model-free
baseline with the same history wrapper, features extractor, networks, ``G`` and warm-up; ``oracle`` is the
same agent on the env with the task in its observation (``task_in_obs=True``: a ceiling); ``rl2`` is RL²
(sb3-contrib's ``RecurrentPPO`` on histories of length 1, so that its input holds the last step's
observation, action and reward) with the preset's MLPs.
"""

import argparse
import ast
import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import stable_baselines3
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.vec_env import DummyVecEnv

from m3po_sb3.callbacks.diagnostics import DiagnosticsCallback
from m3po_sb3.callbacks.evaluation import MetaEvalCallback, append_eval_row, random_policy_returns
from m3po_sb3.history.wrapper import HistoryObservation
from m3po_sb3.run.checkpoint import (
    CHECKPOINT_DIR,
    RunCheckpointCallback,
    TrainingInterrupted,
    find_checkpoint,
    load_checkpoint,
    restore_eval_log,
    stop_on_interrupt,
)
from m3po_sb3.run.config import PRESETS, add_hyperparameter_flags, get_preset, given_hyperparameters, upgrade_hyperparameters
from m3po_sb3.run.folders import next_run_dir, read_config, read_status, write_status
from m3po_sb3.run.plotting import RANDOM_POLICY_CSV, plot_learning_curve, random_policy_return
from m3po_sb3.run.registry import ALGOS, agent_class, get_algo, make_agent, make_env

# What a run folder gets (beside config.json and status.json); a new run refuses a folder holding any of them.
RUN_FILES = ("model.zip", "best_model.zip", "eval.csv", "evaluations.npz", RANDOM_POLICY_CSV, "learning_curve.png", "diagnostics.csv")
DEFAULT_SAVE_EPOCHS = 10  # checkpoint every 10 epochs unless --save-freq says otherwise


class UsageError(ValueError):
    """A command line that cannot make a run (bad env id, preset, budget, device, output folder)."""


class StoreDict(argparse.Action):
    """RL Zoo's ``--env-kwargs key:value ...``: values are Python literals (``30``, ``None``, ``(1, 2)``) or strings."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        pairs = {}
        for item in values:
            key, sep, text = item.partition(":")
            if not sep or not key:
                parser.error(f"{option_string} takes KEY:VALUE pairs, got {item!r}")
            try:
                pairs[key] = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                pairs[key] = text
        setattr(namespace, self.dest, pairs)


def build_parser() -> argparse.ArgumentParser:
    """:return: the command line parser of ``python -m m3po_sb3.train``"""
    parser = argparse.ArgumentParser(prog="python -m m3po_sb3.train", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--env", help="Gymnasium env id, e.g. HalfCheetahFwdBwd-v0 (required unless --resume)")
    parser.add_argument("--algo", choices=tuple(ALGOS), default="m3po")
    parser.add_argument("--timesteps", type=int, default=None, help="env steps (default: the preset's N * E)")
    parser.add_argument("--seed", type=int, default=0)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("-f", "--log-folder", default="logs", help="runs go to LOG_FOLDER/ALGO/ENV_N, N numbering them (default: logs)")
    where.add_argument("--out", default=None, help="the run's folder instead (it must not hold a run yet)")
    where.add_argument("--resume", default=None, metavar="DIR", help="continue the interrupted run in DIR, with its own settings")
    parser.add_argument("-i", "--trained-agent", default=None, help="a model.zip to start from (its hyper-parameters; a new run)")
    parser.add_argument("--env-kwargs", nargs="+", action=StoreDict, default={}, metavar="KEY:VALUE", help="gym.make arguments, e.g. task_switch_seconds:30")
    parser.add_argument("--preset", choices=PRESETS, default=None, help="hyper-parameter preset (default: the env id's)")
    parser.add_argument("--history-length", type=int, help="L, past (observation, action) pairs in a history")
    parser.add_argument("--epoch-length", type=int, help="E, env steps per epoch (between model trainings; the warm-up of random actions)")
    add_hyperparameter_flags(parser)
    parser.add_argument(
        "--model-patience",
        type=int,
        help="M3PO/M2PO: epochs without a 1 %% held-out gain before a model fit stops (MBPO: 5); the meta-model "
        "learns the reward's dependence on the task late in a fit (benchmarks/README.md)",
    )
    parser.add_argument(
        "--calibrate-model",
        action="store_true",
        default=None,
        help="M3PO/M2PO: calibrate each model fit's variances on its holdout (fit(calibrate=True); off: MBPO)",
    )
    parser.add_argument("--eval-freq", type=int, default=None, help="env steps between evaluations (default: E)")
    parser.add_argument("--eval-episodes", type=int, default=5, help="episodes per evaluation (the paper: 50)")
    parser.add_argument("--save-freq", type=int, default=None, help=f"env steps between checkpoints (default: {DEFAULT_SAVE_EPOCHS} epochs; 0: only on Ctrl-C)")
    parser.add_argument("-tb", "--tensorboard-log", default=None, help="TensorBoard folder (runs named M3PO_1, M2PO_1, SAC_1, ...)")
    parser.add_argument("--diagnostics", action="store_true", help="log eps_m, eps_pi and the TD error every epoch (diagnostics.csv)")
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1, ...")
    parser.add_argument(
        "--torch-threads", type=int, default=None, help="torch CPU threads (default: torch's); 1 avoids contention on a busy machine"
    )
    parser.add_argument("--verbose", type=int, default=1, help="0: quiet; 1: a line per evaluation and checkpoint")
    parser.add_argument("--no-progress-bar", dest="progress_bar", action="store_false")
    return parser


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """
    Check the command line and derive the run's settings, before anything is written.

    :param args: parsed by :func:`build_parser` (a new run: not ``--resume``)
    :return: ``config.json``'s content: the command line (``args``), ``env``, ``algo``, ``preset``,
        ``timesteps``, ``eval_freq``, ``save_freq``, ``device`` and ``hyperparameters``
    """
    if args.env is None:
        raise UsageError("--env is required (unless --resume)")
    try:
        gym.spec(args.env)
    except gym.error.Error as error:
        raise UsageError(f"--env {args.env!r}: {error}") from None
    preset = args.env if args.preset is None else args.preset
    if preset not in PRESETS:
        raise UsageError(f"no preset for {args.env!r}: pass --preset, one of {', '.join(PRESETS)}")
    spec = get_algo(args.algo)
    config = get_preset(preset, args.algo)
    try:
        config.update(given_hyperparameters(args))
    except ValueError as error:
        raise UsageError(str(error)) from None
    env_kwargs = {**args.env_kwargs, **spec.env_kwargs}
    if spec.history_length is not None:
        if args.history_length not in (None, spec.history_length) or args.diagnostics:
            raise UsageError(f"--algo {args.algo} sees the last step only (history length 1) and has no diagnostics (they need a replay buffer)")
        config["history_length"] = spec.history_length
    fit_flags = (("--model-patience", args.model_patience is not None), ("--calibrate-model", args.calibrate_model))
    for flag, given in fit_flags:
        if given and "model_fit_kwargs" not in spec.tunable:
            algos = [algo for algo, other in ALGOS.items() if "model_fit_kwargs" in other.tunable]
            raise UsageError(f"{flag} is for the model-based agents ({', '.join(algos)}), not --algo {args.algo}")
    fit_options: dict[str, Any] = {}
    if args.model_patience is not None:
        if args.model_patience < 1:
            raise UsageError(f"--model-patience must be >= 1 epoch, got {args.model_patience}")
        fit_options["max_epochs_since_update"] = args.model_patience
    if args.calibrate_model:
        fit_options["calibrate"] = True
    if fit_options:
        config["model_fit_kwargs"] = {**(config.get("model_fit_kwargs") or {}), **fit_options}
    timesteps = config["n_epochs"] * config["epoch_length"] if args.timesteps is None else args.timesteps
    eval_freq = config["epoch_length"] if args.eval_freq is None else args.eval_freq
    if eval_freq < 1 or args.eval_episodes < 1:
        raise UsageError(f"--eval-freq and --eval-episodes must be >= 1, got {eval_freq} and {args.eval_episodes}")
    if timesteps < eval_freq:
        raise UsageError(f"--timesteps {timesteps} ends before the first evaluation, at step {eval_freq} (--eval-freq): nothing would be measured")
    device = get_device(args.device)
    if args.device.startswith("cuda") and device.type != "cuda":
        raise UsageError(f"--device {args.device}: torch sees no CUDA GPU here (torch {th.__version__}); use --device cpu")
    save_freq = DEFAULT_SAVE_EPOCHS * config["epoch_length"] if args.save_freq is None else args.save_freq
    return dict(
        args=vars(args),
        env=args.env,
        env_kwargs=env_kwargs,
        algo=args.algo,
        seed=args.seed,
        preset=preset,
        timesteps=timesteps,
        eval_freq=eval_freq,
        save_freq=save_freq,
        device=str(device),
        hyperparameters=config,
        versions=dict(python=platform.python_version(), torch=th.__version__, stable_baselines3=stable_baselines3.__version__),
    )


def new_run_folder(args: argparse.Namespace) -> Path:
    """
    :param args: parsed by :func:`build_parser`
    :return: ``--out`` if it holds no run, else the next RL Zoo-numbered folder of ``--log-folder``
    """
    if args.out is None:
        return next_run_dir(args.log_folder, args.algo, args.env)
    out = Path(args.out)
    found = [name for name in ("config.json", *RUN_FILES, CHECKPOINT_DIR) if (out / name).exists()]
    if found:
        raise UsageError(
            f"--out {out} already holds a run ({', '.join(found)}): continue it with --resume {out}, "
            "or choose a new --out (or -f/--log-folder, which numbers the runs)"
        )
    return out


def build_agent(config: dict[str, Any]) -> BaseAlgorithm:
    """
    :param config: the run's settings (:func:`run_settings`)
    :return: a new agent, or the ``--trained-agent`` loaded onto the run's env
    """
    args = config["args"]
    try:
        env = build_env(config)
    except TypeError as error:  # gym.make's keyword arguments come from --env-kwargs
        raise UsageError(f"--env-kwargs {config['env_kwargs']}: {error}") from None
    if args["trained_agent"] is None:
        hyperparameters = upgrade_hyperparameters(config["algo"], config["hyperparameters"])
        return make_agent(config["algo"], env, hyperparameters, config["seed"], config["device"], args["tensorboard_log"])
    return agent_class(config["algo"]).load(args["trained_agent"], env=env, device=config["device"], seed=config["seed"], tensorboard_log=args["tensorboard_log"])


def make_eval_env(config: dict[str, Any]) -> DummyVecEnv:
    """:return: the run's env in a ``DummyVecEnv`` with a ``Monitor``: the evaluation env (or a new training env)"""
    return DummyVecEnv([lambda: Monitor(build_env(config))])


def write_random_policy_returns(config: dict[str, Any], out: Path) -> None:
    """Evaluate the random policy on the evaluation episodes (the learning curve's floor) into ``random_policy.csv``."""
    env = make_eval_env(config)
    env.seed(config["seed"] + 1)
    append_eval_row(out / RANDOM_POLICY_CSV, 0, random_policy_returns(env, config["args"]["eval_episodes"], config["seed"]))


def train(args: argparse.Namespace) -> BaseAlgorithm:
    """
    Train as the parsed command line says, into a new run folder (or continue one with ``--resume``).

    :param args: parsed by :func:`build_parser`
    :return: the agent, trained or interrupted
    """
    if args.torch_threads is not None:
        th.set_num_threads(args.torch_threads)
    if args.resume is not None:
        return resume(args.resume, args.progress_bar)
    config = run_settings(args)
    agent = build_agent(config)  # bad hyper-parameters or env arguments fail here, before anything is written
    out = new_run_folder(args)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2, default=str))
    write_random_policy_returns(config, out)
    return run_training(agent, config, out, args.progress_bar)


def resume(folder: str | Path, progress_bar: bool = True) -> BaseAlgorithm:
    """
    Continue a run from its checkpoint (or start it over if it stopped before its first checkpoint).

    :param folder: the run folder
    :param progress_bar: show a progress bar
    :return: the agent, trained or interrupted again
    """
    folder = Path(folder)
    config = read_config(folder)
    status = read_status(folder)
    if status is not None and status["status"] == "finished":
        print(f"{folder} is finished ({status['num_timesteps']} steps): nothing to resume")
        return agent_class(config["algo"]).load(folder / "model.zip", device=config["device"])
    checkpoint = find_checkpoint(folder)
    if checkpoint is None:  # stopped before its first checkpoint: the same run, from the start
        for name in RUN_FILES:
            (folder / name).unlink(missing_ok=True)
        write_random_policy_returns(config, folder)
        return run_training(build_agent(config), config, folder, progress_bar)
    agent, eval_log = load_checkpoint(checkpoint, agent_class(config["algo"]), lambda: make_eval_env(config), config["device"])
    if config["args"]["verbose"]:
        print(f"Resuming {folder} from its checkpoint at step {agent.num_timesteps}")
    return run_training(agent, config, folder, progress_bar, eval_log)


def build_env(config: dict[str, Any]) -> HistoryObservation:
    """:return: the training env of a run, as its settings describe it"""
    return make_env(config["env"], config["hyperparameters"]["history_length"], config["env_kwargs"])


def run_training(agent: BaseAlgorithm, config: dict[str, Any], out: Path, progress_bar: bool, eval_log: dict[str, Any] | None = None) -> BaseAlgorithm:
    """
    Train up to the run's budget with evaluations, checkpoints and Ctrl-C handling, then write the agent,
    the learning curve and the run's status.

    :param agent: a new agent, or one restored from a checkpoint (``eval_log`` then holds its evaluations)
    :param config: the run's settings (:func:`run_settings`)
    :param out: the run folder
    :param progress_bar: show a progress bar
    :param eval_log: the evaluation log of the checkpoint (``None``: a new run)
    :return: the agent
    """
    args, verbose = config["args"], config["args"]["verbose"]
    eval_callback = MetaEvalCallback(
        make_eval_env(config),
        str(out / "eval.csv"),
        n_eval_episodes=args["eval_episodes"],
        eval_freq=config["eval_freq"],
        best_model_save_path=str(out),
        eval_seed=config["seed"] + 1,  # evaluation episodes differ from the training ones
        verbose=verbose,
    )
    restore_eval_log(eval_callback, eval_log)
    csv_files = [out / "eval.csv"]
    callbacks: list[BaseCallback] = [eval_callback]
    if args["diagnostics"]:
        callbacks.append(DiagnosticsCallback(config["hyperparameters"]["epoch_length"], str(out / "diagnostics.csv")))
        csv_files.append(out / "diagnostics.csv")
    checkpoints = RunCheckpointCallback(out / CHECKPOINT_DIR, config["save_freq"], eval_callback, csv_files, verbose)
    callbacks.append(checkpoints)
    resumed = eval_log is not None
    steps = config["timesteps"] - agent.num_timesteps if resumed else config["timesteps"]
    write_status(out, "running", agent.num_timesteps if resumed else 0, config["timesteps"])
    status = "finished"
    try:
        with stop_on_interrupt(checkpoints):
            agent.learn(steps, callback=callbacks, reset_num_timesteps=not resumed, progress_bar=progress_bar)
    except TrainingInterrupted:
        status = "interrupted"
    agent.save(out / "model.zip")
    write_status(out, status, agent.num_timesteps, config["timesteps"])
    plot_run(config, out)
    if verbose:
        print(f"Saved to {out} ({status} at step {agent.num_timesteps} of {config['timesteps']})")
        if status == "interrupted":
            print(f"Continue with: python -m m3po_sb3.train --resume {out}")
    return agent


def plot_run(config: dict[str, Any], out: Path) -> None:
    """Draw ``learning_curve.png`` of a run, with the random policy's return, its budget and evaluation episodes."""
    if not (out / "eval.csv").is_file():  # interrupted before its first evaluation
        return
    plot_learning_curve(
        [out / "eval.csv"],
        out / "learning_curve.png",
        labels=[f"{config['algo']} seed {config['seed']}"],
        title=config["env"],
        random_return=random_policy_return([out]),
        note=f"{config['timesteps']} env steps, {config['args']['eval_episodes']} evaluation episodes per point",
    )


def main(argv: Sequence[str] | None = None) -> BaseAlgorithm:
    """
    :param argv: command line arguments (default: ``sys.argv[1:]``)
    :return: the trained agent
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.resume is not None:
        given = [key for key, value in vars(args).items() if key not in ("resume", "progress_bar", "torch_threads") and value != parser.get_default(key)]
        if given:
            parser.error(f"--resume continues a run with its own settings (config.json); drop {', '.join('--' + key.replace('_', '-') for key in given)}")
    try:
        return train(args)
    except (UsageError, FileNotFoundError) as error:
        parser.error(str(error))
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside training
        sys.exit("\nInterrupted (the last checkpoint, if any, is kept: --resume DIR continues from it)")


if __name__ == "__main__":
    main()
