"""Tests of D_model's bulk insertion and M3PO-h's hybrid sampler and β schedule."""

import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer

from m3po_sb3.buffers import HybridReplayBuffer, ModelReplayBuffer
from m3po_sb3.m3po import hybrid_beta

OBS_SPACE = spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT_SPACE = spaces.Box(-1.0, 1.0, (2,), np.float32)


def transitions(n: int, offset: float = 0.0, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return dict(
        obs=rng.normal(size=(n, 3)).astype(np.float32) + offset,
        next_obs=rng.normal(size=(n, 3)).astype(np.float32),
        action=rng.uniform(-1, 1, size=(n, 2)).astype(np.float32),
        reward=np.full(n, offset, np.float32),
        done=(rng.uniform(size=n) < 0.3).astype(np.float32),
    )


@pytest.mark.parametrize("chunks", [[3, 4], [7, 5, 9], [25], [4, 30, 2], [0, 10, 10]])
def test_bulk_insert_with_wrap_around_equals_per_transition_add(chunks):
    size = 10
    bulk = ModelReplayBuffer(size, OBS_SPACE, ACT_SPACE, device="cpu")
    reference = ReplayBuffer(size, OBS_SPACE, ACT_SPACE, device="cpu", handle_timeout_termination=False)
    for i, n in enumerate(chunks):
        data = transitions(n, seed=i)
        bulk.extend(**data)
        for row in range(n):
            reference.add(*(data[key][row : row + 1] for key in ("obs", "next_obs", "action", "reward", "done")), [{}])
        assert (bulk.pos, bulk.full, bulk.size()) == (reference.pos, reference.full, reference.size())
        for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
            np.testing.assert_array_equal(getattr(bulk, name), getattr(reference, name), err_msg=name)


def test_bulk_insert_refuses_non_finite_values_and_wrong_shapes():
    buffer = ModelReplayBuffer(10, OBS_SPACE, ACT_SPACE, device="cpu")
    data = transitions(4)
    data["reward"][2] = np.nan
    with pytest.raises(ValueError, match="reward contains non-finite"):
        buffer.extend(**data)
    data = transitions(4)
    data["action"] = data["action"][:, :1]
    with pytest.raises(ValueError, match="action must have shape"):
        buffer.extend(**data)
    assert buffer.size() == 0


@pytest.mark.parametrize("beta", [0.0, 0.3, 0.5, 1.0])
def test_hybrid_sampler_draws_round_beta_batch_from_d_model(beta):
    model_buffer = ModelReplayBuffer(50, OBS_SPACE, ACT_SPACE, device="cpu")
    env_buffer = ReplayBuffer(50, OBS_SPACE, ACT_SPACE, device="cpu")
    model_buffer.extend(**transitions(20, offset=1.0))  # model rows have reward 1, real rows reward 0
    data = transitions(20, offset=0.0, seed=1)
    for row in range(20):
        env_buffer.add(*(data[key][row : row + 1] for key in ("obs", "next_obs", "action", "reward", "done")), [{}])
    batch_size = 101
    samples = HybridReplayBuffer(model_buffer, env_buffer, beta).sample(batch_size)
    assert samples.observations.shape == (batch_size, 3)
    assert samples.rewards.shape == (batch_size, 1)
    assert int(samples.rewards.sum()) == round(beta * batch_size)


def test_hybrid_sampler_rejects_beta_outside_unit_interval():
    buffer = ModelReplayBuffer(10, OBS_SPACE, ACT_SPACE, device="cpu")
    with pytest.raises(ValueError, match="beta"):
        HybridReplayBuffer(buffer, buffer, 1.5)


@pytest.mark.parametrize(
    "epoch, expected",
    [(0, 1.0), (80, 1.0), (90, 0.8), (105, 0.5), (130, 0.0), (131, 0.0), (500, 0.0)],
)
def test_beta_schedule_is_clipped_linear_from_a_to_b(epoch, expected):
    assert hybrid_beta(epoch, 80, 130) == pytest.approx(expected)
