"""The one place that maps ``--algo`` of :mod:`m3po_sb3.train` to an agent class, its env and its constructor
arguments.

An entry (:class:`AlgoSpec`) names the class, the constructor arguments a preset (:mod:`m3po_sb3.run.config`)
and the command line may set (``tunable``: the command line gets a flag for each), and what the ``--algo``
adds on top (the oracle's ``task_in_obs=True``, RL²'s history of one step, history-SAC's buffer sized as
M3PO's ``D_env``). A new agent is one module under :mod:`m3po_sb3.agents` plus one entry of :data:`ALGOS`.
"""

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import meta_mujoco_envs  # noqa: F401  (registers the meta-RL envs with Gymnasium: --env names them)
import torch as th
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.base_class import BaseAlgorithm

from m3po_sb3.agents.history_sac import HistorySAC
from m3po_sb3.agents.m3po import M2PO, M3PO
from m3po_sb3.agents.pearl import PEARL
from m3po_sb3.history.encoder import history_policy_kwargs
from m3po_sb3.history.layout import HistoryLayout
from m3po_sb3.history.wrapper import HistoryObservation

Hyperparameters = dict[str, Any]


def history_network_kwargs(layout: HistoryLayout, hyperparameters: Hyperparameters) -> dict[str, Any]:
    """:return: ``policy_kwargs`` of the history networks: the preset's ``gru_units`` and ``net_arch``"""
    return history_policy_kwargs(layout, hyperparameters["gru_units"], hyperparameters["net_arch"])


def lstm_network_kwargs(layout: HistoryLayout, hyperparameters: Hyperparameters) -> dict[str, Any]:
    """:return: ``policy_kwargs`` of RL²'s LSTM policy: the preset's MLPs with swish units, as the others'"""
    return dict(net_arch=list(hyperparameters["net_arch"]), activation_fn=th.nn.SiLU, optimizer_kwargs=dict(fused=True))


def meta_model_gru(hyperparameters: Hyperparameters) -> dict[str, Any]:
    """:return: M3PO's ``model_kwargs`` with the meta-model's GRU of the policy's size (``gru_units``)"""
    return dict(model_kwargs=dict(hyperparameters["model_kwargs"], gru_units=hyperparameters["gru_units"]))


def model_free_buffer(hyperparameters: Hyperparameters) -> dict[str, Any]:
    """:return: history-SAC's replay buffer of M3PO's ``D_env`` size and its warm-up of one epoch, as M3PO's"""
    return dict(buffer_size=hyperparameters["env_buffer_size"], learning_starts=hyperparameters["epoch_length"])


def constructor_parameters(agent_class: type) -> dict[str, inspect.Parameter]:
    """
    :param agent_class: an agent class
    :return: the keyword parameters its constructor takes, through the ``**kwargs`` it passes to its bases
    """
    parameters: dict[str, inspect.Parameter] = {}
    for klass in agent_class.__mro__:
        if "__init__" not in vars(klass):
            continue
        signature = inspect.signature(klass.__init__)
        for name, parameter in signature.parameters.items():
            if name != "self" and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
                parameters.setdefault(name, parameter)
        if not any(parameter.kind is parameter.VAR_KEYWORD for parameter in signature.parameters.values()):
            break
    return parameters


@dataclass(frozen=True)
class AlgoSpec:
    """
    How ``--algo NAME`` makes its agent and env.

    :param agent_class: the class that trains and loads the agent
    :param kinds: what the agent is, most specific first, for messages (``("model-based", "SAC-based")``)
    :param tunable: constructor arguments that presets and command-line flags set
    :param policy: the ``policy`` argument of the constructor
    :param policy_kwargs: builds ``policy_kwargs`` from the env's history layout and the hyper-parameters
        (``None``: the class's default networks)
    :param derived: constructor arguments computed from the hyper-parameters
    :param fixed: constructor arguments this ``--algo`` fixes
    :param required: tunable arguments that must not be ``None``, with what to do about it
    :param env_kwargs: ``gym.make`` arguments this ``--algo`` adds
    :param history_length: the history length ``L`` this ``--algo`` needs (``None``: the preset's)
    """

    agent_class: type[BaseAlgorithm]
    kinds: tuple[str, ...]
    tunable: tuple[str, ...] = ()
    policy: str = "MlpPolicy"
    policy_kwargs: Callable[[HistoryLayout, Hyperparameters], dict[str, Any]] | None = history_network_kwargs
    derived: Callable[[Hyperparameters], dict[str, Any]] | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)
    required: Mapping[str, str] = field(default_factory=dict)
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    history_length: int | None = None

    def __post_init__(self) -> None:
        unknown = set(self.tunable) - set(constructor_parameters(self.agent_class))
        if unknown:
            raise TypeError(f"{self.agent_class.__name__} takes no argument {', '.join(sorted(unknown))}")


