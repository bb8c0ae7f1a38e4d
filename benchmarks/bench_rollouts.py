"""One-step branched rollouts per second with the Table-2 networks, against a FLOP estimate of them.

    python benchmarks/bench_rollouts.py [--env HalfCheetahFwdBwd-v0] [--threads 2] [--batch-sizes 1000 10000 50000]

A rollout step is one batched actor forward (GRU of 5 units over L = 10 steps + MLP 400-400), one meta-model
sample (the shared GRU + 3 ensemble members of 400-400, every member on every row, as MBPO's batched
ensembles) and one history shift. FLOPs count the multiply-adds of the weight matrices (2 per weight and row,
the GRU's per history step); activations, sampling and the shift are left out, so GFLOP/s is a lower bound.
"""

import argparse
import time

import numpy as np
import torch as th
from torch import nn

from m3po_sb3 import M3PO
from m3po_sb3.models.networks import EnsembleLinear
from m3po_sb3.models.rollouts import branched_rollouts
from m3po_sb3.run.registry import make_env  # also registers the meta_mujoco_envs


def flops_per_row(module: nn.Module, history_length: int) -> int:
    """2 FLOPs per weight of every linear layer, and per GRU weight and history step."""
    total = 0
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, EnsembleLinear)):
            total += 2 * layer.weight.numel()
        elif isinstance(layer, nn.GRU):
            total += 2 * history_length * (layer.weight_ih_l0.numel() + layer.weight_hh_l0.numel())
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="HalfCheetahFwdBwd-v0")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    th.set_num_threads(args.threads)

    env = make_env(args.env, history_length=10)
    agent = M3PO("MlpPolicy", env, seed=0, device="cpu", buffer_size=max(args.batch_sizes), rollouts_per_step=1, epoch_length=1)
    layout = env.history_layout
    rng = np.random.default_rng(0)
    actor_flops = flops_per_row(agent.actor, layout.history_length)
    model_flops = flops_per_row(agent.dynamics_model, layout.history_length)
    print(f"env {args.env}: obs {layout.obs_dim}, act {layout.act_dim}, L {layout.history_length}, history size {layout.size}; "
          f"torch threads {th.get_num_threads()}")
    print(f"FLOPs per row and step: actor {actor_flops / 1e6:.2f} M + model {model_flops / 1e6:.2f} M = {(actor_flops + model_flops) / 1e6:.2f} M")
    for batch_size in args.batch_sizes:
        # Start histories of random observations and actions, with full masks.
        histories = th.as_tensor(rng.normal(size=(batch_size, layout.size)).astype(np.float32))
        histories[:, -layout.history_length :] = 1.0
        timings = []
        for _ in range(args.repeats + 1):  # the first call warms up
            start = time.perf_counter()
            batch = branched_rollouts(histories, agent.actor, agent.dynamics_model, agent.action_space, horizon=1)
            timings.append(time.perf_counter() - start)
        seconds = float(np.median(timings[1:]))
        rows_per_second = len(batch) / seconds
        print(
            f"batch {batch_size:6d}: {seconds * 1e3:8.1f} ms, {rows_per_second:9.0f} rollout steps/s, "
            f"{rows_per_second * (actor_flops + model_flops) / 1e9:5.1f} GFLOP/s"
        )


if __name__ == "__main__":
    main()
