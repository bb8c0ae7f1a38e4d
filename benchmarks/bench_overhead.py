"""Wall-clock per env step of M3PO against history-SAC with the same networks and the same G.

    python benchmarks/bench_overhead.py [--env HalfCheetahFwdBwd-v0] [--threads 2] [--gradient-steps 20]

Both agents use the Table-2 networks (GRU of 5 units over L = 10, MLPs 400-400, swish) and G SAC updates per
env step after the same warm-up of E = 1000 random steps. M3PO also makes M = 1000 one-step rollouts per env
step into D_model. Chunks of env steps of the two agents are interleaved (so both see the same machine load)
and the median seconds per step over the repeats are compared. The model fit, once per epoch of E steps, is
timed on its own and amortised over E: a refit (from fitted weights, as every fit after the first in a run)
on the warm-up's 1000 transitions and on ``--fit-data`` random-action transitions, since its cost grows with
D_env (up to N·E = 200k real transitions in Table 2).
"""

import argparse
import time

import numpy as np
import torch as th
from stable_baselines3 import SAC

from m3po_sb3 import M3PO
from m3po_sb3.run.config import get_preset
from m3po_sb3.run.registry import make_agent, make_env


def seconds_per_step(agent: SAC, n_steps: int) -> float:
    start = time.perf_counter()
    agent.learn(n_steps, reset_num_timesteps=False)
    return (time.perf_counter() - start) / n_steps


def timed_refit(agent: M3PO) -> tuple[float, int]:
    """:return: seconds and model epochs of a fit on the agent's D_env"""
    start = time.perf_counter()
    stats = agent.train_dynamics()
    return time.perf_counter() - start, stats["epochs"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="HalfCheetahFwdBwd-v0")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gradient-steps", type=int, default=20, help="G of both agents")
    parser.add_argument("--rollouts-per-step", type=int, default=1000, help="M of M3PO")
    parser.add_argument("--fit-data", type=int, default=20000, help="D_env size of the second timed model fit")
    parser.add_argument("--chunk", type=int, default=5, help="env steps per timed chunk")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    th.set_num_threads(args.threads)

    config = get_preset("HalfCheetahFwdBwd-v0", "m3po")
    config.update(gradient_steps=args.gradient_steps, rollouts_per_step=args.rollouts_per_step)
    epoch_length = config["epoch_length"]  # the warm-up; M3PO's next fit comes after the timed chunks
    agents = {algo: make_agent(algo, make_env(args.env, config["history_length"]), config, seed=0, device="cpu") for algo in ("m3po", "sac")}
    for agent in agents.values():
        agent.learn(epoch_length, reset_num_timesteps=False)
    m3po = agents["m3po"]
    assert isinstance(m3po, M3PO)
    fit_seconds, fit_epochs = timed_refit(m3po)

    timings: dict[str, list[float]] = {algo: [] for algo in agents}
    for repeat in range(args.repeats + 1):
        order = list(agents) if repeat % 2 == 0 else list(agents)[::-1]
        for algo in order:
            seconds = seconds_per_step(agents[algo], args.chunk)
            if repeat > 0:  # the first round warms up (first updates, allocator)
                timings[algo].append(seconds)
    sac_step, m3po_step = (float(np.median(timings[algo])) for algo in ("sac", "m3po"))
    amortised_fit = fit_seconds / epoch_length
    print(f"env {args.env}, torch threads {th.get_num_threads()}, G = {args.gradient_steps}, M = {args.rollouts_per_step}, k = 1")
    print(f"history-SAC: {sac_step * 1e3:.1f} ms per env step (median of {args.repeats} chunks of {args.chunk})")
    print(f"M3PO:        {m3po_step * 1e3:.1f} ms per env step (rollouts and updates), ratio {m3po_step / sac_step:.3f}")
    print(
        f"model fit on {m3po.env_buffer.size()} real transitions: {fit_seconds:.1f} s ({fit_epochs} epochs), "
        f"{amortised_fit * 1e3:.1f} ms per env step over E = {epoch_length}"
    )
    print(f"ratio with the amortised fit: {(m3po_step + amortised_fit) / sac_step:.3f}")

    # A larger D_env: random-action steps only (G = 0, M = 1 keeps D_model small), then the timed refit.
    config.update(gradient_steps=0, rollouts_per_step=1, epoch_length=args.fit_data, env_buffer_size=args.fit_data)
    probe = make_agent("m3po", make_env(args.env, config["history_length"]), config, seed=0, device="cpu")
    probe.learn(args.fit_data)
    big_fit_seconds, big_fit_epochs = timed_refit(probe)  # type: ignore[arg-type]
    big_amortised = big_fit_seconds / epoch_length
    print(
        f"model fit on {args.fit_data} real transitions: {big_fit_seconds:.1f} s ({big_fit_epochs} epochs), "
        f"{big_amortised * 1e3:.1f} ms per env step over E = {epoch_length}; ratio with it {(m3po_step + big_amortised) / sac_step:.3f}"
    )


if __name__ == "__main__":
    main()
