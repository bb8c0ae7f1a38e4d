"""Batched branched rollouts (MBPO's scheme, on histories): ``k`` steps of policy and learned model from a
batch of real start histories, one tensor operation per horizon step for the whole batch.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch as th
from gymnasium import spaces

from m3po_sb3.models.networks import DynamicsModel

TerminationFn = Callable[[np.ndarray], np.ndarray]
ActionRewardFn = Callable[[np.ndarray], np.ndarray]  # actions (N, act_dim) in the env's units -> rewards (N,)


@dataclass
class RolloutBatch:
    """
    Fictitious transitions of a batch of branched rollouts, ready for :meth:`ModelReplayBuffer.extend`, with
    where each row comes from (start history and step), and what happened to the rows that were not stored.

    :param obs: histories ``h_t``, shape ``(n, history_size)``
    :param next_obs: histories ``h_{t+1}``, shape ``(n, history_size)``
    :param action: actions normalised to ``[-1, 1]`` (SB3's buffer convention), shape ``(n, act_dim)``
    :param reward: predicted rewards, shape ``(n,)``
    :param done: whether the env's health rule ends the episode at ``o_{t+1}``, shape ``(n,)``
    :param n_dropped_nonfinite: rows the model predicted a non-finite value for (not stored, not continued)
    :param origin: index of each row's start history in ``start_histories``, shape ``(n,)``
    :param step: the rollout step ``j`` of each row (0 for the first), shape ``(n,)``
    """

    obs: np.ndarray
    next_obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    done: np.ndarray
    n_dropped_nonfinite: int
    origin: np.ndarray
    step: np.ndarray

    def __len__(self) -> int:
        return len(self.obs)

    @property
    def terminated_fraction(self) -> float:
        """Share of the stored transitions that end their episode (0 for an empty batch)."""
        return float(self.done.mean()) if len(self) > 0 else 0.0


@th.no_grad()
def branched_rollouts(
    start_histories: th.Tensor,
    actor: Callable[[th.Tensor], th.Tensor],
    dynamics: DynamicsModel,
    action_space: spaces.Box,
    horizon: int,
    termination_fn: TerminationFn | None = None,
    action_reward_fn: ActionRewardFn | None = None,
) -> RolloutBatch:
    """
    Roll ``horizon`` steps from every start history. Each step is one batched policy forward, one
    ``dynamics.sample`` and one history shift for all live rows. Rows with a non-finite prediction are
    dropped and counted; rows whose ``o_{t+1}`` the health rule ends are stored with ``done = 1`` and stop.

    :param start_histories: real histories ``h_t`` (e.g. sampled from ``D_env``), shape ``(N, history_size)``,
        on the model's device
    :param actor: maps histories to actions normalised to ``[-1, 1]`` (an SB3 SAC ``Actor``: stochastic)
    :param dynamics: the learned model; it receives, like the histories record them, actions in the env's units
    :param action_space: the env's action space, to turn normalised actions into the env's units
    :param horizon: rollout length ``k`` (>= 1)
    :param termination_fn: the env's batched health rule ``(N, obs_dim) -> (N,)`` bool; ``None``: never terminal
    :param action_reward_fn: a known reward term of the action, added to the model's reward (which was fit on
        the rest); ``None``: the model's reward is the whole reward
    :return: the stored transitions of all steps, step after step
    """
    if horizon < 1:
        raise ValueError(f"branched_rollouts: horizon must be >= 1, got {horizon}")
    layout = dynamics.history_layout
    low, high = (th.as_tensor(bound, dtype=th.float32, device=start_histories.device) for bound in (action_space.low, action_space.high))
    steps: list[tuple[th.Tensor, ...]] = []
    n_dropped = 0
    histories = start_histories
    origin = th.arange(len(start_histories), device=start_histories.device)
    for step in range(horizon):
        actions = actor(histories)
        env_actions = low + 0.5 * (actions + 1.0) * (high - low)  # SB3's ``unscale_action``, on tensors
        next_obs, rewards = dynamics.sample(histories, env_actions)
        if action_reward_fn is not None:
            rewards = rewards + th.as_tensor(known_action_rewards(action_reward_fn, env_actions.cpu().numpy()), device=rewards.device)
        finite = th.isfinite(next_obs).all(dim=1) & th.isfinite(rewards)
        n_dropped += int((~finite).sum())
        histories, actions, env_actions, next_obs, rewards, origin = (
            x[finite] for x in (histories, actions, env_actions, next_obs, rewards, origin)
        )
        next_histories = layout.shift(histories, env_actions, rewards, next_obs)  # fictitious histories carry r̂
        dones = th.as_tensor(_terminated(termination_fn, next_obs), device=rewards.device)
        steps.append((histories, next_histories, actions, rewards, dones, origin, th.full_like(origin, step)))
        histories, origin = next_histories[~dones], origin[~dones]
        if len(histories) == 0:
            break
    obs, next_obs, action, reward, done, origin, step_index = (th.cat(column).cpu().numpy() for column in zip(*steps))
    return RolloutBatch(obs, next_obs, action, reward, done.astype(np.float32), n_dropped, origin, step_index)


def known_action_rewards(action_reward_fn: ActionRewardFn, actions: np.ndarray) -> np.ndarray:
    """``action_reward_fn(actions)``, checked to be one finite float32 per row."""
    rewards = np.asarray(action_reward_fn(actions), dtype=np.float32)
    if rewards.shape != (len(actions),) or not np.isfinite(rewards).all():
        raise ValueError(f"action_reward_fn must return one finite reward per row, shape ({len(actions)},), got shape {rewards.shape}")
    return rewards


def _terminated(termination_fn: TerminationFn | None, next_obs: th.Tensor) -> np.ndarray:
    """The health rule on predicted observations, checked to be one bool per row."""
    if termination_fn is None:
        return np.zeros(len(next_obs), dtype=bool)
    dones = np.asarray(termination_fn(next_obs.cpu().numpy()))
    if dones.shape != (len(next_obs),):
        raise ValueError(f"termination_fn must return one flag per row, shape ({len(next_obs)},), got {dones.shape}")
    return dones.astype(bool)
