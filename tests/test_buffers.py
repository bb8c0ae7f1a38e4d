"""Tests of the compact buffers (D_env, D_model) against SB3's ReplayBuffer, and of M3PO-h's hybrid sampler."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer

from m3po_sb3.agents.buffers import HistoryReplayBuffer, HybridReplayBuffer, ModelReplayBuffer
from m3po_sb3.history import HistoryLayout, HistoryObservation
from m3po_sb3.agents.m3po import hybrid_beta
from m3po_sb3.models.rollouts import RolloutBatch, branched_rollouts

L = 3
SAMPLE_FIELDS = ("observations", "actions", "next_observations", "dones", "rewards")


class RandomWalk(gym.Env):
    """2-D observations, 1-D actions in [-2, 2] (so env units differ from SB3's [-1, 1]); episodes of 2 to 6 steps."""

    observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = spaces.Box(-2.0, 2.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.length = 0, int(self.np_random.integers(2, 7))
        self.obs = self.np_random.normal(size=2).astype(np.float32)
        return self.obs.copy(), {}

    def step(self, action):
        self.t += 1
        self.obs = (self.obs + np.array([action[0], 0.1], np.float32)).astype(np.float32)
        terminated = self.t == self.length and self.length % 2 == 0  # even lengths terminate, odd ones time out
        truncated = self.t == self.length and not terminated
        return self.obs.copy(), float(self.np_random.normal()), terminated, truncated, {}


def fill(buffers: list[ReplayBuffer], n_steps: int, seed: int = 0, env: HistoryObservation | None = None) -> HistoryObservation:
    """Add ``n_steps`` transitions of a HistoryObservation(RandomWalk) to every buffer the way SB3's off-policy algorithms do."""
    env = HistoryObservation(RandomWalk(), history_length=L) if env is None else env
    rng = np.random.default_rng(seed)
    obs = getattr(env, "_last", None)
    if obs is None:
        obs, _ = env.reset(seed=seed)
    for _ in range(n_steps):
        action = rng.uniform(-1, 1, size=1).astype(np.float32)  # SB3's normalised action
        next_obs, reward, terminated, truncated, _ = env.step(2.0 * action)
        infos = [{"TimeLimit.truncated": truncated and not terminated}]
        for buffer in buffers:
            buffer.add(obs[None], next_obs[None], action[None], np.array([reward]), np.array([terminated or truncated]), infos)
        obs = env.reset()[0] if terminated or truncated else next_obs
    env._last = obs  # type: ignore[attr-defined]
    return env


def env_buffers(size: int) -> tuple[HistoryReplayBuffer, ReplayBuffer, HistoryLayout]:
    layout = HistoryLayout(2, 1, L)
    space = spaces.Box(-np.inf, np.inf, (layout.size,), np.float32)
    compact = HistoryReplayBuffer(size, space, RandomWalk.action_space, layout, device="cpu")
    reference = ReplayBuffer(size, space, RandomWalk.action_space, device="cpu")
    return compact, reference, layout


def assert_same_samples(compact: ReplayBuffer, reference: ReplayBuffer, seed: int, batch_size: int = 64) -> None:
    np.random.seed(seed)
    expected = reference.sample(batch_size)
    np.random.seed(seed)
    actual = compact.sample(batch_size)
    for name in SAMPLE_FIELDS:
        assert th.equal(getattr(actual, name), getattr(expected, name)), name


@pytest.mark.parametrize("size, chunks", [(50, [10, 15]), (13, [5, 8, 17, 30])])
def test_env_buffer_samples_equal_sb3_replay_buffer_through_episode_starts_and_wrap_around(size, chunks):
    compact, reference, _ = env_buffers(size)
    env = None
    for i, n in enumerate(chunks):
        env = fill([compact, reference], n, env=env)
        assert (compact.pos, compact.full, compact.size()) == (reference.pos, reference.full, reference.size())
        np.testing.assert_array_equal(compact.observations, reference.observations)
        np.testing.assert_array_equal(compact.next_observations, reference.next_observations)
        assert_same_samples(compact, reference, seed=i)
    starts = reference.observations[: reference.size(), 0, -L:].sum(axis=1) == 0  # rows at an episode start: all padding
    assert starts.any() and (~starts).any()  # both kinds were compared
    assert reference.timeouts.any() and (reference.dones * (1 - reference.timeouts)).any()


def test_env_buffer_refuses_histories_that_do_not_continue_the_stored_steps():
    compact, _, layout = env_buffers(10)
    fill([compact], 4)
    stored = compact.observations.copy()
    history = compact.histories(np.array([1]))[1]  # a valid h_{t+1}, but of an older step: not the next h_t
    next_history = layout.shift(history, np.ones((1, 1), np.float32), np.ones(1, np.float32), np.ones((1, 2), np.float32))
    with pytest.raises(ValueError, match="not the next history"):
        compact.add(history, next_history, np.zeros((1, 1)), np.zeros(1), np.zeros(1), [{}])
    first = layout.initial(np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match="not obs shifted"):
        compact.add(first, first, np.zeros((1, 1)), np.zeros(1), np.zeros(1), [{}])
    assert compact.size() == 4 and compact.n_added == 4
    np.testing.assert_array_equal(compact.observations, stored)
    with pytest.raises(ValueError, match="n_envs"):
        HistoryReplayBuffer(10, compact.observation_space, compact.action_space, layout, n_envs=2)


class FakeModel:
    """o' = o + (a, 0.1) + row noise, r̂ = o'[0]; a few rows predict NaN (dropped)."""

    def __init__(self, layout: HistoryLayout, seed: int):
        self.history_layout = layout
        self.generator = th.Generator().manual_seed(seed)

    def sample(self, histories: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        obs = self.history_layout.split(histories)[0]
        noise = th.randn(obs.shape, generator=self.generator)
        next_obs = obs + th.cat([actions, th.full_like(actions, 0.1)], dim=1) + noise
        next_obs[noise[:, 0] > 1.5] = th.nan
        return next_obs, next_obs[:, 0].clone()


def actor(histories: th.Tensor) -> th.Tensor:
    return th.tanh(histories[:, :1] + histories.sum(dim=1, keepdim=True))


def roll_out(env_buffer: HistoryReplayBuffer, model_buffers: list[ReplayBuffer], n: int, horizon: int, seed: int) -> RolloutBatch:
    """Branched rollouts from ``n`` D_env rows into the compact D_model and, as full histories, into SB3 buffers."""
    rows = env_buffer.sample_rows(n)
    batch = branched_rollouts(
        th.as_tensor(env_buffer.histories(rows)[0]),
        actor,
        FakeModel(env_buffer.history_layout, seed),  # type: ignore[arg-type]
        RandomWalk.action_space,
        horizon,
        termination_fn=lambda next_obs: next_obs[:, 1] > 1.5,
    )
    for buffer in model_buffers:
        if isinstance(buffer, ModelReplayBuffer):
            buffer.extend(batch, rows)
        else:
            for row in range(len(batch)):
                buffer.add(batch.obs[row], batch.next_obs[row], batch.action[row], batch.reward[row], batch.done[row], [{}])
    return batch


def model_buffers(env_buffer: HistoryReplayBuffer, size: int, horizon: int) -> tuple[ModelReplayBuffer, ReplayBuffer]:
    space, action_space = env_buffer.observation_space, env_buffer.action_space
    compact = ModelReplayBuffer(size, space, action_space, env_buffer, rollout_length=horizon, device="cpu")
    return compact, ReplayBuffer(size, space, action_space, device="cpu", handle_timeout_termination=False)


@pytest.mark.parametrize("horizon", [1, 2, L + 4])  # L + 4 > L + 2: windows made of the rollout's steps alone
@pytest.mark.parametrize("size", [1000, 70])  # 70: D_model's ring wraps around, batches larger than it included
def test_model_buffer_samples_equal_sb3_replay_buffer_of_full_histories(horizon, size):
    env_buffer = env_buffers(200)[0]
    env = fill([env_buffer], 40)
    compact, reference = model_buffers(env_buffer, size, horizon)
    batches, padded = [], False
    for i, n in enumerate([20, 30, 100]):
        batches.append(roll_out(env_buffer, [compact, reference], n, horizon, seed=i))
        env = fill([env_buffer], 5, seed=i + 1, env=env)  # D_env grows between rollouts (it does not wrap here)
        assert (compact.pos, compact.full, compact.size()) == (reference.pos, reference.full, reference.size())
        np.testing.assert_array_equal(compact.observations, reference.observations)
        np.testing.assert_array_equal(compact.next_observations, reference.next_observations)
        assert_same_samples(compact, reference, seed=i)
        padded = padded or bool((reference.observations[: reference.size(), 0, -L:].sum(axis=1) < L).any())
    assert padded  # windows with padding were compared
    # Rows were dropped (non-finite) and rollouts ended (health rule) mid-way: the step bookkeeping was exercised.
    assert sum(batch.n_dropped_nonfinite for batch in batches) > 0 and any(batch.done.any() for batch in batches)
    assert max(batch.step.max() for batch in batches) == horizon - 1


def test_model_rows_whose_start_d_env_overwrote_are_never_sampled_and_the_others_stay_exact():
    env_buffer = env_buffers(30)[0]
    env = fill([env_buffer], 30)
    compact, reference = model_buffers(env_buffer, 500, horizon=2)
    roll_out(env_buffer, [compact, reference], 60, 2, seed=0)
    fill([env_buffer], 12, seed=1, env=env)  # overwrites D_env's 12 oldest steps
    rows = np.arange(compact.size())
    live = compact.live(rows)
    assert live.any() and (~live).any()
    np.testing.assert_array_equal(compact.histories(rows[live])[0], reference.observations[rows[live], 0])
    np.testing.assert_array_equal(compact.histories(rows[live])[1], reference.next_observations[rows[live], 0])
    assert np.isnan(compact.observations[rows[~live]]).all()
    samples = compact.sample(2000).observations.numpy()
    matches = (samples[:, None, :] == reference.observations[rows, 0][None]).all(axis=-1)
    assert matches[:, live].any(axis=1).all() and not matches[:, ~live].any()
    fill([env_buffer], 60, seed=2, env=env)  # every start step is overwritten now
    with pytest.raises(RuntimeError, match="overwritten the start steps of all rows"):
        compact.sample(4)


def test_buffers_pickle_and_d_model_reads_only_the_d_env_it_was_filled_from():
    env_buffer = env_buffers(100)[0]
    fill([env_buffer], 30)
    compact, reference = model_buffers(env_buffer, 100, horizon=1)
    roll_out(env_buffer, [compact, reference], 20, 1, seed=0)
    loaded_env, loaded_model = pickle.loads(pickle.dumps(env_buffer)), pickle.loads(pickle.dumps(compact))
    with pytest.raises(RuntimeError, match="not attached"):
        loaded_model.sample(4)
    loaded_model.env_buffer = env_buffers(100)[0]  # another D_env
    with pytest.raises(RuntimeError, match="not attached"):
        loaded_model.sample(4)
    loaded_model.env_buffer = loaded_env
    assert_same_samples(loaded_model, reference, seed=0)
    np.testing.assert_array_equal(loaded_env.observations, env_buffer.observations)


def test_model_buffer_refuses_non_finite_transitions():
    env_buffer = env_buffers(100)[0]
    fill([env_buffer], 10)
    compact, _ = model_buffers(env_buffer, 100, horizon=1)
    rows = env_buffer.sample_rows(5)
    batch = branched_rollouts(th.as_tensor(env_buffer.histories(rows)[0]), actor, FakeModel(env_buffer.history_layout, 0), RandomWalk.action_space, 1)  # type: ignore[arg-type]
    batch.reward[0] = np.nan
    with pytest.raises(ValueError, match="reward contains non-finite"):
        compact.extend(batch, rows)
    assert compact.size() == 0


@pytest.mark.parametrize("beta", [0.0, 0.3, 0.5, 1.0])
def test_hybrid_sampler_draws_round_beta_batch_from_d_model(beta):
    env_buffer = env_buffers(100)[0]
    fill([env_buffer], 30)
    model_buffer, _ = model_buffers(env_buffer, 100, horizon=1)
    roll_out(env_buffer, [model_buffer], 20, 1, seed=0)
    model_buffer.rewards[:] = 1000.0  # model rows stand out by their reward
    batch_size = 101
    samples = HybridReplayBuffer(model_buffer, env_buffer, beta).sample(batch_size)
    assert samples.observations.shape == (batch_size, env_buffer.history_layout.size)
    assert samples.rewards.shape == (batch_size, 1)
    assert int((samples.rewards == 1000.0).sum()) == round(beta * batch_size)


def test_hybrid_sampler_rejects_beta_outside_unit_interval():
    buffer = env_buffers(10)[0]
    with pytest.raises(ValueError, match="beta"):
        HybridReplayBuffer(buffer, buffer, 1.5)


@pytest.mark.parametrize(
    "epoch, expected",
    [(0, 1.0), (80, 1.0), (90, 0.8), (105, 0.5), (130, 0.0), (131, 0.0), (500, 0.0)],
)
def test_beta_schedule_is_clipped_linear_from_a_to_b(epoch, expected):
    assert hybrid_beta(epoch, 80, 130) == pytest.approx(expected)


def test_sac_learns_exactly_the_same_with_history_replay_buffer_as_with_sb3s():
    def trained(buffer_class: type[ReplayBuffer] | None) -> SAC:
        env = HistoryObservation(gym.make("Pendulum-v1", max_episode_steps=15), history_length=L)
        kwargs = {} if buffer_class is None else dict(replay_buffer_class=buffer_class, replay_buffer_kwargs=dict(history_layout=env.history_layout))
        agent = SAC("MlpPolicy", env, buffer_size=30, learning_starts=20, batch_size=8, policy_kwargs=dict(net_arch=[8]), seed=3, device="cpu", **kwargs)
        return agent.learn(45)  # episode ends and ring wrap-around included

    reference, compact = trained(None), trained(HistoryReplayBuffer)
    assert isinstance(compact.replay_buffer, HistoryReplayBuffer) and compact.replay_buffer.full
    for expected, actual in zip(reference.policy.state_dict().values(), compact.policy.state_dict().values()):
        assert th.equal(expected, actual)


def test_model_buffer_of_another_d_env_refuses_new_rows_until_reset():
    env_buffer, other = env_buffers(100)[0], env_buffers(100)[0]
    for buffer in (env_buffer, other):
        fill([buffer], 20)
    compact, _ = model_buffers(env_buffer, 100, horizon=1)
    roll_out(env_buffer, [compact], 10, 1, seed=0)
    n_rows = compact.size()
    compact.env_buffer = other  # e.g. a D_model loaded without its D_env
    with pytest.raises(RuntimeError, match="not attached"):
        roll_out(other, [compact], 10, 1, seed=1)
    assert compact.size() == n_rows
    compact.reset()
    batch = roll_out(other, [compact], 10, 1, seed=1)
    assert compact.size() == len(batch) > 0 and compact.live(np.arange(len(batch))).all()
