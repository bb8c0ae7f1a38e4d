"""Inferring a reward-defined task from histories on HalfCheetahFwdBwd-v0 (issue 9, part 1)."""

import gymnasium as gym
import numpy as np

import meta_mujoco_envs  # noqa: F401  (registers the envs)
from m3po_sb3.history import HistoryObservation


def test_histories_carry_the_rewards_that_reveal_the_direction():
    # A 0.25 s task period (5 steps) puts several switches within the history's reach.
    env = HistoryObservation(gym.make("HalfCheetahFwdBwd-v0", task_switch_seconds=0.25), history_length=10)
    layout = env.history_layout
    env.action_space.seed(0)
    env.reset(seed=0)
    rewards, directions = [], []
    for _ in range(40):
        history, reward, _, _, info = env.step(env.action_space.sample())
        # The direction signs the forward term only: (r - ctrl term) / x_velocity is the direction of the step.
        rewards.append(reward)
        directions.append((reward - info["reward_ctrl"]) / info["x_velocity"])
        _, _, _, past_rew, mask = layout.split(history)
        real = int(mask.sum())
        assert real == min(len(rewards), layout.history_length)
        np.testing.assert_array_equal(past_rew[layout.history_length - real :], np.float32(rewards[-real:]))
        np.testing.assert_array_equal(past_rew[: layout.history_length - real], 0.0)
        np.testing.assert_allclose(directions[-1], info["task"]["direction"], rtol=1e-6)
    # The 40 steps crossed direction changes, so some of the checked histories held rewards of both directions.
    assert np.count_nonzero(np.diff(np.round(directions))) >= 1
