"""Real transitions for the model benchmarks: random-action episodes of an env with history observations, in
the arguments of the models' ``fit`` (histories, actions, next observations, rewards).
"""

from typing import Any

import numpy as np

from m3po_sb3.history import HistoryLayout
from m3po_sb3.run.registry import make_env  # also registers the meta_mujoco_envs


def collect_transitions(
    env_id: str, n: int, seed: int, history_length: int = 10, env_kwargs: dict[str, Any] | None = None
) -> tuple[HistoryLayout, tuple[np.ndarray, ...]]:
    """
    :param env_id: Gymnasium env id
    :param n: number of transitions
    :param seed: seed of the env (task sequence) and of the actions
    :param history_length: ``L``
    :param env_kwargs: keyword arguments of ``gym.make`` (``task_in_obs=True``: the same steps, the task appended to
        each observation)
    :return: the history layout and ``(histories, actions, next_obs, rewards)``
    """
    env = make_env(env_id, history_length, env_kwargs)
    layout = env.history_layout
    env.action_space.seed(seed)
    histories = np.empty((n, layout.size), np.float32)
    actions = np.empty((n, layout.act_dim), np.float32)
    next_obs = np.empty((n, layout.obs_dim), np.float32)
    rewards = np.empty(n, np.float32)
    history, _ = env.reset(seed=seed)
    for i in range(n):
        actions[i] = env.action_space.sample()
        histories[i] = history
        history, rewards[i], terminated, truncated, _ = env.step(actions[i])
        next_obs[i] = layout.split(history)[0]
        if terminated or truncated:
            history, _ = env.reset()
    return layout, (histories, actions, next_obs, rewards)
