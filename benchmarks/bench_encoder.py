"""Cost of the history encoder's GRU passes: nn.GRU on explicitly built inputs against HistoryEncoder.

    python benchmarks/bench_encoder.py [--batch 256] [--repeats 9]

The GRU of :class:`~m3po_sb3.history.HistoryEncoder` (5 units over L = 10 steps of HalfCheetah's transitions)
does little arithmetic: its cost is per-operation overhead. Compared, on the same weights (the script checks
that features and gradients agree):

- ``nn.GRU``: the encoder before its rewrite: inputs ``[o_k, a_k, r_k, o_{k+1} − o_k, 1] · mask`` built by
  splitting and concatenating, then ``nn.GRU`` (ATen's CPU loop and autograd's backward);
- ``HistoryEncoder``: one gather of the flat history with folded input weights, then the feature-major
  recurrence with a hand-written backward (:func:`~m3po_sb3.history.stacked_gru_final_state`);
- ``4 stacked``: the four passes of a SAC update (actor on h and h', critic on h, target critic on h') as one
  recurrence, as :class:`~m3po_sb3.HistorySAC` runs them, against four ``nn.GRU`` passes.

Microseconds per call (forward without gradients, as in the target and rollout passes; forward + backward, as
in the actor and critic passes), medians of interleaved repeats.
"""

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch as th

from m3po_sb3.history import HistoryEncoder, HistoryLayout, stacked_gru_final_state


def nn_gru_encoding(encoder: HistoryEncoder, histories: th.Tensor) -> th.Tensor:
    """The encoder before its rewrite: explicit GRU inputs, ``nn.GRU``."""
    current, past_obs, past_act, past_rew, mask = encoder.history_layout.split(histories)
    next_obs = th.cat([past_obs[:, 1:], current.unsqueeze(1)], dim=1)
    steps = th.cat([past_obs, past_act, past_rew.unsqueeze(-1), next_obs - past_obs, th.ones_like(mask).unsqueeze(-1)], dim=-1)
    return th.cat([current, encoder.gru(steps * mask.unsqueeze(-1))[1][0]], dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--calls", type=int, default=50, help="calls per timed repeat")
    args = parser.parse_args()
    th.set_num_threads(1)
    th.manual_seed(0)
    layout = HistoryLayout(17, 6, 10)  # HalfCheetah
    encoders = [HistoryEncoder(layout, gru_units=5) for _ in range(3)]  # actor, critic, target critic
    encoder = encoders[0]
    histories, next_histories = th.randn(args.batch, layout.size), th.randn(args.batch, layout.size)
    for h in (histories, next_histories):
        h[:, -layout.history_length :] = (th.rand(args.batch, layout.history_length) < 0.8).float()
    parameters = [p for e in encoders for p in e.parameters()]
    pairs = [(encoders[0], histories), (encoders[0], next_histories), (encoders[1], histories), (encoders[2], next_histories)]

    def four_stacked() -> th.Tensor:
        steps = [e.transitions(h)[1] for e, h in pairs[:2]]
        return stacked_gru_final_state([e.gru_weights() for e, _ in pairs], [*steps, *steps])

    candidates: dict[str, Callable[[], th.Tensor]] = {
        "nn.GRU": lambda: nn_gru_encoding(encoder, histories),
        "HistoryEncoder": lambda: encoder(histories),
        "4 × nn.GRU": lambda: th.stack([nn_gru_encoding(e, h) for e, h in pairs]),
        "4 stacked": four_stacked,
    }
    error = (encoder(histories) - nn_gru_encoding(encoder, histories)).abs().max().item()
    grads = [th.autograd.grad(f().square().sum(), parameters[:4]) for f in (candidates["HistoryEncoder"], candidates["nn.GRU"])]
    error = max(error, *((a - b).abs().max().item() for a, b in zip(*grads)))
    print(f"HistoryEncoder against nn.GRU: max |difference| of features and gradients {error:.1e}")

    def no_grad(forward: Callable[[], th.Tensor]) -> None:
        with th.no_grad():
            forward()

    def with_backward(forward: Callable[[], th.Tensor]) -> None:
        th.autograd.grad(forward().sum(), parameters, allow_unused=True)

    timings: dict[tuple[str, str], list[float]] = {(name, kind): [] for name in candidates for kind in ("forward", "forward+backward")}
    for repeat in range(args.repeats + 1):
        names = list(candidates) if repeat % 2 == 0 else list(candidates)[::-1]
        for name in names:
            for kind, call in (("forward", no_grad), ("forward+backward", with_backward)):
                start = time.perf_counter()
                for _ in range(args.calls):
                    call(candidates[name])
                if repeat > 0:
                    timings[name, kind].append((time.perf_counter() - start) / args.calls * 1e6)
    median = {key: float(np.median(values)) for key, values in timings.items()}
    print(f"batch {args.batch}, torch threads {th.get_num_threads()}, median µs per call over {args.repeats} interleaved repeats")
    print("| encoder | forward µs | forward+backward µs | forward+backward / nn.GRU's |")
    print("|---|---|---|---|")
    for name, base in (("nn.GRU", "nn.GRU"), ("HistoryEncoder", "nn.GRU"), ("4 × nn.GRU", "4 × nn.GRU"), ("4 stacked", "4 × nn.GRU")):
        ratio = median[name, "forward+backward"] / median[base, "forward+backward"]
        print(f"| {name} | {median[name, 'forward']:.0f} | {median[name, 'forward+backward']:.0f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
