"""Held-out NLL of M3PO's meta-model against the non-adaptive model (M2PO's) on the meta-envs' real data.

    python benchmarks/bench_meta_model.py [--envs AntCrippledLeg-v0 Walker2dRandomParams-v0] [--steps 20000] [--seeds 0 1 2]

For each env and seed: random-action transitions (the task switching as the env does) are split by time into a
training part and the last 20 % for testing; both models (Table 2's B = 3 and, with ``--hidden``, a narrower
MLP than Table 2's 400-400 to fit the CPU) are fit on the training part with their default ``fit`` and
scored on the test part. The meta-model should have the lower NLL: the test transitions' tasks show only in
their histories.
"""

import argparse
import time

import numpy as np
import torch as th
from model_data import collect_transitions

from m3po_sb3.dynamics import DynamicsModel, MetaDynamicsModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=["AntCrippledLeg-v0", "Walker2dRandomParams-v0"])
    parser.add_argument("--steps", type=int, default=20_000, help="real transitions per env and seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--hidden", type=int, default=200, help="hidden units of the two model layers (Table 2: 400)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    th.set_num_threads(args.threads)

    for env_id in args.envs:
        gaps = []
        for seed in args.seeds:
            layout, data = collect_transitions(env_id, args.steps, seed)
            split = int(0.8 * args.steps)
            train, test = [x[:split] for x in data], [x[split:] for x in data]
            nll = {}
            for model_class in (DynamicsModel, MetaDynamicsModel):
                th.manual_seed(seed)
                model = model_class(layout, hidden_units=args.hidden, device="cpu")
                start = time.perf_counter()
                info = model.fit(*train, rng=np.random.default_rng(seed))
                nll[model_class] = model.nll(*test)
                print(
                    f"{env_id} seed {seed} {model_class.__name__:18s} test NLL {nll[model_class]:8.3f}  "
                    f"({info['epochs']} epochs, {time.perf_counter() - start:.0f} s)",
                    flush=True,
                )
            gaps.append(nll[DynamicsModel] - nll[MetaDynamicsModel])
        print(
            f"{env_id}: non-adaptive minus meta NLL over {len(gaps)} seeds: mean {np.mean(gaps):.3f}, "
            f"min {np.min(gaps):.3f}, max {np.max(gaps):.3f} (positive: the meta-model is better)",
            flush=True,
        )


if __name__ == "__main__":
    main()
