"""Tests of the batched branched rollouts: counts, start histories, termination, non-finite predictions."""

import numpy as np
import pytest
import torch as th
from gymnasium import spaces

from m3po_sb3.history import HistoryLayout
from m3po_sb3.models.rollouts import branched_rollouts

LAYOUT = HistoryLayout(obs_dim=2, act_dim=1, history_length=3)
ACTION_SPACE = spaces.Box(-2.0, 2.0, (1,), np.float32)


class FakeModel:
    """o' = o + (a, 0) (a in env units), r = o'[0]; rows with o[1] > nan_above predict NaN. Counts its calls."""

    history_layout = LAYOUT

    def __init__(self, nan_above: float = np.inf):
        self.nan_above = nan_above
        self.batch_sizes: list[int] = []

    def sample(self, histories: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        self.batch_sizes.append(len(histories))
        obs = LAYOUT.split(histories)[0]
        next_obs = obs + th.cat([actions, th.zeros_like(actions)], dim=1)
        next_obs[obs[:, 1] > self.nan_above] = th.nan
        return next_obs, next_obs[:, 0].clone()


def actor(histories: th.Tensor) -> th.Tensor:
    """Normalised action 0.5 for every row (1.0 in the env's units of ACTION_SPACE)."""
    return th.full((len(histories), 1), 0.5)


def start_histories(n: int) -> th.Tensor:
    """Real-looking histories whose current observation is (0, i) for row i."""
    obs = th.stack([th.zeros(n), th.arange(n, dtype=th.float32)], dim=1)
    return LAYOUT.initial(obs)


def test_each_horizon_step_is_one_batched_call_and_histories_are_shifted():
    model = FakeModel()
    starts = start_histories(6)
    batch = branched_rollouts(starts, actor, model, ACTION_SPACE, horizon=3)
    assert model.batch_sizes == [6, 6, 6]
    assert len(batch) == 18 and batch.n_dropped_nonfinite == 0 and batch.terminated_fraction == 0.0
    np.testing.assert_array_equal(batch.obs[:6], starts.numpy())
    np.testing.assert_allclose(batch.action, 0.5)  # stored normalised, as SB3's buffers hold actions
    expected_next_obs = LAYOUT.split(batch.obs)[0] + [1.0, 0.0]
    expected_next = LAYOUT.shift(batch.obs, np.ones((18, 1), np.float32), expected_next_obs[:, 0], expected_next_obs)
    np.testing.assert_allclose(batch.next_obs, expected_next)
    np.testing.assert_array_equal(batch.obs[6:12], batch.next_obs[:6])  # step 2 continues from step 1
    np.testing.assert_allclose(batch.reward, LAYOUT.split(batch.next_obs)[0][:, 0])
    np.testing.assert_array_equal(LAYOUT.split(batch.next_obs)[3][:, -1], batch.reward)  # the predicted reward extends the history


def test_terminated_rows_are_stored_once_and_stop_branching():
    model = FakeModel()
    calls = []

    def termination_fn(next_obs: np.ndarray) -> np.ndarray:
        calls.append(next_obs.copy())
        return next_obs[:, 1] >= 4  # rows 4..7 of the 8 end at their first step

    batch = branched_rollouts(start_histories(8), actor, model, ACTION_SPACE, horizon=2, termination_fn=termination_fn)
    assert model.batch_sizes == [8, 4]
    assert len(batch) == 12
    np.testing.assert_array_equal(batch.done, [0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0])
    assert batch.terminated_fraction == pytest.approx(4 / 12)
    np.testing.assert_array_equal(calls[0], LAYOUT.split(batch.next_obs[:8])[0])


def test_non_finite_predictions_are_dropped_counted_and_not_continued():
    model = FakeModel(nan_above=5.5)  # rows 6..9 of 10 predict NaN
    starts = start_histories(10)
    batch = branched_rollouts(starts, actor, model, ACTION_SPACE, horizon=2)
    assert batch.n_dropped_nonfinite == 4
    assert model.batch_sizes == [10, 6]
    assert len(batch) == 12
    # Each stored row knows its start history and step, dropped rows left out.
    np.testing.assert_array_equal(batch.origin, [0, 1, 2, 3, 4, 5] * 2)
    np.testing.assert_array_equal(batch.step, [0] * 6 + [1] * 6)
    np.testing.assert_array_equal(batch.obs[:6], starts[batch.origin[:6]].numpy())
    np.testing.assert_array_equal(batch.obs[6:], batch.next_obs[:6])
    for array in (batch.obs, batch.next_obs, batch.action, batch.reward, batch.done):
        assert np.all(np.isfinite(array))


def test_all_rows_terminated_ends_the_rollout_early():
    model = FakeModel()
    batch = branched_rollouts(
        start_histories(3), actor, model, ACTION_SPACE, horizon=5, termination_fn=lambda o: np.ones(len(o), bool)
    )
    assert model.batch_sizes == [3] and len(batch) == 3 and batch.terminated_fraction == 1.0


def test_bad_horizon_and_bad_termination_output_are_rejected():
    with pytest.raises(ValueError, match="horizon"):
        branched_rollouts(start_histories(2), actor, FakeModel(), ACTION_SPACE, horizon=0)
    with pytest.raises(ValueError, match="one flag per row"):
        branched_rollouts(start_histories(2), actor, FakeModel(), ACTION_SPACE, horizon=1, termination_fn=lambda o: np.zeros(1, bool))


def test_known_action_reward_is_added_to_the_model_reward_and_enters_the_histories():
    seen = []

    def action_reward_fn(actions: np.ndarray) -> np.ndarray:
        seen.append(actions.copy())
        return -0.1 * (actions**2).sum(axis=1)

    plain = branched_rollouts(start_histories(4), actor, FakeModel(), ACTION_SPACE, horizon=2)
    known = branched_rollouts(start_histories(4), actor, FakeModel(), ACTION_SPACE, horizon=2, action_reward_fn=action_reward_fn)
    np.testing.assert_allclose(seen[0], 1.0)  # the env's units (normalised 0.5 on [-2, 2])
    np.testing.assert_allclose(known.reward, plain.reward - 0.1)
    np.testing.assert_allclose(LAYOUT.split(known.next_obs)[3][:, -1], known.reward)  # fictitious histories carry r̂ + known
    np.testing.assert_allclose(LAYOUT.split(known.next_obs)[0], LAYOUT.split(plain.next_obs)[0])
    with pytest.raises(ValueError, match="one finite reward per row"):
        branched_rollouts(start_histories(2), actor, FakeModel(), ACTION_SPACE, horizon=1, action_reward_fn=lambda a: np.full(len(a), np.nan))
    with pytest.raises(ValueError, match="one finite reward per row"):
        branched_rollouts(start_histories(2), actor, FakeModel(), ACTION_SPACE, horizon=1, action_reward_fn=lambda a: np.zeros(1))
