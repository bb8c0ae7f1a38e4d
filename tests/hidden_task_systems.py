"""Small switching systems with a hidden task, of the kinds the meta-envs have (a hidden action gain, a hidden
actuator failure, a hidden reward sign), for the meta-model's tests and benchmarks. Each is a plain function
of the task; none is shaped around how the model encodes histories.
"""

from collections.abc import Callable

import numpy as np

from m3po_sb3.history import HistoryLayout

# step(obs, action, task, rng) -> (next_obs, reward)
Step = Callable[[np.ndarray, np.ndarray, float, np.random.Generator], tuple[np.ndarray, float]]


def gain_step(obs: np.ndarray, action: np.ndarray, gain: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A damped pendulum (angle, velocity) whose torque is ``gain * tanh(2 a)``: the task scales the action."""
    velocity = 0.9 * obs[1] + 0.2 * (gain * np.tanh(2.0 * action[0]) - np.sin(obs[0])) + 0.01 * rng.standard_normal()
    next_obs = np.array([obs[0] + 0.2 * velocity, velocity], np.float32)
    return next_obs, float(np.cos(next_obs[0]) - 0.1 * action[0] ** 2)


def failure_step(obs: np.ndarray, action: np.ndarray, failed: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """
    Three coupled damped joints driven by three actuators; the task is the index of the actuator that
    delivers no force (crippled-leg style), or 3 for none.
    """
    force = np.tanh(1.5 * action) * (np.arange(3) != failed)
    coupling = np.array([[1.0, 0.3, 0.0], [0.3, 1.0, 0.3], [0.0, 0.3, 1.0]])
    next_obs = (0.8 * obs + 0.3 * coupling @ force - 0.05 * np.sin(obs) + 0.01 * rng.standard_normal(3)).astype(np.float32)
    return next_obs, float(next_obs[0] - 0.1 * np.sum(action**2))


def reward_sign_step(obs: np.ndarray, action: np.ndarray, direction: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A point mass moved by the action; the task is the direction (±1) the reward pays for (fwd-bwd style)."""
    next_obs = (0.9 * obs + 0.3 * action + 0.01 * rng.standard_normal(2)).astype(np.float32)
    return next_obs, float(direction * (next_obs[0] - obs[0]) / 0.3 - 0.05 * np.sum(action**2))


SYSTEMS: dict[str, tuple[Step, HistoryLayout, tuple[float, ...]]] = {
    "action_gain": (gain_step, HistoryLayout(obs_dim=2, act_dim=1, history_length=10), (0.3, 1.0, 1.7)),
    "actuator_failure": (failure_step, HistoryLayout(obs_dim=3, act_dim=3, history_length=10), (0.0, 1.0, 2.0, 3.0)),
    "reward_sign": (reward_sign_step, HistoryLayout(obs_dim=2, act_dim=2, history_length=10), (-1.0, 1.0)),
}


def hidden_task_data(
    name: str, rng: np.random.Generator, episodes: int, steps: int = 100, switch_every: int = 25, *, labels: bool = False
) -> tuple[np.ndarray, ...]:
    """
    Random-action episodes of one of :data:`SYSTEMS`, the task redrawn every ``switch_every`` steps.

    :param labels: also return each row's task and the steps since its task was drawn (0 at the draw)
    :return: histories, actions, next observations, rewards (the arguments of the models' ``fit``), and with
        ``labels`` the tasks and steps since the draw
    """
    return switching_episodes(*SYSTEMS[name], rng, episodes, steps, switch_every, labels=labels)


def switching_episodes(
    step: Step,
    layout: HistoryLayout,
    tasks: tuple[float, ...],
    rng: np.random.Generator,
    episodes: int,
    steps: int,
    switch_every: int,
    *,
    labels: bool = False,
) -> tuple[np.ndarray, ...]:
    """
    Random-action episodes of ``step``, from observations drawn in [-1, 1], the task drawn from ``tasks`` at
    every ``switch_every``-th step of an episode.

    :param labels: also return each row's task and the steps since its task was drawn (0 at the draw)
    :return: histories, actions, next observations, rewards (the arguments of the models' ``fit``), and with
        ``labels`` the tasks and steps since the draw
    """
    histories, actions, next_obs, rewards, row_tasks, since_draw = [], [], [], [], [], []
    for _ in range(episodes):
        obs = rng.uniform(-1, 1, layout.obs_dim).astype(np.float32)
        history = layout.initial(obs)
        for t in range(steps):
            if t % switch_every == 0:
                task = rng.choice(tasks)
            action = rng.uniform(-1, 1, layout.act_dim).astype(np.float32)
            obs, reward = step(obs, action, task, rng)
            histories.append(history)
            actions.append(action)
            next_obs.append(obs)
            rewards.append(reward)
            row_tasks.append(task)
            since_draw.append(t % switch_every)
            history = layout.shift(history, action, np.float32(reward), obs)
    data = (np.array(histories), np.array(actions), np.array(next_obs), np.array(rewards, np.float32))
    return (*data, np.array(row_tasks), np.array(since_draw)) if labels else data
