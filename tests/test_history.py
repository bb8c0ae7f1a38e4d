"""Tests of the history layout, the history observation wrapper and the GRU features extractor."""

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.env_checker import check_env

from m3po_sb3.history import HistoryFeaturesExtractor, HistoryLayout, HistoryObservation, history_policy_kwargs


class CounterEnv(gym.Env):
    """Observations ``[t, 100 * episode + t]``, so values never repeat across episodes; ends after 5 steps."""

    observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, nan_at_step: int = -1):
        self.nan_at_step = nan_at_step
        self.episode = 0
        self.t = 0

    def _get_obs(self) -> np.ndarray:
        obs = np.array([self.t, 100 * self.episode + self.t], dtype=np.float32)
        return obs * np.nan if self.t == self.nan_at_step else obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        return self._get_obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        return self._get_obs(), float(self.t), self.t >= 5, False, {"t": self.t}


def hand_built_history(
    layout: HistoryLayout, observations: list[np.ndarray], actions: list[np.ndarray], rewards: list[float]
) -> np.ndarray:
    """History at step ``t = len(actions)`` of an episode, built from its definition."""
    length, t = layout.history_length, len(actions)
    past_obs = np.zeros((length, layout.obs_dim), np.float32)
    past_act = np.zeros((length, layout.act_dim), np.float32)
    past_rew = np.zeros(length, np.float32)
    mask = np.zeros(length, np.float32)
    for slot in range(length):
        k = t - length + slot  # slot 0 is the oldest
        if k >= 0:
            past_obs[slot], past_act[slot], past_rew[slot], mask[slot] = observations[k], actions[k], rewards[k], 1.0
    return np.concatenate([observations[t], past_obs.ravel(), past_act.ravel(), past_rew, mask])


@pytest.mark.parametrize("make_env", [lambda: gym.make("Pendulum-v1"), CounterEnv], ids=["pendulum", "counter"])
def test_wrapper_matches_hand_built_histories_across_episodes(make_env):
    env = HistoryObservation(make_env(), history_length=3)
    layout = env.history_layout
    env.action_space.seed(0)
    for episode in range(2):
        history, _ = env.reset(seed=episode)
        observations, actions, rewards = [env.unwrapped._get_obs()], [], []
        # A fresh episode: nothing from the previous one survives.
        np.testing.assert_array_equal(history, hand_built_history(layout, observations, actions, rewards))
        assert not history[layout.obs_dim :].any()
        for _ in range(5):
            action = env.action_space.sample()
            history, reward, terminated, truncated, info = env.step(action)
            observations.append(env.unwrapped._get_obs())
            actions.append(action)
            rewards.append(reward)
            np.testing.assert_allclose(history, hand_built_history(layout, observations, actions, rewards), rtol=0, atol=0)
        assert history.dtype == np.float32 and history.shape == env.observation_space.shape


def test_wrapper_passes_reward_and_flags_unchanged():
    env = HistoryObservation(CounterEnv(), history_length=2)
    env.reset()
    results = [env.step(np.zeros(1, np.float32))[1:] for _ in range(5)]
    assert results[-1] == (5.0, True, False, {"t": 5})
    assert [reward for reward, *_ in results] == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_split_join_roundtrip_and_views():
    layout = HistoryLayout(obs_dim=3, act_dim=2, history_length=4)
    flat = np.random.default_rng(0).standard_normal((5, 7, layout.size)).astype(np.float32)
    parts = layout.split(flat)
    assert [p.shape for p in parts] == [(5, 7, 3), (5, 7, 4, 3), (5, 7, 4, 2), (5, 7, 4), (5, 7, 4)]
    assert all(np.shares_memory(p, flat) for p in parts)
    np.testing.assert_array_equal(layout.join(*parts), flat)
    tensor_parts = layout.split(th.as_tensor(flat))
    th.testing.assert_close(layout.join(*tensor_parts), th.as_tensor(flat))


