"""Wall-clock of one SAC update of PEARL against history-SAC and M3PO, at the same network sizes.

    python benchmarks/bench_pearl.py [--env HalfCheetahFwdBwd-v0] [--threads 1] [--gradient-steps 20] [--repeats 9]

All agents: batch 256, L = 10 histories, actor and critic MLPs of 400-400 swish units (Table 2). History-SAC
(``HistorySAC``, the ``--algo sac`` baseline) and M3PO, both in SB3's update order (their default), condition
them on a GRU of 5 units over the history (M3PO's update is history-SAC's, on D_model instead of the real
data); PEARL on ``(o, z)`` from its context encoder (3 × 200 ReLU, oyster's) over the same window.
A second PEARL line uses oyster's own actor and critic sizes (3 × 300 ReLU). After a warm-up of random steps
(and, for M3PO, one model fit and one batch of rollouts), rounds of ``G`` updates of each agent are timed in
turn, alternating the order, so all see the same machine load; the medians per update and their ratios are
printed. Only the updates are timed: M3PO's rollouts and model fits are in ``bench_overhead.py``.
"""

import argparse
import time

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import SAC

import meta_mujoco_envs  # noqa: F401  (registers the envs)
from m3po_sb3 import M3PO, PEARL, HistoryObservation, HistorySAC, history_policy_kwargs

HISTORY_LENGTH = 10
NET_ARCH = (400, 400)
BATCH_SIZE = 256


def build_agents(env_id: str, warmup: int) -> dict[str, SAC]:
    """:return: the agents, each after ``warmup`` random steps (M3PO: and its first fit and rollouts)"""
    layout = HistoryObservation(gym.make(env_id), HISTORY_LENGTH).history_layout
    common = dict(batch_size=BATCH_SIZE, learning_starts=warmup, gradient_steps=1, seed=0, device="cpu")
    same_size = dict(net_arch=list(NET_ARCH), activation_fn=th.nn.SiLU)
    agents: dict[str, SAC] = {
        "history-SAC": HistorySAC(
            "MlpPolicy", HistoryObservation(gym.make(env_id), HISTORY_LENGTH), policy_kwargs=history_policy_kwargs(layout), **common
        ),
        "M3PO": M3PO(
            "MlpPolicy", env_id, epoch_length=warmup, rollouts_per_step=2 * BATCH_SIZE, model_fit_kwargs=dict(max_epochs=2), **common
        ),
        "PEARL": PEARL("MlpPolicy", env_id, policy_kwargs=same_size, **common),
        "PEARL (oyster's 3x300 ReLU)": PEARL("MlpPolicy", env_id, **common),
    }
    for agent in agents.values():
        agent.learn(warmup + 1)
    return agents


def seconds_per_update(agent: SAC, gradient_steps: int) -> float:
    start = time.perf_counter()
    agent.train(gradient_steps, BATCH_SIZE)
    return (time.perf_counter() - start) / gradient_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="HalfCheetahFwdBwd-v0")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gradient-steps", type=int, default=20, help="updates per timed round")
    parser.add_argument("--repeats", type=int, default=9, help="timed rounds per agent")
    parser.add_argument("--warmup", type=int, default=300, help="random env steps before the first update")
    args = parser.parse_args()
    th.set_num_threads(args.threads)

    agents = build_agents(args.env, args.warmup)
    timings: dict[str, list[float]] = {name: [] for name in agents}
    for repeat in range(args.repeats + 1):
        order = list(agents) if repeat % 2 == 0 else list(agents)[::-1]
        for name in order:
            seconds = seconds_per_update(agents[name], args.gradient_steps)
            if repeat > 0:  # the first round warms up (allocator, first updates)
                timings[name].append(seconds)
    medians = {name: float(np.median(values)) for name, values in timings.items()}
    print(f"env {args.env}, torch threads {th.get_num_threads()}, batch {BATCH_SIZE}, L = {HISTORY_LENGTH}, {args.gradient_steps} updates x {args.repeats} rounds")
    for name, seconds in medians.items():
        print(
            f"{name:28s} {seconds * 1e3:7.2f} ms per update   "
            f"x{seconds / medians['history-SAC']:.2f} history-SAC   x{seconds / medians['M3PO']:.2f} M3PO"
        )


if __name__ == "__main__":
    main()
