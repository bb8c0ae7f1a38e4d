"""Cost of one pass of the history encoder's GRU, nn.GRU against hand-written recurrences (issue 8, part 1).

    python benchmarks/bench_encoder.py [--batch 256] [--repeats 9] [--compile]

The GRU of :class:`~m3po_sb3.history.HistoryEncoder` (5 units over L = 10 steps of HalfCheetah's transitions)
does little arithmetic: its cost is per-operation overhead. Candidates, all computing the same GRU from the
same weights (the script checks outputs and gradients against nn.GRU):

- ``nn.GRU``: the encoder as it is (ATen's CPU loop: input projection of all steps in one matmul, then a
  fused cell per step);
- ``python loop``: the input projection in one matmul, then the cell written out step by step (autograd);
- ``autograd.Function``: the same forward without autograd bookkeeping and a hand-written backward;
- ``torch.compile`` (with ``--compile``): the python loop compiled by inductor (prints the compile time).

Microseconds per call (forward without gradients, as in the target and rollout passes; forward + backward, as
in the actor and critic passes), medians of interleaved repeats.
"""

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch as th
import torch.nn.functional as F

from m3po_sb3.history import HistoryEncoder, HistoryLayout


def python_loop(gi: th.Tensor, w_hh: th.Tensor, b_hh: th.Tensor) -> th.Tensor:
    """GRU recurrence (PyTorch's gate order r, z, n) over precomputed input projections ``gi`` (B, L, 3H)."""
    units = w_hh.shape[1]
    h = gi.new_zeros(gi.shape[0], units)
    for k in range(gi.shape[1]):
        gh = F.linear(h, w_hh, b_hh)
        rz = th.sigmoid(gi[:, k, : 2 * units] + gh[:, : 2 * units])
        n = th.tanh(gi[:, k, 2 * units :] + rz[:, :units] * gh[:, 2 * units :])
        h = n + rz[:, units:] * (h - n)
    return h


class HandWrittenGRU(th.autograd.Function):
    """The recurrence of :func:`python_loop` with a hand-written backward (no autograd graph per step)."""

    @staticmethod
    def forward(ctx, gi: th.Tensor, w_hh: th.Tensor, b_hh: th.Tensor) -> th.Tensor:  # type: ignore[override]
        units, (batch, length, _) = w_hh.shape[1], gi.shape
        h = gi.new_zeros(batch, units)
        saved = []
        for k in range(length):
            gh = th.addmm(b_hh, h, w_hh.t())
            rz = th.sigmoid(gi[:, k, : 2 * units] + gh[:, : 2 * units])
            n = th.tanh(th.addcmul(gi[:, k, 2 * units :], rz[:, :units], gh[:, 2 * units :]))
            saved.append((h, rz, n, gh[:, 2 * units :]))
            h = th.addcmul(n, rz[:, units:], h - n)
        ctx.save_for_backward(w_hh, *(th.stack(column, 1) for column in zip(*saved)))
        return h

    @staticmethod
    def backward(ctx, dh: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:  # type: ignore[override]
        w_hh, hs, rzs, ns, ghns = ctx.saved_tensors
        units, (batch, length, _) = w_hh.shape[1], hs.shape
        dgi, dgh = hs.new_empty(batch, length, 3 * units), hs.new_empty(batch, length, 3 * units)
        for k in range(length - 1, -1, -1):
            r, z, n = rzs[:, k, :units], rzs[:, k, units:], ns[:, k]
            dan = dh * (1 - z) * (1 - n * n)
            dgi[:, k, :units] = dan * ghns[:, k] * r * (1 - r)
            dgi[:, k, units : 2 * units] = dh * (hs[:, k] - n) * z * (1 - z)
            dgi[:, k, 2 * units :] = dan
            dgh[:, k, : 2 * units] = dgi[:, k, : 2 * units]
            dgh[:, k, 2 * units :] = dan * r
            dh = th.addmm(dh * z, dgh[:, k], w_hh)
        flat = dgh.reshape(-1, 3 * units)
        return dgi, flat.t() @ hs.reshape(-1, units), flat.sum(0)


def encoder_with(encoder: HistoryEncoder, recurrence: Callable[..., th.Tensor]) -> Callable[[th.Tensor], th.Tensor]:
    """The encoder's forward with its nn.GRU replaced by ``recurrence`` on the same weights."""
    gru, layout = encoder.gru, encoder.history_layout

    def forward(histories: th.Tensor) -> th.Tensor:
        current_obs, past_obs, past_act, past_rew, mask = layout.split(histories)
        next_obs = th.cat([past_obs[..., 1:, :], current_obs.unsqueeze(-2)], dim=-2)
        steps = th.cat([past_obs, past_act, past_rew.unsqueeze(-1), next_obs - past_obs, th.ones_like(mask).unsqueeze(-1)], dim=-1)
        gi = F.linear(steps * mask.unsqueeze(-1), gru.weight_ih_l0, gru.bias_ih_l0)
        return th.cat([current_obs, recurrence(gi, gru.weight_hh_l0, gru.bias_hh_l0)], dim=-1)

    return forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--calls", type=int, default=50, help="calls per timed repeat")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the python loop")
    args = parser.parse_args()
    th.set_num_threads(1)
    th.manual_seed(0)
    layout = HistoryLayout(17, 6, 10)  # HalfCheetah
    encoder = HistoryEncoder(layout, gru_units=5)
    histories = th.randn(args.batch, layout.size)
    histories[:, -layout.history_length :] = (th.rand(args.batch, layout.history_length) < 0.8).float()
    candidates: dict[str, Callable[[th.Tensor], th.Tensor]] = {
        "nn.GRU": encoder,
        "python loop": encoder_with(encoder, python_loop),
        "autograd.Function": encoder_with(encoder, HandWrittenGRU.apply),
    }
    if args.compile:
        compiled = th.compile(encoder_with(encoder, python_loop), dynamic=True)
        start = time.perf_counter()
        compiled(histories).sum().backward()
        print(f"torch.compile: first call (compile) {time.perf_counter() - start:.1f} s")
        candidates["torch.compile"] = compiled
    parameters = list(encoder.parameters())
    reference = th.autograd.grad(encoder(histories).square().sum(), parameters)
    for name, forward in candidates.items():
        features = forward(histories)
        gradients = th.autograd.grad(features.square().sum(), parameters)
        error = max((features - encoder(histories)).abs().max().item(), *((g - r).abs().max().item() for g, r in zip(gradients, reference)))
        print(f"{name:18s} max |difference| to nn.GRU (features, gradients): {error:.1e}")

    def no_grad(forward: Callable[[th.Tensor], th.Tensor]) -> None:
        with th.no_grad():
            forward(histories)

    def with_backward(forward: Callable[[th.Tensor], th.Tensor]) -> None:
        th.autograd.grad(forward(histories).sum(), parameters)

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
    print(f"batch {args.batch}, torch threads {th.get_num_threads()}, median µs per call over {args.repeats} interleaved repeats")
    print("| encoder | forward µs | forward+backward µs | fwd+bwd / nn.GRU |")
    print("|---|---|---|---|")
    base = float(np.median(timings["nn.GRU", "forward+backward"]))
    for name in candidates:
        forward, both = (float(np.median(timings[name, kind])) for kind in ("forward", "forward+backward"))
        print(f"| {name} | {forward:.0f} | {both:.0f} | {both / base:.2f} |")


if __name__ == "__main__":
    main()
