"""Milliseconds per SAC update of history-SAC and M3PO against plain SB3 SAC on the raw observation.

    python benchmarks/bench_update.py [--env HalfCheetahFwdBwd-v0] [--sizes 400-400 256-256 64-64] [--repeats 7]

- SB3 SAC on histories: SB3 ``SAC`` with :func:`~m3po_sb3.history_policy_kwargs` on ``HistoryObservation(env)``
  (GRU of 5 units over L = 10 steps, swish MLPs);
- history-SAC: :class:`~m3po_sb3.HistorySAC` with the same policy, in both update orders (the default, SB3's,
  and ``actor_loss_before_critic_step=True``);
- plain SAC: SB3 ``SAC`` on the env's raw observation with the same MLPs (swish), no history;
- M3PO: ``M3PO.train`` (SAC's update, sampling the compact ``D_model``) with the same networks.

All with batch 256 and one torch thread, on replay buffers filled with random-action real steps (M3PO: its
``D_model`` holds one-step rollouts of the untrained model from them; the update's cost does not depend on
what the data are). Each timed call is ``train(--chunk)``; the agents of all sizes are timed in turn,
interleaved (order reversed every other repeat), and the medians over ``--repeats`` are compared. The
matrix products' floating-point operations per update (torch's ``FlopCounterMode``, backward included) are
printed beside them: on CPU the update's time is those plus a cost per operation, so their ratio is what the
time ratio would be with no per-operation cost.
"""

import argparse
import time

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.logger import configure
from torch.utils.flop_counter import FlopCounterMode

from m3po_sb3 import M3PO, HistorySAC, history_policy_kwargs
from m3po_sb3.run.registry import make_env  # also registers the meta_mujoco_envs

BUFFER_ROWS = 5000
# The columns of the tables, in make_agents' order.
AGENTS = {
    "sb3_history_sac": "SB3 SAC on histories",
    "history_sac": "history-SAC",
    "history_sac_actor_loss_first": "history-SAC, actor's loss before the critic's step",
    "plain_sac": "plain SAC",
    "m3po": "M3PO",
}


def fill_with_random_steps(agent: SAC, n_steps: int, seed: int) -> None:
    """Random-action real steps into the agent's real-data buffer (M3PO's D_env, SAC's replay buffer), as SB3 adds them."""
    env, buffer = agent.get_env(), getattr(agent, "env_buffer", agent.replay_buffer)
    assert env is not None
    env.seed(seed)
    obs = env.reset()
    rng = np.random.default_rng(seed)
    for _ in range(n_steps):
        action = rng.uniform(-1, 1, size=(1, *env.action_space.shape)).astype(np.float32)
        next_obs, reward, done, infos = env.step(agent.policy.unscale_action(action))
        real_next = infos[0]["terminal_observation"][None] if done[0] else next_obs
        buffer.add(obs, real_next, action, reward, done, infos)
        obs = next_obs


def make_agents(env_id: str, net_arch: tuple[int, ...], seed: int) -> dict[str, SAC]:
    history_env = make_env(env_id, 10)
    common = dict(batch_size=256, buffer_size=BUFFER_ROWS, seed=seed, device="cpu")
    agents: dict[str, SAC] = dict(
        sb3_history_sac=SAC("MlpPolicy", history_env, policy_kwargs=history_policy_kwargs(history_env.history_layout, net_arch=net_arch), **common),
        history_sac=HistorySAC("MlpPolicy", history_env, policy_kwargs=history_policy_kwargs(history_env.history_layout, net_arch=net_arch), **common),
        history_sac_actor_loss_first=HistorySAC(
            "MlpPolicy",
            history_env,
            policy_kwargs=history_policy_kwargs(history_env.history_layout, net_arch=net_arch),
            actor_loss_before_critic_step=True,
            **common,
        ),
        plain_sac=SAC("MlpPolicy", gym.make(env_id), policy_kwargs=dict(net_arch=list(net_arch), activation_fn=th.nn.SiLU), **common),
        m3po=M3PO(
            "MlpPolicy",
            make_env(env_id, 10),
            policy_kwargs=history_policy_kwargs(history_env.history_layout, net_arch=net_arch),
            env_buffer_size=BUFFER_ROWS,
            buffer_size=BUFFER_ROWS,
            rollouts_per_step=1,
            epoch_length=1000,
            model_kwargs=dict(hidden_units=64),
            batch_size=256,
            seed=seed,
            device="cpu",
        ),
    )
    for agent in agents.values():
        agent.set_logger(configure(None, []))
        fill_with_random_steps(agent, BUFFER_ROWS, seed)
    m3po = agents["m3po"]
    assert isinstance(m3po, M3PO)
    m3po.rollout_dynamics(BUFFER_ROWS)
    return agents


def ms_per_update(agent: SAC, chunk: int) -> float:
    start = time.perf_counter()
    agent.train(gradient_steps=chunk, batch_size=256)
    return (time.perf_counter() - start) / chunk * 1e3


def matmul_mflop_per_update(agent: SAC) -> float:
    with FlopCounterMode(display=False) as counter:
        agent.train(gradient_steps=1, batch_size=256)
    return counter.get_total_flops() / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="HalfCheetahFwdBwd-v0")
    parser.add_argument("--sizes", nargs="+", default=["400-400", "256-256", "64-64"], help="MLP hidden sizes")
    parser.add_argument("--chunk", type=int, default=20, help="updates per timed call")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    th.set_num_threads(1)
    sizes = {size: tuple(int(units) for units in size.split("-")) for size in args.sizes}
    agents = {size: make_agents(args.env, arch, seed=0) for size, arch in sizes.items()}
    runs = [(size, name) for size in sizes for name in agents[size]]
    timings: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
    for repeat in range(args.repeats + 1):
        for size, name in runs if repeat % 2 == 0 else runs[::-1]:
            ms = ms_per_update(agents[size][name], args.chunk)
            if repeat > 0:  # the first round warms up (first updates, allocator)
                timings[size, name].append(ms)
    print(f"env {args.env}, batch 256, torch threads {th.get_num_threads()}, median ms per update over {args.repeats} interleaved repeats of {args.chunk}")
    print_table("ms", {size: [float(np.median(timings[size, name])) for name in AGENTS] for size in sizes})
    print("\nmatrix-product MFLOP per update (forward and backward)")
    print_table("MFLOP", {size: [matmul_mflop_per_update(agents[size][name]) for name in AGENTS] for size in sizes})


def print_table(unit: str, values: dict[str, list[float]]) -> None:
    """A markdown row per MLP size: each agent's figure (in ``AGENTS``' order), then each against plain SAC's."""
    others = [name for name in AGENTS if name != "plain_sac"]
    print("| MLP | " + " | ".join(f"{header} {unit}" for header in AGENTS.values()) + " | " + " | ".join(f"{AGENTS[name]} / plain" for name in others) + " |")
    print("|---" * (1 + len(AGENTS) + len(others)) + "|")
    for size, figures in values.items():
        by_name = dict(zip(AGENTS, figures))
        ratios = [by_name[name] / by_name["plain_sac"] for name in others]
        print(f"| {size} | " + " | ".join(f"{figure:.1f}" for figure in figures) + " | " + " | ".join(f"{ratio:.2f}" for ratio in ratios) + " |")


if __name__ == "__main__":
    main()