def test_batched_shift_torch_equals_numpy_and_per_row():
    layout = HistoryLayout(obs_dim=2, act_dim=1, history_length=3)
    rng = np.random.default_rng(1)
    histories = rng.standard_normal((6, layout.size)).astype(np.float32)
    actions, next_obs = rng.standard_normal((6, 1)).astype(np.float32), rng.standard_normal((6, 2)).astype(np.float32)
    rewards = rng.standard_normal(6).astype(np.float32)
    shifted = layout.shift(histories, actions, rewards, next_obs)
    shifted_torch = layout.shift(*map(th.as_tensor, (histories, actions, rewards, next_obs)))
    np.testing.assert_array_equal(shifted_torch.numpy(), shifted)
    for row in range(6):
        np.testing.assert_array_equal(layout.shift(histories[row], actions[row], rewards[row], next_obs[row]), shifted[row])
    current, past_obs, past_act, past_rew, mask = layout.split(shifted)
    old_past_obs, old_past_rew = layout.split(histories)[1], layout.split(histories)[3]
    np.testing.assert_array_equal(past_obs[:, :-1], old_past_obs[:, 1:])  # the oldest step dropped
    np.testing.assert_array_equal(past_rew[:, :-1], old_past_rew[:, 1:])
    np.testing.assert_array_equal(past_obs[:, -1], layout.split(histories)[0])
    np.testing.assert_array_equal(past_act[:, -1], actions)
    np.testing.assert_array_equal(past_rew[:, -1], rewards)
    np.testing.assert_array_equal(mask[:, -1], 1.0)
    np.testing.assert_array_equal(current, next_obs)


def test_extractor_ignores_padded_slots():
    layout = HistoryLayout(obs_dim=3, act_dim=2, history_length=5)
    th.manual_seed(0)
    extractor = HistoryFeaturesExtractor(spaces.Box(-np.inf, np.inf, (layout.size,)), layout, gru_units=4)
    assert extractor.features_dim == 3 + 4
    current, past_obs, past_act, past_rew, _ = layout.split(th.randn(8, layout.size))
    mask = (th.arange(5) >= th.arange(8).unsqueeze(1) % 6).float()  # 0 to 5 padded (oldest) slots per row
    padded = (1 - mask).unsqueeze(-1)
    clean = layout.join(current, past_obs * mask.unsqueeze(-1), past_act * mask.unsqueeze(-1), past_rew * mask, mask)
    noisy = layout.join(current, past_obs + 1e3 * padded, past_act - 1e3 * padded, past_rew + 1e3 * padded[..., 0], mask)
    features = extractor(clean)
    th.testing.assert_close(extractor(noisy), features)
    th.testing.assert_close(features[:, :3], current)
    # Real entries do matter, the rewards included (rows 0-6 have at least one real step).
    assert not th.allclose(extractor(layout.join(current, past_obs + 1.0, past_act, past_rew, mask))[:7], features[:7])
    assert not th.allclose(extractor(layout.join(current, past_obs, past_act, past_rew + 1.0, mask))[:7], features[:7])


@pytest.mark.parametrize("algorithm", [SAC, PPO])
def test_sb3_algorithms_learn_on_histories(algorithm):
    env = HistoryObservation(gym.make("Pendulum-v1"), history_length=4)
    kwargs = dict(learning_starts=150, batch_size=32) if algorithm is SAC else dict(n_steps=100, batch_size=50, n_epochs=1)
    model = algorithm("MlpPolicy", env, policy_kwargs=history_policy_kwargs(env.history_layout, net_arch=(32, 32)), seed=0, **kwargs)
    model.learn(200)
    assert model.get_env().get_attr("history_layout") == [env.history_layout]
    assert isinstance(model.policy.features_extractor if algorithm is PPO else model.actor.features_extractor, HistoryFeaturesExtractor)


def test_check_env_passes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pendulum's non-normalised action range only warns
        check_env(HistoryObservation(gym.make("Pendulum-v1")))
        check_env(HistoryObservation(CounterEnv()))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="Box action"):
        HistoryObservation(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="history_length"):
        HistoryLayout(3, 1, 0)
    env = HistoryObservation(CounterEnv())
    env.reset()
    with pytest.raises(ValueError, match="action must have shape"):
        env.step(np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="non-finite action"):
        env.step(np.array([np.nan], np.float32))
    nan_env = HistoryObservation(CounterEnv(nan_at_step=2))
    nan_env.reset()
    nan_env.step(np.zeros(1, np.float32))
    with pytest.raises(ValueError, match="non-finite observation"):
        nan_env.step(np.zeros(1, np.float32))
    layout = env.history_layout
    with pytest.raises(ValueError, match="history must have last dimension"):
        layout.split(np.zeros(layout.size + 1))
    with pytest.raises(ValueError, match="action must have last dimension"):
        layout.shift(np.zeros(layout.size), np.zeros(3), np.zeros(()), np.zeros(2))
    with pytest.raises(ValueError, match="reward must have shape"):
        layout.shift(np.zeros((2, layout.size)), np.zeros((2, 1)), np.zeros(3), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="does not match the history layout"):
        HistoryFeaturesExtractor(spaces.Box(-1, 1, (4,)), layout)
