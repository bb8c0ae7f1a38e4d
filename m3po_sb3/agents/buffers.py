"""Replay buffers of M3PO that store each history's steps once, and M3PO-h's hybrid sampler.

A history ``h_t`` (:class:`~m3po_sb3.history.HistoryLayout`) is a window over steps that are already stored, so
storing ``h_t`` and ``h_{t+1}`` in full for every transition (SB3's ``ReplayBuffer``) holds each step ``2L + 2``
times. These buffers store every step once and rebuild the windows by index when sampled; the samples are
the same arrays SB3's ``ReplayBuffer`` would return for the same transitions and seed.

- :class:`HistoryReplayBuffer` (``D_env``): real steps of one :class:`~m3po_sb3.history.HistoryObservation`
  env, in the order they happen. It keeps ``L`` steps more than ``buffer_size`` so that the oldest row's
  window survives the ring's overwrites.
- :class:`ModelReplayBuffer` (``D_model``): fictitious transitions of branched rollouts. A row keeps the
  ``D_env`` step its rollout started from and the rollout's own steps up to it (``min(k, L + 2)`` of them);
  ``h_t`` and ``h_{t+1}`` are the real window continued by those steps. Rows whose start step ``D_env`` has
  overwritten since are never sampled.
- :class:`HybridReplayBuffer` (M3PO-h's ``D_hyb = β·D_model + (1 − β)·D_env``, seed A.8): a sampling view over
  two buffers that draws ``round(β · batch_size)`` transitions from ``D_model`` and the rest from ``D_env``.
"""

import uuid
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from m3po_sb3.history.layout import HistoryLayout
from m3po_sb3.models.rollouts import RolloutBatch


class _RebuiltHistoriesBuffer(ReplayBuffer):
    """
    SB3's ``observations`` / ``next_observations`` attributes for the buffers below, which store steps instead
    of histories: all rows' ``h_t`` / ``h_{t+1}``, shape ``(buffer_size, 1, history_size)``, rebuilt (a copy) by
    the subclass's ``_all_rows``, so code that reads SB3's attributes keeps working.
    """

    @property
    def observations(self) -> np.ndarray:  # type: ignore[override]
        return self._all_rows(0)

    @property
    def next_observations(self) -> np.ndarray:  # type: ignore[override]
        return self._all_rows(1)

    def _all_rows(self, which: int) -> np.ndarray:
        raise NotImplementedError


