"""Run folders of :mod:`m3po_sb3.run.train`: where a run goes, what it has done, and the way back to its agent.

A run folder holds ``config.json`` (the command line and hyper-parameters), ``status.json`` (``running``,
``interrupted`` or ``finished``, and the steps done), ``model.zip``, ``best_model.zip``, ``eval.csv``,
``random_policy.csv``, ``learning_curve.png`` and, while a run can be resumed, ``checkpoint/``
(:mod:`m3po_sb3.run.checkpoint`). With ``--log-folder ROOT`` runs are numbered as RL Zoo's:
``ROOT/ALGO/ENV_1``, ``ROOT/ALGO/ENV_2``, ...
"""

import json
import os
import re
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm

from m3po_sb3.history.wrapper import HistoryObservation
from m3po_sb3.run.checkpoint import find_checkpoint, load_buffers
from m3po_sb3.run.registry import agent_class, make_env

STATUSES = ("running", "interrupted", "finished")


def next_run_dir(log_folder: str | os.PathLike, algo: str, env_id: str) -> Path:
    """
    RL Zoo's numbering: the first free ``LOG_FOLDER/ALGO/ENV_N``, one more than the highest ``N`` there.

    :param log_folder: root of all runs
    :param algo: the ``--algo``
    :param env_id: the env id
    :return: the new run's folder (not created)
    """
    parent = Path(log_folder) / algo
    pattern = re.compile(rf"{re.escape(env_id)}_(\d+)")
    numbers = [int(match.group(1)) for path in parent.glob(f"{env_id}_*") if (match := pattern.fullmatch(path.name))]
    return parent / f"{env_id}_{max(numbers, default=0) + 1}"


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """
    :param folder: a run folder
    :return: its ``config.json``
    """
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a run folder of m3po_sb3.train: it has no config.json")
    return json.loads(path.read_text())


def write_status(folder: str | os.PathLike, status: str, num_timesteps: int, total_timesteps: int) -> None:
    """
    :param folder: a run folder
    :param status: one of :data:`STATUSES`
    :param num_timesteps: env steps done
    :param total_timesteps: env steps the run is to make
    """
    if status not in STATUSES:
        raise ValueError(f"unknown run status {status!r}; one of {', '.join(STATUSES)}")
    state = dict(status=status, num_timesteps=num_timesteps, total_timesteps=total_timesteps)
    (Path(folder) / "status.json").write_text(json.dumps(state, indent=2))


def read_status(folder: str | os.PathLike) -> dict[str, Any] | None:
    """
    :param folder: a run folder
    :return: its ``status.json`` (``status``, ``num_timesteps``, ``total_timesteps``), ``None`` if it has none
    """
    path = Path(folder) / "status.json"
    return json.loads(path.read_text()) if path.is_file() else None


def load_run(
    folder: str | os.PathLike,
    best: bool = False,
    checkpoint: bool = False,
    env_kwargs: dict[str, Any] | None = None,
    **load_kwargs: Any,
) -> tuple[BaseAlgorithm, HistoryObservation]:
    """
    The agent of a run folder and its env, rebuilt as the run made it (env id, ``--env-kwargs``, the
    ``HistoryObservation`` of its history length).

    :param folder: a run folder of :mod:`m3po_sb3.run.train`
    :param best: load ``best_model.zip`` (the best evaluation) instead of ``model.zip`` (the last step)
    :param checkpoint: load the agent of the run's last checkpoint with its buffers (replay buffer, and
        ``D_env`` for the M3PO family), for analysis; unlike ``--resume`` this leaves the run's files alone
    :param env_kwargs: further ``gym.make`` arguments (e.g. ``render_mode="rgb_array"``)
    :param load_kwargs: further arguments of the agent class's ``load`` (``device``, ...)
    :return: the agent (its env set) and the env
    """
    if best and checkpoint:
        raise ValueError("load_run: choose best or checkpoint, not both")
    config = read_config(folder)
    checkpoint_folder = find_checkpoint(folder) if checkpoint else None
    if checkpoint and checkpoint_folder is None:
        raise FileNotFoundError(f"{folder} has no checkpoint (it is kept in the run folder it was made in, not committed)")
    path = checkpoint_folder / "agent.zip" if checkpoint_folder else Path(folder) / ("best_model.zip" if best else "model.zip")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (a run interrupted before it saved anything?)")
    env = make_env(config["env"], config["hyperparameters"]["history_length"], {**config["env_kwargs"], **(env_kwargs or {})})
    agent = agent_class(config["algo"]).load(path, env=env, **load_kwargs)
    if checkpoint_folder:
        load_buffers(agent, checkpoint_folder)
    return agent, env
