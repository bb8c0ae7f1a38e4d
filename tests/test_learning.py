"""The guard (issue 9): M2PO and M3PO learn Pendulum-v1, on every seed, about as well as plain SB3 SAC with the
same number of updates per step; an agent with a broken model, buffer or update does not.

Cheap settings so that the guard fits the suite (small networks, L = 2, rollouts made 50 steps' worth at a
time); the threshold and the measurements behind it are in benchmarks/README.md ("Learning guard").
"""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.evaluation import evaluate_policy

from m3po_sb3 import M2PO, M3PO, HistoryObservation, history_policy_kwargs

STEPS = 2000
# Mean return of 5 deterministic episodes; see benchmarks/README.md for the returns over seeds this is set from.
THRESHOLD = -400.0


def make_agent(agent_class: type[M3PO], seed: int) -> M3PO:
    env = HistoryObservation(gym.make("Pendulum-v1"), history_length=2)
    model_kwargs = dict(hidden_units=64, num_hidden_layers=2)
    if agent_class is M2PO:  # MBPO's model, narrower
        model_kwargs = dict(num_elites=5, hidden_units=64, num_hidden_layers=4)
    return agent_class(
        "MlpPolicy",
        env,
        policy_kwargs=history_policy_kwargs(env.history_layout, net_arch=(64, 64)),
        epoch_length=250,
        rollouts_per_step=50,
        rollout_every=50,
        gradient_steps=GRADIENT_STEPS,
        env_buffer_size=STEPS,
        model_kwargs=model_kwargs,
        seed=seed,
        device="cpu",
    )


GRADIENT_STEPS = 5


def pendulum_return(agent: M3PO, seed: int) -> float:
    eval_env = HistoryObservation(gym.make("Pendulum-v1"), history_length=2)
    eval_env.reset(seed=1000 + seed)
    mean_return, _ = evaluate_policy(agent, eval_env, n_eval_episodes=5, deterministic=True)
    return float(mean_return)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("agent_class", [M2PO, M3PO])
def test_agent_learns_pendulum_on_every_seed(agent_class: type[M3PO], seed: int):
    agent = make_agent(agent_class, seed)
    agent.learn(STEPS)
    mean_return = pendulum_return(agent, seed)
    print(f"{agent_class.__name__} seed {seed}: return {mean_return:.0f} after {STEPS} steps")
    assert mean_return > THRESHOLD