class HistoryReplayBuffer(_RebuiltHistoriesBuffer):
    """
    A ``ReplayBuffer`` of :class:`~m3po_sb3.history.HistoryObservation` transitions that stores each real step
    ``(o_t, a_t, r_t)`` once and rebuilds ``h_t`` and ``h_{t+1}`` from the ``L`` steps before it when sampled
    (zero padding where the episode had fewer). ``add`` checks that each transition continues the stored
    steps (one env, in order, as SB3's off-policy algorithms add them), so the rebuilt histories are exactly
    the ones added. Usable by any SB3 off-policy algorithm: ``replay_buffer_class=HistoryReplayBuffer,
    replay_buffer_kwargs=dict(history_layout=env.history_layout)``.

    :param buffer_size: maximum number of transitions kept (the oldest are overwritten)
    :param observation_space: the flat history space
    :param action_space: action space
    :param history_layout: layout of the histories
    :param device: PyTorch device of the sampled tensors
    :param n_envs: number of envs; must be 1 (a history is a window over one env's consecutive steps)
    :param optimize_memory_usage: must be False (SB3's option does not apply: nothing is stored twice)
    :param handle_timeout_termination: treat time-limit truncations as non-terminal, as SB3 does
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        history_layout: HistoryLayout,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
    ):
        if observation_space.shape != (history_layout.size,):
            raise ValueError(f"observation space shape {observation_space.shape} does not match the history layout ({history_layout.size},)")
        if n_envs != 1:
            raise ValueError(f"{type(self).__name__} stores the consecutive steps of one env, got n_envs={n_envs}")
        if optimize_memory_usage:
            raise ValueError(f"{type(self).__name__} stores each step once already: optimize_memory_usage must be False")
        # ReplayBuffer.__init__ would allocate the full histories this class avoids: only the base's init.
        BaseBuffer.__init__(self, buffer_size, observation_space, action_space, device, n_envs)
        self.history_layout = history_layout
        self.optimize_memory_usage = False
        self.handle_timeout_termination = handle_timeout_termination
        self.uid = uuid.uuid4().hex  # lets a ModelReplayBuffer check that it reads the D_env its rows came from
        self.n_added = 0  # transitions ever added: the absolute index of the next step
        # Step storage, indexed by absolute step modulo ``capacity``: L more than the rows, for the oldest window,
        # and a last slot that stays zero: the padding before an episode start is gathered from it.
        self.capacity = buffer_size + history_layout.history_length
        obs_dim, act_dim = history_layout.obs_dim, history_layout.act_dim
        # One record per step, ``[o_t | a_t | r_t]`` with a_t, r_t as the histories record them (env units):
        # one gather per window.
        self.step_records = np.zeros((self.capacity + 1, obs_dim + act_dim + 1), np.float32)
        # Row storage, indexed like SB3's: what a window does not hold.
        self.next_step_obs = np.zeros((buffer_size, obs_dim), np.float32)  # o_{t+1} (the terminal one at an episode end)
        self.n_past = np.zeros(buffer_size, np.int64)  # real past steps in h_t (0 at an episode start)
        self.actions = np.zeros((buffer_size, 1, self.action_dim), np.float32)
        self.rewards = np.zeros((buffer_size, 1), np.float32)
        self.dones = np.zeros((buffer_size, 1), np.float32)
        self.timeouts = np.zeros((buffer_size, 1), np.float32)

    def reset(self) -> None:
        super().reset()
        self.n_added = 0
        self.uid = uuid.uuid4().hex  # the D_model rows that pointed into this buffer no longer do

    # ------------------------------------------------------------------ storing
    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        layout = self.history_layout
        history, next_history = (np.asarray(x, np.float32).reshape(layout.size) for x in (obs, next_obs))
        if not (np.all(np.isfinite(history)) and np.all(np.isfinite(next_history))):
            raise ValueError(f"{type(self).__name__}.add: non-finite values in obs or next_obs")
        current_obs, _, _, _, mask = layout.split(history)
        n_past = int(mask.sum())
        next_current_obs, _, past_actions, past_rewards, _ = layout.split(next_history)
        own_step = (current_obs[None], past_actions[None, -1], past_rewards[None, -1])  # not stored yet
        expected = self._histories(np.array([self.n_added]), np.array([n_past]), next_current_obs[None], own_step)
        if not np.array_equal(expected[0][0], history):
            raise ValueError(
                f"{type(self).__name__}.add: obs is not the next history of the stored steps (its {n_past} past steps differ "
                "from the last ones added); add the transitions of one HistoryObservation env in the order they happen"
            )
        if not np.array_equal(expected[1][0], next_history):
            raise ValueError(f"{type(self).__name__}.add: next_obs is not obs shifted by one step (HistoryLayout.shift)")
        slot, row = self.n_added % self.capacity, self.pos
        self.step_records[slot] = np.concatenate([current_obs, past_actions[-1], past_rewards[-1:]])
        self.next_step_obs[row], self.n_past[row] = next_current_obs, n_past
        self.actions[row] = np.asarray(action).reshape(1, self.action_dim)
        self.rewards[row], self.dones[row] = np.asarray(reward).reshape(1), np.asarray(done).reshape(1)
        if self.handle_timeout_termination:
            self.timeouts[row] = [info.get("TimeLimit.truncated", False) for info in infos]
        self.n_added += 1
        self.pos = (self.pos + 1) % self.buffer_size
        self.full = self.full or self.pos == 0

    # ------------------------------------------------------------------ rebuilding histories
    def steps(self, rows: np.ndarray) -> np.ndarray:
        """:return: the absolute step indices (count of earlier ``add`` calls) of the transitions in ``rows``"""
        newest = self.n_added - 1
        return newest - (newest - np.asarray(rows, np.int64)) % self.buffer_size

    def step_data(self, steps: np.ndarray, valid: np.ndarray | bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """
        :param steps: absolute step indices, any shape, within the last ``buffer_size + L`` steps
        :param valid: where False, zeros (padding) instead of the step's data; broadcast against ``steps``
        :return: their observations ``o``, actions (env units) and rewards as the histories record them (copies)
        """
        slots = np.where(valid, steps % self.capacity, self.capacity)
        records = np.take(self.step_records, slots, axis=0)  # several times faster than fancy indexing on rows
        n_obs = self.history_layout.obs_dim
        return records[..., :n_obs], records[..., n_obs:-1], records[..., -1]

    def _histories(
        self, steps: np.ndarray, n_past: np.ndarray, next_obs: np.ndarray, own_step: tuple[np.ndarray, ...] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``h_t``, ``h_{t+1}`` of steps ``t`` from their ``n_past`` stored predecessors (and ``own_step``, if given, for step ``t``)."""
        offsets = np.arange(-self.history_layout.history_length, 1)  # the L past steps, then step t
        valid = -offsets <= n_past[:, None]
        obs_seq, act_seq, rew_seq = self.step_data(steps[:, None] + offsets, valid)
        own_obs, own_act, own_rew = (obs_seq[:, -1], act_seq[:, -1], rew_seq[:, -1]) if own_step is None else own_step
        return assemble_histories(
            self.history_layout, obs_seq[:, :-1], act_seq[:, :-1], rew_seq[:, :-1], valid[:, :-1], own_obs, own_act, own_rew, next_obs
        )

    def histories(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """
        :param rows: buffer indices of stored transitions (as ``sample`` draws them)
        :return: their histories ``h_t`` and ``h_{t+1}``, shape ``(len(rows), history_size)`` each
        """
        rows = np.asarray(rows, np.int64)
        n_past = np.take(self.n_past, rows)
        return self._histories(self.steps(rows), n_past, np.take(self.next_step_obs, rows, axis=0))

    def _all_rows(self, which: int) -> np.ndarray:
        """:return: ``h_t`` (``which = 0``) or ``h_{t+1}`` (1) of every row; rows not filled are 0"""
        out = np.zeros((self.buffer_size, 1, self.history_layout.size), np.float32)
        if self.size() > 0:
            out[: self.size(), 0] = self.histories(np.arange(self.size()))[which]
        return out

    # ------------------------------------------------------------------ sampling
    def sample_rows(self, batch_size: int) -> np.ndarray:
        """
        Draw row indices uniformly, with the same random draws as ``sample`` (so seeded runs do not depend on
        which of the two is called).

        :param batch_size: number of rows
        :return: buffer indices
        """
        rows = np.random.randint(0, self.buffer_size if self.full else self.pos, size=batch_size)
        np.random.randint(0, high=self.n_envs, size=(batch_size,))  # ReplayBuffer._get_samples' env index draw
        return rows

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> ReplayBufferSamples:
        np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))  # keeps ReplayBuffer's random stream
        obs, next_obs = self.histories(batch_inds)
        data = (
            self._normalize_obs(obs, env),
            np.take(self.actions[:, 0], batch_inds, axis=0),
            self._normalize_obs(next_obs, env),
            np.take(self.dones, batch_inds, axis=0) * (1 - np.take(self.timeouts, batch_inds, axis=0)),
            self._normalize_reward(np.take(self.rewards, batch_inds, axis=0), env),
        )
        return ReplayBufferSamples(*(self.to_torch(array, copy=False) for array in data))  # fresh arrays: no second copy


