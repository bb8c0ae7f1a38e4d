"""Hyper-parameter presets: Table 2 (M3PO), Table 3 (M3PO-h's β schedule) of the seed, a CPU demo and the
CPU-sized comparison (``cpu``).

A preset is a small dict of hyper-parameters, named as :class:`m3po_sb3.M3PO`'s arguments, plus ``n_epochs``
(the budget is ``n_epochs * epoch_length`` env steps), ``history_length`` (of the ``HistoryObservation``),
``gru_units`` and ``net_arch`` (policy, critics and meta-model GRU); :func:`m3po_sb3.train.make_agent` turns it
into an agent. ``hybrid_schedule`` is only used by M3PO-h.

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
data of a run (``N·E``). M2PO's model is MBPO's (``m2po_ensemble_size``, ``m2po_model_kwargs``: 7 members, 5
elites, four hidden layers of 200), as seed A.9 states.
"""

from typing import Any

from m3po_sb3.dynamics import MBPO_MODEL_KWARGS

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
    m2po_ensemble_size=7,
    m2po_model_kwargs=MBPO_MODEL_KWARGS,
    batch_size=256,  # SAC's minibatch (not in Table 2: SAC's and MBPO's default)
)

PRESETS: dict[str, dict[str, Any]] = {
    "HalfCheetahFwdBwd-v0": dict(TABLE2, rollouts_per_step=1000, gradient_steps=40),
    "HalfCheetahPier-v0": dict(TABLE2, rollouts_per_step=1000, gradient_steps=20, hybrid_schedule=(80, 130)),
    "AntFwdBwd-v0": dict(TABLE2, rollouts_per_step=500, gradient_steps=20),
    "AntCrippledLeg-v0": dict(TABLE2, rollouts_per_step=1000, gradient_steps=20),
    "Walker2dRandomParams-v0": dict(TABLE2, rollouts_per_step=500, gradient_steps=20, hybrid_schedule=(50, 100)),
    "HumanoidDirec-v0": dict(TABLE2, rollouts_per_step=500, gradient_steps=20, hybrid_schedule=(150, 250)),
    # About two CPU minutes: Table 2 with small networks, short epochs, few rollouts (made 50 steps' worth
    # at a time), few and smaller updates; β over epochs 4 -> 8.
    "demo": dict(
        TABLE2,
        n_epochs=10,
        epoch_length=250,
        net_arch=(64, 64),
        model_kwargs=dict(hidden_units=64, num_hidden_layers=2),
        m2po_model_kwargs=dict(MBPO_MODEL_KWARGS, hidden_units=64),
        env_buffer_size=10 * 250,
        rollouts_per_step=20,
        rollout_every=50,
        gradient_steps=2,
        batch_size=128,
        hybrid_schedule=(4, 8),
    ),
    # The CPU-sized comparison of benchmarks/README.md (issue 10): Table 2's E, k, L, B and model structure,
    # 20 epochs (20 000 steps), 64-64 networks and models, M = 100 (made 50 steps' worth at a time), G = 5.
    "cpu": dict(
        TABLE2,
        n_epochs=20,
        net_arch=(64, 64),
        model_kwargs=dict(hidden_units=64, num_hidden_layers=2),
        m2po_model_kwargs=dict(MBPO_MODEL_KWARGS, hidden_units=64),
        env_buffer_size=20 * 1000,
        rollouts_per_step=100,
        rollout_every=50,
        gradient_steps=5,
        hybrid_schedule=(8, 14),
    ),
}


def get_preset(name: str) -> dict[str, Any]:
    """
    :param name: an env id of Table 2, ``"demo"`` or ``"cpu"``
    :return: a copy of the preset, free to modify
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    return {key: dict(value) if isinstance(value, dict) else value for key, value in PRESETS[name].items()}
