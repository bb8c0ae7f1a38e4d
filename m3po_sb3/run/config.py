"""Hyper-parameter presets: Table 2 (M3PO), Table 3 (M3PO-h's β schedule) of the seed, a CPU demo and the
CPU-sized comparison (``cpu``).

A preset is a small dict of hyper-parameters named as the agents' constructor arguments (those each
``--algo`` takes are its ``tunable`` arguments in :mod:`m3po_sb3.run.registry`), plus the settings of the run:
``n_epochs`` (the budget is ``n_epochs * epoch_length`` env steps), ``history_length`` (of the
``HistoryObservation``), ``gru_units`` and ``net_arch`` (policy, critics and meta-model GRU). Where an
algorithm's values differ they sit under its ``--algo`` name (M2PO's model under ``"m2po"``, M3PO-h's β
schedule under ``"m3po-h"``), which :func:`get_preset` merges. The command line of :mod:`m3po_sb3.train` gets a
flag for each tunable argument of a scalar type (:func:`add_hyperparameter_flags`).

Table 2's columns are garbled in the seed: an empty cell continues the value on its left (the way the
merged cells of the N, E, B, k, L rows read), which gives

=========================  =====  =====  =========================
env id                     M      G      β schedule (Table 3)
=========================  =====  =====  =========================
HalfCheetahFwdBwd-v0       1000   40     -
HalfCheetahPier-v0         1000   20     80 → 130
AntFwdBwd-v0               500    20     -
AntCrippledLeg-v0          1000   20     -
Walker2dRandomParams-v0    500    20     50 → 100
HumanoidDirec-v0           500    20     150 → 250
=========================  =====  =====  =========================

HalfCheetah-fwd-bwd's M = 1e3, G = 40 are also stated in the text. Common to all: N = 200, E = 1000, k = 1,
L = 10, B = 3, GRU of 5 units, MLPs of two hidden layers of 400 swish units (policy, critics and model).
``D_model`` keeps one epoch of rollouts (``M·E·k``, as MBPO's default retention) and ``D_env`` all the real
data of a run (``N·E``). M2PO's model is MBPO's (7 members, 5 elites, four hidden layers of 200), as seed A.9
states.
"""

import argparse
import inspect
import re
import types
import typing
from typing import Any

from m3po_sb3.models.networks import MBPO_MODEL_KWARGS
from m3po_sb3.run.registry import ALGOS, constructor_parameters, get_algo

# Rows of Table 2 shared by every env.
TABLE2: dict[str, Any] = dict(
    n_epochs=200,
    epoch_length=1000,
    rollout_length=1,
    history_length=10,
    ensemble_size=3,
    gru_units=5,
    net_arch=(400, 400),
    model_kwargs=dict(hidden_units=400, num_hidden_layers=2),
    env_buffer_size=200 * 1000,
    # M2PO's model is MBPO's (seed A.9), not Table 2's B and sizes.
    m2po=dict(ensemble_size=7, model_kwargs=MBPO_MODEL_KWARGS),
    batch_size=256,  # SAC's minibatch (not in Table 2: SAC's and MBPO's default)
)

PRESETS: dict[str, dict[str, Any]] = {
    "HalfCheetahFwdBwd-v0": dict(TABLE2, rollouts_per_step=1000, gradient_steps=40),
    "HalfCheetahPier-v0": dict(TABLE2, rollouts_per_step=1000, gradient_steps=20, **{"m3po-h": dict(hybrid_schedule=(80, 130))}),
    "AntFwdBwd-v0": dict(TABLE2, rollouts_per_step=500, gradient_steps=20),
    "AntCrippledLeg-v0": dict(TABLE2, rollouts_per_step=1000, gradient_steps=20),
    "Walker2dRandomParams-v0": dict(TABLE2, rollouts_per_step=500, gradient_steps=20, **{"m3po-h": dict(hybrid_schedule=(50, 100))}),
    "HumanoidDirec-v0": dict(TABLE2, rollouts_per_step=500, gradient_steps=20, **{"m3po-h": dict(hybrid_schedule=(150, 250))}),
    # About two CPU minutes: Table 2 with small networks, short epochs, few rollouts (made 50 steps' worth
    # at a time), few and smaller updates; β over epochs 4 -> 8.
    "demo": dict(
        TABLE2,
        n_epochs=10,
        epoch_length=250,
        net_arch=(64, 64),
        model_kwargs=dict(hidden_units=64, num_hidden_layers=2),
        m2po=dict(ensemble_size=7, model_kwargs=dict(MBPO_MODEL_KWARGS, hidden_units=64)),
        env_buffer_size=10 * 250,
        rollouts_per_step=20,
        rollout_every=50,
        gradient_steps=2,
        batch_size=128,
        **{"m3po-h": dict(hybrid_schedule=(4, 8))},
    ),
    # The CPU-sized comparison of benchmarks/README.md: Table 2's E, k, L, B and model structure,
    # 20 epochs (20 000 steps), 64-64 networks and models, M = 100 (made 50 steps' worth at a time), G = 5.
    "cpu": dict(
        TABLE2,
        n_epochs=20,
        net_arch=(64, 64),
        model_kwargs=dict(hidden_units=64, num_hidden_layers=2),
        m2po=dict(ensemble_size=7, model_kwargs=dict(MBPO_MODEL_KWARGS, hidden_units=64)),
        env_buffer_size=20 * 1000,
        rollouts_per_step=100,
        rollout_every=50,
        gradient_steps=5,
        **{"m3po-h": dict(hybrid_schedule=(8, 14))},
    ),
}