class ModelReplayBuffer(_RebuiltHistoriesBuffer):
    """
    ``D_model``: a bounded ``ReplayBuffer`` of branched-rollout transitions that stores, per row, the
    ``D_env`` step its rollout started from and the rollout's steps up to this one (action in env units,
    predicted reward and next observation; the last ``min(k, L + 2)`` of them, all a window can reach).
    ``h_t`` and ``h_{t+1}`` are rebuilt from them when sampled. Model transitions have no time limit, so
    there are no timeouts.

    ``D_env`` overwrites its oldest steps once full: rows whose start step it no longer holds are never
    sampled (``sample`` draws again for them); every other row is sampled uniformly, as in SB3's buffer.

    :param buffer_size: maximum number of transitions kept (the oldest are overwritten)
    :param observation_space: observation space (the flat histories)
    :param action_space: action space
    :param env_buffer: ``D_env``, the real steps the rollouts start from
    :param rollout_length: ``k``, the longest rollout stored
    :param device: PyTorch device of the sampled tensors
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        env_buffer: HistoryReplayBuffer,
        rollout_length: int = 1,
        device: th.device | str = "auto",
    ):
        if rollout_length < 1:
            raise ValueError(f"ModelReplayBuffer: rollout_length must be >= 1, got {rollout_length}")
        BaseBuffer.__init__(self, buffer_size, observation_space, action_space, device, n_envs=1)
        self.optimize_memory_usage = False
        self.handle_timeout_termination = False
        self.history_layout = env_buffer.history_layout
        self.rollout_length = rollout_length
        self.env_buffer = env_buffer
        self.env_buffer_uid = env_buffer.uid
        layout = self.history_layout
        self.kept_steps = min(rollout_length, layout.history_length + 2)  # K: the windows of h_t, h_{t+1} reach K steps back
        self.start_steps = np.zeros(buffer_size, np.int64)  # absolute D_env step of the rollout's start
        self.rollout_steps = np.zeros(buffer_size, np.int64)  # j: this row is the rollout's (j + 1)-th step
        # The rollout's steps j - K + 1 .. j (zeros before its start), one record each: [ô' | a (env units) | r̂].
        self.step_records = np.zeros((buffer_size, self.kept_steps, layout.obs_dim + layout.act_dim + 1), np.float32)
        self.actions = np.zeros((buffer_size, 1, self.action_dim), np.float32)
        self.rewards = np.zeros((buffer_size, 1), np.float32)
        self.dones = np.zeros((buffer_size, 1), np.float32)

    def __getstate__(self) -> dict[str, Any]:
        # D_env is saved on its own (M3PO.save_env_buffer): only its uid travels with D_model.
        return {key: value for key, value in self.__dict__.items() if key != "env_buffer"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.env_buffer = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ storing
    def add(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("ModelReplayBuffer stores whole rollout batches: use extend(batch, start_rows)")

    def extend(self, batch: RolloutBatch, start_rows: np.ndarray) -> None:  # type: ignore[override]
        """
        Insert the transitions of a batch of branched rollouts with at most two slice writes per array (the
        ring buffer may wrap around); the result equals inserting them one by one, in order.

        :param batch: the rollouts' transitions (:func:`~m3po_sb3.models.rollouts.branched_rollouts`)
        :param start_rows: the ``D_env`` rows of the rollouts' start histories, indexed by ``batch.origin``
        """
        n, layout = len(batch), self.history_layout
        for name in ("obs", "next_obs", "action", "reward", "done"):
            # A non-finite transition would poison the critics' targets: refuse it here, loudly.
            if not np.all(np.isfinite(getattr(batch, name))):
                raise ValueError(f"ModelReplayBuffer.extend: {name} contains non-finite values")
        if np.shape(batch.action) != (n, self.action_dim) or np.shape(batch.next_obs) != (n, layout.size):
            raise ValueError(
                f"ModelReplayBuffer.extend: actions must have shape {(n, self.action_dim)} and histories {(n, layout.size)}, "
                f"got {np.shape(batch.action)} and {np.shape(batch.next_obs)}"
            )
        if n > 0 and not 0 <= batch.origin.max() < len(start_rows):
            raise ValueError(f"ModelReplayBuffer.extend: batch.origin must index the {len(start_rows)} start rows")
        if n > 0 and not 0 <= batch.step.max() < self.rollout_length:
            raise ValueError(f"ModelReplayBuffer.extend: rollout steps must lie in [0, rollout_length={self.rollout_length}), got up to {batch.step.max()}")
        env_buffer = self._source()
        next_obs, _, past_actions, past_rewards, _ = layout.split(batch.next_obs)
        # Row of the batch holding each (rollout, step): the rollout's earlier steps of a row, by lookup.
        row_of = np.full((len(start_rows), self.rollout_length + 1), -1, np.int64)
        row_of[batch.origin, batch.step + 1] = np.arange(n)
        earlier = row_of[batch.origin[:, None], np.clip(batch.step[:, None] + 1 + np.arange(1 - self.kept_steps, 1), 0, None)]
        columns = dict(
            start_steps=env_buffer.steps(np.asarray(start_rows)[batch.origin]),
            rollout_steps=batch.step,
            step_records=np.where(
                earlier[..., None] >= 0, np.concatenate([next_obs, past_actions[:, -1], past_rewards[:, -1:]], axis=1)[earlier], np.float32(0.0)
            ),
            actions=batch.action[:, None],
            rewards=batch.reward[:, None],
            dones=batch.done[:, None],
        )
        # More rows than slots: only the last ``buffer_size`` survive, as with one insertion per row.
        skip = max(n - self.buffer_size, 0)
        start = (self.pos + skip) % self.buffer_size
        for name, column in columns.items():
            _ring_write(getattr(self, name), start, np.asarray(column)[skip:])
        self.full = self.full or self.pos + n >= self.buffer_size
        self.pos = (self.pos + n) % self.buffer_size

    # ------------------------------------------------------------------ rebuilding histories
    def _source(self) -> HistoryReplayBuffer:
        if self.env_buffer is None or self.env_buffer.uid != self.env_buffer_uid:
            raise RuntimeError(
                "ModelReplayBuffer: its rows start from the steps of the D_env it was filled with, which is not attached "
                "(load that D_env too, e.g. M3PO.load_env_buffer, or empty D_model with reset())"
            )
        return self.env_buffer

    def reset(self) -> None:
        """Empty the buffer; it then takes its rows from the attached ``D_env``."""
        super().reset()
        if self.env_buffer is not None:
            self.env_buffer_uid = self.env_buffer.uid

    def live(self, rows: np.ndarray) -> np.ndarray:
        """:return: whether ``D_env`` still holds the start step of each row (others cannot be rebuilt)"""
        env_buffer = self._source()
        start_steps = self.start_steps[rows]
        return (start_steps >= env_buffer.n_added - env_buffer.buffer_size) & (start_steps < env_buffer.n_added)

    def histories(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """
        :param rows: buffer indices of stored transitions whose start step ``D_env`` still holds (:meth:`live`)
        :return: their histories ``h_t`` and ``h_{t+1}``, shape ``(len(rows), history_size)`` each
        """
        rows = np.asarray(rows, np.int64)
        env_buffer, length, kept = self._source(), self.history_layout.history_length, self.kept_steps
        start_steps, j = np.take(self.start_steps, rows), np.take(self.rollout_steps, rows)
        records = np.take(self.step_records, rows, axis=0)
        n_obs, n_act = self.history_layout.obs_dim, self.history_layout.act_dim
        # Step i (relative to the start t) at window position q = 0..L is i = j - L + q: real for i <= 0.
        i = j[:, None] + np.arange(-length, 1)
        n_past = np.take(env_buffer.n_past, start_steps % env_buffer.buffer_size)
        # The rollout's last A stored steps give the actions and rewards of positions L + 1 - A .. L; the
        # next observations of its stored steps but the last are the observations of positions L + 2 - K .. L.
        fictitious = i >= 0
        valid = fictitious | (-i <= n_past[:, None])
        obs_seq, act_seq, rew_seq = env_buffer.step_data(start_steps[:, None] + np.minimum(i, 0), valid)
        n_own = min(kept, length + 1)
        np.copyto(act_seq[:, -n_own:], records[:, kept - n_own :, n_obs : n_obs + n_act], where=fictitious[:, -n_own:, None])
        np.copyto(rew_seq[:, -n_own:], records[:, kept - n_own :, -1], where=fictitious[:, -n_own:])
        if kept > 1:
            np.copyto(obs_seq[:, 1 - kept :], records[:, :-1, :n_obs], where=i[:, 1 - kept :, None] >= 1)
        return assemble_histories(
            self.history_layout, obs_seq[:, :-1], act_seq[:, :-1], rew_seq[:, :-1], valid[:, :-1],
            obs_seq[:, -1], act_seq[:, -1], rew_seq[:, -1], records[:, -1, :n_obs],
        )

    def _all_rows(self, which: int) -> np.ndarray:
        """:return: ``h_t`` (``which = 0``) or ``h_{t+1}`` (1) of every row; rows not filled are 0, rows no longer live NaN"""
        out = np.zeros((self.buffer_size, 1, self.history_layout.size), np.float32)
        rows = np.arange(self.size())
        live = self.live(rows)
        out[rows[~live]] = np.nan
        if live.any():
            out[rows[live], 0] = self.histories(rows[live])[which]
        return out

    # ------------------------------------------------------------------ sampling
    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ReplayBufferSamples:
        """
        :param batch_size: number of transitions, drawn uniformly among the rows whose start ``D_env`` holds
        :param env: SB3's ``VecNormalize`` to normalise the samples with, if any
        :return: the transitions
        """
        upper_bound = self.buffer_size if self.full else self.pos
        rows = np.random.randint(0, upper_bound, size=batch_size)
        stale = ~self.live(rows)
        if stale.any() and not self.live(np.arange(upper_bound)).any():
            raise RuntimeError("ModelReplayBuffer: D_env has overwritten the start steps of all rows; nothing can be sampled")
        while stale.any():  # rejection: uniform over the live rows
            rows[stale] = np.random.randint(0, upper_bound, size=int(stale.sum()))
            stale = ~self.live(rows)
        return self._get_samples(rows, env)

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> ReplayBufferSamples:
        np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))  # keeps ReplayBuffer's random stream
        obs, next_obs = self.histories(batch_inds)
        data = (
            self._normalize_obs(obs, env),
            np.take(self.actions[:, 0], batch_inds, axis=0),
            self._normalize_obs(next_obs, env),
            np.take(self.dones, batch_inds, axis=0),
            self._normalize_reward(np.take(self.rewards, batch_inds, axis=0), env),
        )
        return ReplayBufferSamples(*(self.to_torch(array, copy=False) for array in data))  # fresh arrays: no second copy


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


def assemble_histories(
    layout: HistoryLayout,
    past_obs: np.ndarray,
    past_act: np.ndarray,
    past_rew: np.ndarray,
    valid: np.ndarray,
    current_obs: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    next_obs: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """
    ``h_t`` and ``h_{t+1}`` from step ``t`` and the ``L`` steps before it, written in place into two new arrays
    (:meth:`HistoryLayout.join` would concatenate twice).

    :param layout: the history layout
    :param past_obs: observations of steps ``t - L .. t - 1`` (zeros where padding), shape ``(n, L, obs_dim)``
    :param past_act: their actions in env units (zeros where padding), shape ``(n, L, act_dim)``
    :param past_rew: their rewards (zeros where padding), shape ``(n, L)``
    :param valid: whether each past step is real (False: padding before the episode start), shape ``(n, L)``
    :param current_obs: ``o_t``, shape ``(n, obs_dim)``
    :param action: ``a_t`` in env units, shape ``(n, act_dim)``
    :param reward: ``r_t``, shape ``(n,)``
    :param next_obs: ``o_{t+1}``, shape ``(n, obs_dim)``
    :return: ``h_t``, ``h_{t+1}``, shape ``(n, history_size)`` each
    """
    n, length, n_obs, n_act = len(current_obs), layout.history_length, layout.obs_dim, layout.act_dim
    past_obs_end = n_obs + length * n_obs
    past_act_end = past_obs_end + length * n_act
    past_rew_end = past_act_end + length
    history, next_history = np.empty((2, n, layout.size), np.float32)
    history[:, :n_obs] = current_obs
    # Through views of the destination: the gathered parts are strided, reshaping them would copy them first.
    history[:, n_obs:past_obs_end].reshape(n, length, n_obs)[...] = past_obs
    history[:, past_obs_end:past_act_end].reshape(n, length, n_act)[...] = past_act
    history[:, past_act_end:past_rew_end] = past_rew
    history[:, past_rew_end:] = valid
    # h_{t+1}: the same window one step later; step t joins it as a real step.
    next_history[:, :n_obs] = next_obs
    next_history[:, n_obs : past_obs_end - n_obs] = history[:, 2 * n_obs : past_obs_end]
    next_history[:, past_obs_end - n_obs : past_obs_end] = current_obs
    next_history[:, past_obs_end : past_act_end - n_act] = history[:, past_obs_end + n_act : past_act_end]
    next_history[:, past_act_end - n_act : past_act_end] = action
    next_history[:, past_act_end : past_rew_end - 1] = history[:, past_act_end + 1 : past_rew_end]
    next_history[:, past_rew_end - 1] = reward
    next_history[:, past_rew_end:-1] = history[:, past_rew_end + 1 :]
    next_history[:, -1] = 1.0
    return history, next_history
