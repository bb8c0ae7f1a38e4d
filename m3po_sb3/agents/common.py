"""What the agents share: the checks of their env and hyper-parameters, and the guard against non-finite losses."""

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm, maybe_make_env
from stable_baselines3.common.type_aliases import GymEnv
from stable_baselines3.common.vec_env import SubprocVecEnv, VecEnv

from m3po_sb3.history.layout import HistoryLayout
from m3po_sb3.history.wrapper import HistoryObservation

DEFAULT_HISTORY_LENGTH = 10  # L of Table 2


def check_integers(algo: str, integers: dict[str, Any]) -> None:
    """
    Hyper-parameter check shared by the agents: each value is an integer (not a bool).

    :param algo: the algorithm's name, for the message
    :param integers: hyper-parameter name -> value
    :raises TypeError: naming the first value that is not
    """
    for name, value in integers.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise TypeError(f"{algo}: {name} must be an integer, got {value!r}")


def check_conditions(algo: str, checks: list[tuple[bool, str]]) -> None:
    """
    Hyper-parameter check shared by the agents: every condition holds.

    :param algo: the algorithm's name, for the message
    :param checks: ``(condition, message if it fails)`` pairs
    :raises ValueError: with the message of the first failed condition
    """
    for ok, message in checks:
        if not ok:
            raise ValueError(f"{algo}: {message}")


def history_env(env: GymEnv | str, history_length: int | None, verbose: int, algo: str = "M3PO") -> tuple[GymEnv, HistoryLayout]:
    """
    Check that ``env`` has continuous actions and history observations; make and wrap an env id.

    :param algo: the algorithm's name, for the error messages
    :return: the env and its history layout
    """
    if isinstance(env, SubprocVecEnv):  # checked before anything runs in its workers
        raise TypeError(
            f"{algo} trains on one env in its own process (M3PO's model rollouts call the env's termination_fn): "
            "pass the env, its id or a DummyVecEnv of one env, not a SubprocVecEnv"
        )
    wrap = isinstance(env, str)
    env = maybe_make_env(env, verbose)
    if not isinstance(env.action_space, spaces.Box):
        raise TypeError(f"{algo} needs a continuous (Box) action space, got {env.action_space}")
    if wrap:
        env = HistoryObservation(env, DEFAULT_HISTORY_LENGTH if history_length is None else history_length)
    try:
        layout = env.get_attr("history_layout")[0] if isinstance(env, VecEnv) else env.get_wrapper_attr("history_layout")
    except AttributeError as error:
        raise ValueError(
            f"{algo} conditions on histories: wrap the env with m3po_sb3.HistoryObservation(env, history_length=10), "
            "or pass an env id, which is wrapped for you"
        ) from error
    if history_length is not None and layout.history_length != history_length:
        raise ValueError(f"history_length={history_length} does not match the env's HistoryObservation (L={layout.history_length})")
    return env, layout


def check_finite_losses(agent: BaseAlgorithm, algo: str, keys: Sequence[str]) -> None:
    """
    Stop training at the first non-finite loss, rather than let NaN weights train on silently.

    :param agent: the agent, after its updates logged ``keys``
    :param algo: the algorithm's name, for the message
    :param keys: logger keys of the losses to check
    :raises FloatingPointError: naming the first non-finite loss
    """
    for key in keys:
        value = agent.logger.name_to_value[key]
        if not np.isfinite(value):
            raise FloatingPointError(f"{algo}: {key} is {value} after {agent._n_updates} updates")