def get_preset(name: str, algo: str | None = None) -> dict[str, Any]:
    """
    :param name: an env id of Table 2, ``"demo"`` or ``"cpu"``
    :param algo: an ``--algo`` name: its values replace the shared ones, and no algorithm's section is left
        (``None``: the preset as it is written, sections included)
    :return: a copy of the preset, free to modify
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    preset = {key: dict(value) if isinstance(value, dict) else value for key, value in PRESETS[name].items()}
    if algo is None:
        return preset
    get_algo(algo)
    sections = {name: preset.pop(name) for name in ALGOS if name in preset}
    return {**preset, **sections.get(algo, {})}


def upgrade_hyperparameters(algo: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """
    Read the hyper-parameters of an older run folder's ``config.json``, whose M2PO model had its own names
    (``m2po_ensemble_size``, ``m2po_model_kwargs``) beside M3PO's.

    :param algo: the run's ``--algo``
    :param hyperparameters: ``config.json``'s ``hyperparameters``
    :return: them as :func:`get_preset` names them for ``algo``
    """
    upgraded = dict(hyperparameters)
    m2po_model = {key: upgraded.pop("m2po_" + key) for key in ("ensemble_size", "model_kwargs") if "m2po_" + key in upgraded}
    return {**upgraded, **m2po_model} if algo == "m2po" else upgraded


# Constructor arguments whose flags the command line writes by hand: they are settings of the run that every
# --algo uses, or they need a check of their own.
RUN_SETTINGS = ("epoch_length", "history_length")
# Arguments of these types get a flag: ``--name VALUE`` (``nargs=2`` for a pair), ``--name`` for a switch.
FLAG_TYPES: dict[Any, dict[str, Any]] = {
    int: dict(type=int),
    float: dict(type=float),
    bool: dict(action="store_true"),
    tuple[int, int]: dict(type=int, nargs=2, metavar=("A", "B")),
}


def _flag_type(parameter: inspect.Parameter) -> dict[str, Any] | None:
    annotation = parameter.annotation
    options = [argument for argument in typing.get_args(annotation) if argument is not type(None)] if isinstance(annotation, types.UnionType) else [annotation]
    return FLAG_TYPES.get(options[0]) if len(options) == 1 else None


def _param_help(agent_class: type, name: str) -> str:
    """:return: the ``:param name:`` text of the class's docstrings (its own, then its bases'), on one line"""
    for klass in agent_class.__mro__:
        for doc in (klass.__doc__, getattr(vars(klass).get("__init__"), "__doc__", None)):
            match = re.search(rf":param {name}:(.*?)(?=\n\s*:(param|return|raises)|\Z)", doc or "", re.DOTALL)
            if match:
                text = re.sub(r":\w+:`~?([\w.]+)`", lambda role: role.group(1).split(".")[-1], match.group(1))
                return " ".join(text.replace("``", "").split())
    return ""


def hyperparameter_flags() -> dict[str, tuple[dict[str, Any], tuple[str, ...]]]:
    """
    :return: per tunable constructor argument with a flag (every ``--algo``'s, but the :data:`RUN_SETTINGS`),
        the ``add_argument`` options of its flag and the ``--algo`` names that take it
    """
    flags: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {}
    for algo, spec in ALGOS.items():
        parameters = constructor_parameters(spec.agent_class)
        for name in spec.tunable:
            options = _flag_type(parameters[name])
            if name in RUN_SETTINGS or options is None:
                continue
            if name not in flags:
                flags[name] = (dict(options, help=_param_help(spec.agent_class, name).replace("%", "%%")), ())
            flags[name] = (flags[name][0], (*flags[name][1], algo))
    return flags


def add_hyperparameter_flags(parser: argparse.ArgumentParser) -> None:
    """
    Add a flag (``--rollouts-per-step`` for ``rollouts_per_step``) for each of :func:`hyperparameter_flags`; the
    help names the algorithms that take it. Unset flags are ``None``: the preset's value stands.

    :param parser: the command line parser
    """
    for name, (options, algos) in hyperparameter_flags().items():
        parser.add_argument("--" + name.replace("_", "-"), default=None, **dict(options, help=f"{', '.join(algos)}: {options['help']}"))


# Arguments any preset sets: their flags are accepted for every --algo (a sweep passes one command line to
# all its algorithms), those who take no such argument ignoring them. A flag of an option no preset sets is
# refused for an --algo that does not take it.
PRESET_ARGUMENTS = frozenset(
    key for preset in PRESETS.values() for section in (preset, *(preset.get(algo, {}) for algo in ALGOS)) for key in section if key not in ALGOS
)


def given_hyperparameters(args: argparse.Namespace) -> dict[str, Any]:
    """
    :param args: parsed by a parser with :func:`add_hyperparameter_flags` and flags for the :data:`RUN_SETTINGS`
    :return: the hyper-parameters the command line sets (tuples as tuples)
    :raises ValueError: for a flag of an option ``--algo`` does not take
    """
    flags = hyperparameter_flags()
    given = {name: getattr(args, name) for name in (*RUN_SETTINGS, *flags) if getattr(args, name, None) is not None}
    for name in given:
        if name in flags and name not in PRESET_ARGUMENTS and args.algo not in flags[name][1]:
            algos = flags[name][1]
            common = [kind for kind in get_algo(algos[0]).kinds if all(kind in get_algo(algo).kinds for algo in algos)]
            kind = f"{common[0]} agents" if common else "agents"
            raise ValueError(f"--{name.replace('_', '-')} is for the {kind} ({', '.join(algos)}), not --algo {args.algo}")
    return {name: tuple(value) if isinstance(value, list) else value for name, value in given.items()}
