"""Wall-clock per env step of GHP-MDP with each planner, against an M3PO env step.

    python benchmarks/bench_ghp_mdp.py [--envs HalfCheetahFwdBwd-v0 AntCrippledLeg-v0] [--threads 1] [--repeats 5] [--pets]

GHP-MDP with the ``cpu`` preset's ``ghp-mdp`` section (5 particles, 100 candidates of horizon 10, CEM 3
iterations and 10 elites, 5 members of 2 × 64 swish units, a flat latent of 8) and each planner at those sizes
(MPPI one iteration with the warm start, random shooting one round); ``--pets`` adds CEM at PETS's sizes (the
agent's defaults: 20 particles, 500 candidates, 5 iterations, 50 elites, 5 members of 3 × 200 units). As
``bench_planners.py`` times GrBAL and ReBAL, and with its timers: after ``--warmup`` random steps and one model
fit, chunks of ``--chunk`` env steps, each the policy's ``predict`` (the latent inferred from the window,
planning warm-started with the previous plan) and the env step; M3PO with the ``cpu`` preset in chunks of
``rollout_every`` steps of ``learn``. The refit is timed on its own, per gradient update, on the warm-up data.
Chunks of all agents are interleaved, so all see the same machine load; medians over ``--repeats`` chunks.
"""

import argparse
import time
from collections.abc import Callable

import torch as th
from bench_planners import interleaved_medians, m3po_step_timer, planning_step_timer, print_per_step

import meta_mujoco_envs  # noqa: F401  (registers the envs)
from m3po_sb3.agents.ghp_mdp import GHPMDP
from m3po_sb3.planning.mpc import TransitionData
from m3po_sb3.run.config import get_preset
from m3po_sb3.run.registry import make_agent, make_env

CPU_PLANNERS = {
    "cem": dict(horizon=10, n_candidates=100, iterations=3, n_elites=10),
    "mppi": dict(horizon=10, n_candidates=100),
    "random": dict(horizon=10, n_candidates=100),
}


def ghp_mdp_agent(env_id: str, warmup: int, planner: str, pets: bool) -> tuple[GHPMDP, float]:
    """:return: the agent after ``warmup`` random steps and one fit, and the fit's seconds per gradient update"""
    config = get_preset("cpu", "ghp-mdp")
    config.update(learning_starts=warmup, train_freq=warmup, planner=planner, planner_kwargs=CPU_PLANNERS[planner])
    if pets:  # the agent's own defaults
        config.update(particles=20, model_kwargs={}, planner_kwargs=dict(horizon=10, n_candidates=500, iterations=5, n_elites=50))
    agent = make_agent("ghp-mdp", make_env(env_id, config["history_length"]), config, seed=0, device="cpu")
    agent.learn(warmup)
    start = time.perf_counter()
    statistics = agent.policy.model.fit(TransitionData.from_replay_buffer(agent.replay_buffer, agent.history_layout))
    return agent, (time.perf_counter() - start) / statistics["updates"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=["HalfCheetahFwdBwd-v0", "AntCrippledLeg-v0"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1000, help="random env steps before the first fit")
    parser.add_argument("--chunk", type=int, default=5, help="planning steps per timed chunk")
    parser.add_argument("--repeats", type=int, default=5, help="timed chunks per agent")
    parser.add_argument("--pets", action="store_true", help="also time CEM at PETS's sizes (seconds per step)")
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    m3po_chunk = get_preset("cpu")["rollout_every"]

    print(f"torch threads {th.get_num_threads()}, medians of {args.repeats} chunks; M3PO: cpu preset, chunks of {m3po_chunk} steps")
    for env_id in args.envs:
        timers: dict[str, tuple[Callable[[int], float], int]] = {"M3PO (cpu preset)": (m3po_step_timer(env_id), m3po_chunk)}
        fit_seconds: dict[str, float] = {}
        for planner in CPU_PLANNERS:
            agent, fit_seconds[f"GHP-MDP + {planner}"] = ghp_mdp_agent(env_id, args.warmup, planner, pets=False)
            timers[f"GHP-MDP + {planner}"] = (planning_step_timer(agent), args.chunk)
        if args.pets:
            agent, fit_seconds["GHP-MDP + cem, PETS"] = ghp_mdp_agent(env_id, args.warmup, "cem", pets=True)
            timers["GHP-MDP + cem, PETS"] = (planning_step_timer(agent), 1)
        print_per_step(env_id, interleaved_medians(timers, args.repeats))
        for label, seconds in fit_seconds.items():
            print(f"  {label} refit: {seconds * 1e3:.2f} ms per gradient update (5 epochs of T / 32 updates per refit)")


if __name__ == "__main__":
    main()