MODEL_BASED = ("model-based", "SAC-based")
SAC_TUNABLE = ("gradient_steps", "batch_size", "actor_loss_before_critic_step")
M3PO_TUNABLE = (
    *SAC_TUNABLE,
    "epoch_length",
    "env_buffer_size",
    "rollouts_per_step",
    "rollout_length",
    "rollout_every",
    "ensemble_size",
    "model_kwargs",
    "model_fit_kwargs",
    "real_ratio",
    "known_action_reward",
)
# RL²'s PPO (sb3-contrib's defaults otherwise): rollouts of 1 000 steps, a MuJoCo episode, so that the LSTM
# is trained on sequences that span several task switches; 4 minibatches per epoch.
RL2_KWARGS = dict(n_steps=1000, batch_size=250)

ALGOS: dict[str, AlgoSpec] = {
    "m3po": AlgoSpec(M3PO, MODEL_BASED, M3PO_TUNABLE, derived=meta_model_gru),
    "m2po": AlgoSpec(M2PO, MODEL_BASED, M3PO_TUNABLE),  # MBPO's model: no GRU (seed A.9)
    "m3po-h": AlgoSpec(
        M3PO,
        MODEL_BASED,
        (*M3PO_TUNABLE, "hybrid_schedule"),
        derived=meta_model_gru,
        required=dict(hybrid_schedule="m3po-h needs a beta schedule: this preset has none, pass --hybrid-schedule A B"),
    ),
    # The model-free baseline with M3PO's history wrapper, features extractor, networks, G and warm-up.
    "sac": AlgoSpec(HistorySAC, ("SAC-based",), SAC_TUNABLE, derived=model_free_buffer),
    # The same on the env with the task in its observation: the ceiling of a comparison.
    "oracle": AlgoSpec(HistorySAC, ("SAC-based",), SAC_TUNABLE, derived=model_free_buffer, env_kwargs=dict(task_in_obs=True)),
    # RL²: an LSTM over the episode whose input holds the last step's (o, a, r) (L = 1).
    "rl2": AlgoSpec(RecurrentPPO, ("on-policy",), policy="MlpLstmPolicy", policy_kwargs=lstm_network_kwargs, fixed=RL2_KWARGS, history_length=1),
    # oyster's networks and hyper-parameters (PEARL's defaults) on the same histories.
    "pearl": AlgoSpec(PEARL, ("SAC-based",), policy_kwargs=None),
}


def get_algo(algo: str) -> AlgoSpec:
    """
    :param algo: an ``--algo`` name
    :return: its entry
    """
    if algo not in ALGOS:
        raise ValueError(f"unknown algo {algo!r}; one of {', '.join(ALGOS)}")
    return ALGOS[algo]


def agent_class(algo: str) -> type[BaseAlgorithm]:
    """:return: the class that trains and loads ``--algo algo``"""
    return get_algo(algo).agent_class


def make_env(env_id: str, history_length: int, env_kwargs: dict[str, Any] | None = None) -> HistoryObservation:
    """
    :param env_id: Gymnasium env id
    :param history_length: ``L``
    :param env_kwargs: keyword arguments of ``gym.make`` (e.g. ``task_switch_seconds``)
    :return: the env with history observations
    """
    return HistoryObservation(gym.make(env_id, **(env_kwargs or {})), history_length)


def make_agent(
    algo: str,
    env: HistoryObservation,
    hyperparameters: Hyperparameters,
    seed: int,
    device: str = "auto",
    tensorboard_log: str | None = None,
) -> BaseAlgorithm:
    """
    :param algo: an ``--algo`` name
    :param env: the training env (history observations)
    :param hyperparameters: a preset resolved for ``algo`` (:func:`m3po_sb3.run.config.get_preset`), with the
        command line's values
    :param seed: random seed
    :param device: torch device
    :param tensorboard_log: TensorBoard folder (``None``: none)
    :return: the agent
    """
    spec = get_algo(algo)
    kwargs = {name: hyperparameters[name] for name in spec.tunable if name in hyperparameters}
    for name, message in spec.required.items():
        if kwargs.get(name) is None:
            raise ValueError(message)
    if spec.derived is not None:
        kwargs.update(spec.derived(hyperparameters))
    if spec.policy_kwargs is not None:
        kwargs["policy_kwargs"] = spec.policy_kwargs(env.history_layout, hyperparameters)
    return spec.agent_class(spec.policy, env, seed=seed, device=device, tensorboard_log=tensorboard_log, **{**kwargs, **spec.fixed})
