"""Held-out NLL of M3PO's meta-model against the non-adaptive model (M2PO's) on the meta-envs' real data.

    python benchmarks/bench_meta_model.py [--envs AntCrippledLeg-v0 Walker2dRandomParams-v0] [--steps 20000] [--seeds 0 1 2]

For each env and seed: random-action transitions (the task switching as the env does) are split by time into a
training part and the last 20 % for testing; both models (Table 2's B = 3 and, with ``--hidden``, a narrower
MLP than Table 2's 400-400 to fit the CPU) are fit on the training part with their default ``fit`` and
scored on the test part. The meta-model should have the lower NLL: the test transitions' tasks show only in
their histories.

With ``--oracle``, a third model measures how much knowing the task can gain on these data at all: the
non-adaptive model on the same steps with the task appended to each observation (``task_in_obs=True``),
scored on the outputs the three models share (the robot's ``Δo`` and the reward; all figures printed are
over those). It trains for exactly as many epochs as the non-adaptive model: its own early stopping would
count the gains on the task's outputs (``Δ`` of the task, zero but at switches), which keep falling long
after the others have stopped improving. The task also tells whether the meta-model's GRU features carry it
(a linear probe's test R²).
"""

import argparse
import json
import time
from typing import Any

import numpy as np
import torch as th
from model_data import collect_transitions

from m3po_sb3.models.networks import DynamicsModel, MetaDynamicsModel
from m3po_sb3.models.training import ModelTrainer


def fit_and_score(
    model_class: type, data: tuple, split: int, seed: int, args: argparse.Namespace, **fit_kwargs: Any
) -> tuple[np.ndarray, int, DynamicsModel]:
    """
    Fit a fresh model on the first ``split`` transitions of ``(layout, transitions)``.

    :return: its NLL of each output on the rest, the epochs it trained, and the model
    """
    layout, transitions = data
    th.manual_seed(seed)
    model = model_class(layout, hidden_units=args.hidden, device="cpu")
    start = time.perf_counter()
    fit_kwargs = {"max_epochs_since_update": args.patience, "calibrate": args.calibrate, **fit_kwargs}
    info = ModelTrainer(model).fit(*(x[:split] for x in transitions), **fit_kwargs, rng=np.random.default_rng(seed))
    nll = model.nll(*(x[split:] for x in transitions), per_output=True)
    calibration = f", log-variance shift on the holdout {model.logvar_offset.mean():.2f}" if fit_kwargs["calibrate"] else ""
    print(f"    {model_class.__name__}: {info['epochs']} epochs, {time.perf_counter() - start:.0f} s{calibration}", flush=True)
    return nll, info["epochs"], model


def probe(model: MetaDynamicsModel, histories: np.ndarray, tasks: np.ndarray, split: int) -> str:
    """
    Whether the meta-model's GRU features carry the task: a least-squares linear map from the features of the
    first ``split`` histories to their tasks, scored on the rest.

    :return: its test R², averaged over the task's features that vary in the test rows, and for a one-hot task
        (the crippled leg) the accuracy of its largest output
    """
    with th.no_grad():
        features = model._encode(model._normalise_histories(th.as_tensor(histories)))[:, model.history_layout.obs_dim :].numpy()
    inputs = np.column_stack([features, np.ones(len(features))])
    weights = np.linalg.lstsq(inputs[:split], tasks[:split], rcond=None)[0]
    residual, variance = ((inputs[split:] @ weights - tasks[split:]) ** 2).mean(axis=0), tasks[split:].var(axis=0)
    if not np.any(variance > 0):
        return "no probe: the task does not change in the test rows"
    result = f"linear probe test R² {np.mean(1 - residual[variance > 0] / variance[variance > 0]):.2f}"
    if np.all(tasks.sum(axis=1) == 1) and np.all((tasks == 0) | (tasks == 1)):
        accuracy = np.mean((inputs[split:] @ weights).argmax(axis=1) == tasks[split:].argmax(axis=1))
        result += f", accuracy {accuracy:.2f} (chance {1 / tasks.shape[1]:.2f})"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=["AntCrippledLeg-v0", "Walker2dRandomParams-v0"])
    parser.add_argument("--steps", type=int, default=20_000, help="real transitions per env and seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--hidden", type=int, default=200, help="hidden units of the two model layers (Table 2: 400)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--patience", type=int, default=5, help="the fits' max_epochs_since_update (MBPO: 5)")
    parser.add_argument("--oracle", action="store_true", help="also fit a model that is given the task")
    parser.add_argument("--calibrate", action="store_true", help="fit(calibrate=True): variances calibrated on each fit's holdout")
    parser.add_argument(
        "--env-kwargs", type=json.loads, default={}, help='JSON keyword arguments of gym.make, e.g. \'{"include_cfrc_ext_in_observation": false}\''
    )
    args = parser.parse_args()
    th.set_num_threads(args.threads)

    for env_id in args.envs:
        gaps = []
        for seed in args.seeds:
            print(f"{env_id} seed {seed}", flush=True)
            data = collect_transitions(env_id, args.steps, seed, env_kwargs=args.env_kwargs)
            obs_dim, split = data[0].obs_dim, int(0.8 * args.steps)
            nll, epochs, models = {}, {}, {}
            for name, model_class in (("non-adaptive", DynamicsModel), ("meta", MetaDynamicsModel)):
                nll[name], epochs[name], models[name] = fit_and_score(model_class, data, split, seed, args)
            if args.oracle:
                oracle_data = collect_transitions(env_id, args.steps, seed, env_kwargs=dict(args.env_kwargs, task_in_obs=True))
                if not np.array_equal(oracle_data[1][1], data[1][1]) or not np.array_equal(oracle_data[1][2][:, :obs_dim], data[1][2]):
                    raise RuntimeError(f"{env_id}: task_in_obs=True changed the steps; the oracle's data are not the same transitions")
                budget = dict(max_epochs=epochs["non-adaptive"], max_epochs_since_update=epochs["non-adaptive"])
                oracle_nll, _, _ = fit_and_score(DynamicsModel, oracle_data, split, seed, args, **budget)
                tasks = oracle_data[0].split(oracle_data[1][0])[0][:, obs_dim:]  # the task at each history's last step
                print(f"    the meta-model's GRU features -> the task: {probe(models['meta'], data[1][0], tasks, split)}")
                nll["oracle"] = np.append(oracle_nll[:obs_dim], oracle_nll[-1])  # without the task's own outputs
            summary = {name: values.mean() for name, values in nll.items()}
            line = "  ".join(f"{name} {value:8.3f}" for name, value in summary.items())
            gain = {name: summary["non-adaptive"] - value for name, value in summary.items() if name != "non-adaptive"}
            line += "  gain over non-adaptive: " + "  ".join(f"{name} {value:.3f}" for name, value in gain.items())
            joints = f"  (without the reward: {'  '.join(f'{name} {values[:-1].mean():.3f}' for name, values in nll.items())})"
            print(f"{env_id} seed {seed} test NLL: {line}{joints}", flush=True)
            gaps.append(gain["meta"])
        print(
            f"{env_id}: non-adaptive minus meta NLL over {len(gaps)} seeds: mean {np.mean(gaps):.3f}, "
            f"min {np.min(gaps):.3f}, max {np.max(gaps):.3f} (positive: the meta-model is better)",
            flush=True,
        )


if __name__ == "__main__":
    main()
