"""Histories for meta-RL: the last ``L`` observations, actions and rewards plus the current observation.

M3PO conditions its meta-policy, critics and meta-model on a history ``h_t`` (seed A.7, ``L = 10``). Here a history is a flat float vector so that any stable-baselines3 algorithm and replay
buffer can store it unchanged:

``[ o_t (obs_dim) | past_obs (L * obs_dim) | past_act (L * act_dim) | past_rew (L,) | mask (L,) ]``

with the past entries oldest first. ``mask`` is 1.0 for a real ``(o_k, a_k, r_k)`` step and 0.0 for the zero
padding at the start of an episode. The rewards are what reveal a task defined by the reward alone (the
running direction of the fwd-bwd envs): as in PEARL, RL² and VariBAD, a context without them cannot tell
such tasks apart. Fictitious histories carry the model's predicted rewards.
"""

from dataclasses import dataclass
from typing import TypeVar, Union

import numpy as np
import torch as th

Array = TypeVar("Array", np.ndarray, th.Tensor)
ArrayLike = Union[np.ndarray, th.Tensor]

ArrayLike = Union[np.ndarray, th.Tensor]


def _concat(parts: list[Array], axis: int) -> Array:
    if isinstance(parts[0], th.Tensor):
        return th.cat(parts, dim=axis)
    return np.concatenate(parts, axis=axis)


def _zeros(like: Array, shape: tuple[int, ...]) -> Array:
    if isinstance(like, th.Tensor):
        return like.new_zeros(shape)
    return np.zeros(shape, dtype=like.dtype)


def check_last_dim(x: ArrayLike, size: int, name: str) -> None:
    if x.ndim < 1 or x.shape[-1] != size:
        raise ValueError(f"{name} must have last dimension {size}, got shape {tuple(x.shape)}")


@dataclass(frozen=True)
class HistoryLayout:
    """
    Layout of a flat history vector (see the module docstring). All methods accept numpy arrays or torch
    tensors with any leading batch dimensions and return the same kind.

    :param obs_dim: size of one observation
    :param act_dim: size of one action
    :param history_length: number ``L`` of past (observation, action, reward) steps kept
    """

    obs_dim: int
    act_dim: int
    history_length: int

    def __post_init__(self) -> None:
        for name in ("obs_dim", "act_dim", "history_length"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"HistoryLayout.{name} must be a positive integer, got {value!r}")

    @property
    def size(self) -> int:
        """Length of the flat history vector."""
        return self.obs_dim + self.history_length * (self.obs_dim + self.act_dim + 2)

    def split(self, x: Array) -> tuple[Array, Array, Array, Array, Array]:
        """
        Split flat histories into their parts (views where the backend allows).

        :param x: histories, shape ``(..., size)``
        :return: ``current_obs (..., obs_dim)``, ``past_obs (..., L, obs_dim)``, ``past_act (..., L, act_dim)``,
            ``past_rew (..., L)``, ``mask (..., L)``; past entries are oldest first
        """
        check_last_dim(x, self.size, "history")
        n_obs, n_act, length = self.obs_dim, self.act_dim, self.history_length
        past_obs_end = n_obs + length * n_obs
        past_act_end = past_obs_end + length * n_act
        past_rew_end = past_act_end + length
        batch = x.shape[:-1]
        return (
            x[..., :n_obs],
            x[..., n_obs:past_obs_end].reshape(*batch, length, n_obs),
            x[..., past_obs_end:past_act_end].reshape(*batch, length, n_act),
            x[..., past_act_end:past_rew_end],
            x[..., past_rew_end:],
        )

    def join(self, current_obs: Array, past_obs: Array, past_act: Array, past_rew: Array, mask: Array) -> Array:
        """
        Inverse of :meth:`split`.

        :param current_obs: shape ``(..., obs_dim)``
        :param past_obs: shape ``(..., L, obs_dim)``, oldest first
        :param past_act: shape ``(..., L, act_dim)``, oldest first
        :param past_rew: shape ``(..., L)``, oldest first
        :param mask: shape ``(..., L)``, 1.0 for real entries, 0.0 for padding
        :return: flat histories, shape ``(..., size)``
        """
        check_last_dim(current_obs, self.obs_dim, "current observation")
        for part, width, name in ((past_obs, self.obs_dim, "past observations"), (past_act, self.act_dim, "past actions")):
            check_last_dim(part, width, name)
            if part.shape[-2] != self.history_length:
                raise ValueError(f"{name} must hold {self.history_length} steps, got shape {tuple(part.shape)}")
        for part, name in ((past_rew, "past rewards"), (mask, "mask")):
            check_last_dim(part, self.history_length, name)
        flat = [past.reshape(*past.shape[:-2], -1) for past in (past_obs, past_act)]
        return _concat([current_obs, *flat, past_rew, mask], axis=-1)

    def shift(self, x: Array, action: Array, reward: Array, next_obs: Array) -> Array:
        """
        Advance histories by one step: drop the oldest step, append ``(o_t, a_t, r_t)`` as a real entry and
        make ``next_obs`` the current observation.

        :param x: histories ``h_t``, shape ``(..., size)``
        :param action: actions ``a_t``, shape ``(..., act_dim)``
        :param reward: rewards ``r_t``, shape ``(...)``
        :param next_obs: observations ``o_{t+1}``, shape ``(..., obs_dim)``
        :return: histories ``h_{t+1}``
        """
        check_last_dim(action, self.act_dim, "action")
        check_last_dim(next_obs, self.obs_dim, "next observation")
        current_obs, past_obs, past_act, past_rew, mask = self.split(x)
        if tuple(reward.shape) != tuple(mask.shape[:-1]):
            raise ValueError(f"reward must have shape {tuple(mask.shape[:-1])} (one per history), got {tuple(reward.shape)}")
        past_obs = _concat([past_obs[..., 1:, :], current_obs[..., None, :]], axis=-2)
        past_act = _concat([past_act[..., 1:, :], action[..., None, :]], axis=-2)
        past_rew = _concat([past_rew[..., 1:], reward[..., None]], axis=-1)
        mask = _concat([mask[..., 1:], _zeros(mask, (*mask.shape[:-1], 1)) + 1], axis=-1)
        return self.join(next_obs, past_obs, past_act, past_rew, mask)

    def initial(self, first_obs: Array) -> Array:
        """
        History at an episode start: no past, everything padded.

        :param first_obs: observations ``o_0``, shape ``(..., obs_dim)``
        :return: histories with zero padding and an all-zero mask
        """
        check_last_dim(first_obs, self.obs_dim, "first observation")
        padding = _zeros(first_obs, (*first_obs.shape[:-1], self.size - self.obs_dim))
        return _concat([first_obs, padding], axis=-1)
