"""Wall-clock per env step of the planning agents (GrBAL, ReBAL) with each planner, against an M3PO env step.

    python benchmarks/bench_planners.py [--envs HalfCheetahFwdBwd-v0 AntCrippledLeg-v0] [--threads 1] [--repeats 5]

Planning agents with their default networks (GrBAL: 3 × 512 ReLU, ``M = K = 16``; ReBAL: LSTM of 256 units) and
each planner (horizon 10, 500 candidates; MPPI one iteration with the warm start, CEM 5 iterations and 50 elites,
random shooting one round), and with the ``cpu`` preset's networks (64 units) and MPPI: after ``--warmup`` random steps and one model fit (one epoch: the model's quality does not change the
cost), chunks of ``--chunk`` env steps are timed, each step the policy's ``predict`` (adaptation to the window
and planning, warm-started with the previous plan as in training) and the env step. M3PO with the ``cpu``
preset: after its first epoch of random steps, chunks of ``rollout_every`` (50) steps of ``learn``, each step
an env step, ``G = 5`` SAC updates and a 50th of the batch of model rollouts. The model refits (both agents'
once per iteration or epoch) are not in the per-step figures; the planning agents' refit is timed on its own: one
epoch on the warm-up data (an epoch over ``T`` real steps makes ``T / 320`` meta-updates (GrBAL) or ``T / 1000``
updates (ReBAL), plus its validation pass). Chunks of all agents are interleaved, so all
see the same machine load; medians over ``--repeats`` chunks are printed, with the ratio to M3PO's step.
"""

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch as th

import meta_mujoco_envs  # noqa: F401  (registers the envs)
from m3po_sb3.agents.l2a import GrBAL, ReBAL
from m3po_sb3.planning.mpc import ModelPredictiveControl, TransitionData
from m3po_sb3.run.config import get_preset
from m3po_sb3.run.registry import make_agent, make_env

PLANNER_KWARGS = {
    "mppi": dict(horizon=10, n_candidates=500),
    "cem": dict(horizon=10, n_candidates=500, iterations=5, n_elites=50),
    "random": dict(horizon=10, n_candidates=500),
}
AGENTS = {"GrBAL": GrBAL, "ReBAL": ReBAL}
# The agents' default networks, with every planner, and the cpu preset's (m3po_sb3.run.config) with MPPI.
VARIANTS = [(name, "default", planner) for name in AGENTS for planner in PLANNER_KWARGS] + [(name, "cpu", "mppi") for name in AGENTS]


def planning_agent(name: str, networks: str, planner: str, env_id: str, warmup: int) -> tuple[ModelPredictiveControl, tuple[float, int]]:
    """
    :param networks: ``"default"``: the agent's; ``"cpu"``: the cpu preset's
    :return: the agent after ``warmup`` random steps and a one-epoch fit, and a second such fit's seconds and updates
    """
    preset = get_preset("cpu", name.lower())
    model_kwargs = dict(preset["model_kwargs"] if networks == "cpu" else {}, max_epochs=1)
    agent = AGENTS[name](
        "MPCPolicy",
        make_env(env_id, preset["history_length"]),
        planner=planner,
        planner_kwargs=PLANNER_KWARGS[planner],
        model_kwargs=model_kwargs,
        learning_starts=warmup,
        train_freq=10 * warmup,  # no refit while timed
        seed=0,
        device="cpu",
    )
    agent.learn(warmup)  # the random steps and the fit after them
    start = time.perf_counter()
    statistics = agent.policy.model.fit(TransitionData.from_replay_buffer(agent.replay_buffer, agent.history_layout))
    return agent, (time.perf_counter() - start, statistics["updates"])


def planning_step_timer(agent: ModelPredictiveControl) -> Callable[[int], float]:
    """:return: a function timing ``n`` steps of planning and env steps, the plan carried as in training"""
    env = agent.env
    obs, plans = env.reset(), None

    def run(n: int) -> float:
        nonlocal obs, plans
        start = time.perf_counter()
        for _ in range(n):
            action, plans = agent.predict(obs, state=plans)
            obs, _, dones, _ = env.step(action)
            if dones[0]:
                plans = None
        return (time.perf_counter() - start) / n

    return run


def m3po_step_timer(env_id: str) -> Callable[[int], float]:
    """:return: a function timing ``n`` env steps of M3PO with the ``cpu`` preset, after its first epoch"""
    config = get_preset("cpu")
    agent = make_agent("m3po", make_env(env_id, config["history_length"]), config, seed=0, device="cpu")
    agent.learn(config["epoch_length"] + config["rollout_every"])  # random epoch, first fit, first rollouts

    def run(n: int) -> float:
        start = time.perf_counter()
        agent.learn(n, reset_num_timesteps=False)
        return (time.perf_counter() - start) / n

    return run


def interleaved_medians(timers: dict[str, tuple[Callable[[int], float], int]], repeats: int) -> dict[str, float]:
    """
    :param timers: label -> (a function timing ``n`` env steps, ``n``)
    :param repeats: timed chunks per timer, after one warm-up round
    :return: each timer's median seconds per env step; the timers take turns, in reversed order every other round,
        so all see the same machine load
    """
    timings: dict[str, list[float]] = {label: [] for label in timers}
    for repeat in range(repeats + 1):
        order = list(timers) if repeat % 2 == 0 else list(timers)[::-1]
        for label in order:
            run, n = timers[label]
            seconds = run(n)
            if repeat > 0:  # the first round warms up
                timings[label].append(seconds)
    return {label: float(np.median(values)) for label, values in timings.items()}


def print_per_step(env_id: str, medians: dict[str, float]) -> None:
    """Print each timer's milliseconds per env step and its ratio to M3PO's (the ``"M3PO (cpu preset)"`` timer)."""
    m3po = medians["M3PO (cpu preset)"]
    print(f"\n{env_id}")
    for label, seconds in medians.items():
        print(f"  {label:30s} {seconds * 1e3:9.1f} ms per env step   x{seconds / m3po:6.2f} M3PO")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=["HalfCheetahFwdBwd-v0", "AntCrippledLeg-v0"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1000, help="random env steps before the planning agents' fit")
    parser.add_argument("--chunk", type=int, default=5, help="planning steps per timed chunk")
    parser.add_argument("--repeats", type=int, default=5, help="timed chunks per agent")
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    m3po_chunk = get_preset("cpu")["rollout_every"]

    print(f"torch threads {th.get_num_threads()}, medians of {args.repeats} chunks; M3PO: cpu preset, chunks of {m3po_chunk} steps")
    for env_id in args.envs:
        timers: dict[str, tuple[Callable[[int], float], int]] = {"M3PO (cpu preset)": (m3po_step_timer(env_id), m3po_chunk)}
        fits: dict[str, tuple[float, int]] = {}
        for name, networks, planner in VARIANTS:
            label = f"{name}{' (cpu preset)' if networks == 'cpu' else ''} + {planner}"
            agent, fits[label.split(" + ")[0]] = planning_agent(name, networks, planner, env_id, args.warmup)
            timers[label] = (planning_step_timer(agent), args.chunk)
        print_per_step(env_id, interleaved_medians(timers, args.repeats))
        for name, (seconds, updates) in fits.items():
            print(f"  {name:18s} one-epoch refit on {args.warmup} steps: {seconds:6.2f} s ({updates} updates and two validation passes)")


if __name__ == "__main__":
    main()
