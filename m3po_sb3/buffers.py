"""Replay buffers of M3PO: what stable-baselines3's ``ReplayBuffer`` lacks.

- :class:`ModelReplayBuffer` (``D_model``): SB3's storage plus a vectorised bulk insertion, because the
  branched rollouts produce thousands of fictitious transitions at once.
- :class:`HybridReplayBuffer` (M3PO-h's ``D_hyb = β·D_model + (1 − β)·D_env``, seed A.8): a sampling view over
  two buffers that draws ``round(β · batch_size)`` transitions from ``D_model`` and the rest from ``D_env``.
"""

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize


class ModelReplayBuffer(ReplayBuffer):
    """
    ``D_model``: a bounded, preallocated SB3 ``ReplayBuffer`` of fictitious transitions with a vectorised
    :meth:`extend`. Model transitions have no time limit, so there are no timeouts, and one row per step
    (``n_envs = 1``).

    :param buffer_size: maximum number of transitions kept (the oldest are overwritten)
    :param observation_space: observation space (the flat histories)
    :param action_space: action space
    :param device: PyTorch device of the sampled tensors
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
    ):
        super().__init__(buffer_size, observation_space, action_space, device, n_envs=1, handle_timeout_termination=False)

    def extend(  # type: ignore[override]
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
    ) -> None:
        """
        Insert a batch of transitions with at most two slice writes per array (the ring buffer may wrap
        around); the result equals ``add`` called once per transition, in order.

        :param obs: observations, shape ``(n, *obs_shape)``
        :param next_obs: next observations, shape ``(n, *obs_shape)``
        :param action: actions (normalised to ``[-1, 1]`` as SB3 stores them), shape ``(n, action_dim)``
        :param reward: rewards, shape ``(n,)``
        :param done: termination flags, shape ``(n,)``
        """
        n = len(obs)
        expected = dict(
            obs=(n, *self.obs_shape), next_obs=(n, *self.obs_shape), action=(n, self.action_dim), reward=(n,), done=(n,)
        )
        arrays = dict(obs=obs, next_obs=next_obs, action=action, reward=reward, done=done)
        for name, array in arrays.items():
            if np.shape(array) != expected[name]:
                raise ValueError(f"ModelReplayBuffer.extend: {name} must have shape {expected[name]}, got {np.shape(array)}")
            # A non-finite transition would poison the critics' targets: refuse it here, loudly.
            if not np.all(np.isfinite(array)):
                raise ValueError(f"ModelReplayBuffer.extend: {name} contains non-finite values")
        # More rows than slots: only the last ``buffer_size`` survive, as with one ``add`` per row.
        skip = max(n - self.buffer_size, 0)
        start = (self.pos + skip) % self.buffer_size
        for target, column in (
            (self.observations, obs),
            (self.next_observations, next_obs),
            (self.actions, action),
            (self.rewards, reward),
            (self.dones, done),
        ):
            _ring_write(target[:, 0], start, np.asarray(column)[skip:])
        self.full = self.full or self.pos + n >= self.buffer_size
        self.pos = (self.pos + n) % self.buffer_size


def _ring_write(target: np.ndarray, start: int, rows: np.ndarray) -> None:
    """Write ``rows`` into ``target`` from index ``start`` on, wrapping around at the end (two slices at most)."""
    head = min(len(rows), len(target) - start)
    target[start : start + head] = rows[:head]
    target[: len(rows) - head] = rows[head:]


class HybridReplayBuffer:
    """
    M3PO-h's ``D_hyb = β·D_model + (1 − β)·D_env`` as a view: :meth:`sample` draws ``round(β · batch_size)``
    transitions from ``D_model`` and the rest from ``D_env``, each uniformly, and returns them as one SB3
    ``ReplayBufferSamples`` (model rows first).

    :param model_buffer: ``D_model``
    :param env_buffer: ``D_env``
    :param beta: mixture ratio ``β`` in ``[0, 1]``, the share of model transitions
    """

    def __init__(self, model_buffer: ReplayBuffer, env_buffer: ReplayBuffer, beta: float):
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"HybridReplayBuffer: beta must lie in [0, 1], got {beta}")
        self.model_buffer = model_buffer
        self.env_buffer = env_buffer
        self.beta = beta

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ReplayBufferSamples:
        """
        :param batch_size: number of transitions
        :param env: SB3's ``VecNormalize`` to normalise the samples with, if any
        :return: the mixed batch
        """
        n_model = round(self.beta * batch_size)
        parts = [
            buffer.sample(n, env=env)
            for buffer, n in ((self.model_buffer, n_model), (self.env_buffer, batch_size - n_model))
            if n > 0
        ]
        return ReplayBufferSamples(*(_concat_field(field) for field in zip(*parts)))


def _concat_field(tensors: tuple[Any, ...]) -> th.Tensor | None:
    """Concatenate one field of several samples; optional fields (``discounts``) absent in all stay ``None``."""
    return None if tensors[0] is None else th.cat(tensors)
