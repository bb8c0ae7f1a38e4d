"""Inferring a reward-defined task from histories on HalfCheetahFwdBwd-v0."""

import gymnasium as gym
import numpy as np

import meta_mujoco_envs  # noqa: F401  (registers the envs)
from benchmarks.audit_agent import flip_direction
from benchmarks.bench_task_inference import STEP_BINS, evaluate_seed, find_gaits
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


def test_the_audit_flips_a_history_to_the_other_direction():
    # audit_agent --task-inference asks the meta-model about the history of the other direction: every past
    # reward must be the one the env pays for the same step under the opposite task.
    env = HistoryObservation(gym.make("HalfCheetahFwdBwd-v0"), history_length=4)
    layout, action_reward_fn = env.history_layout, env.unwrapped.action_reward_fn
    env.action_space.seed(1)
    env.reset(seed=1)
    histories, other_direction = [], []
    for _ in range(6):
        history, _, _, _, info = env.step(env.action_space.sample())
        histories.append(history)
        other_direction.append(-info["reward_forward"] + info["reward_ctrl"])
    flipped = flip_direction(layout, np.array(histories), action_reward_fn)
    for step, (history, flipped_history) in enumerate(zip(histories, flipped)):
        original_parts, flipped_parts = layout.split(history), layout.split(flipped_history)
        real = min(step + 1, layout.history_length)
        np.testing.assert_allclose(flipped_parts[3][-real:], other_direction[step + 1 - real : step + 1], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(flipped_parts[3][:-real], 0.0)  # padding stays padding
        for part in (0, 1, 2, 4):  # observations, actions and mask unchanged
            np.testing.assert_array_equal(flipped_parts[part], original_parts[part])
    np.testing.assert_allclose(flip_direction(layout, flipped, action_reward_fn), histories, rtol=1e-5, atol=1e-5)


def test_meta_model_predicts_the_reward_like_the_oracle_a_few_steps_after_a_direction_change():
    # The benchmark's comparison (benchmarks/bench_task_inference.py) on a smaller setting: frame skip 1
    # (dt = 0.01 s, a 0.4 s task period of 40 steps), 3 000 transitions, networks of 64 units, 40 one-pass epochs.
    gaits = find_gaits(np.random.default_rng(0), candidates=20, refinements=20)
    results = evaluate_seed(
        gaits,
        seed=0,
        train_episodes=6,
        test_episodes=2,
        model_kwargs=dict(hidden_units=64),
        fit_kwargs=dict(max_epochs=40, batch_size=32, epoch_rows=None),
        collect_kwargs=dict(episode_steps=500, frame_skip=1, task_switch_seconds=0.4),
    )
    mae = {name: values[0] for name, values in results.items()}
    print({name: dict(zip(STEP_BINS, errors.round(3))) for name, errors in mae.items()})
    # Reward MAE 3 or more steps after a direction change (mean of the bins 3, 5, 10, 20+), and right at it.
    later = {name: errors[STEP_BINS.index(3) :].mean() for name, errors in mae.items()}
    oracle, blind = later["oracle"], later["oracle, direction averaged"]
    # Thresholds are fractions of the gap between knowing the direction (oracle) and not (blind). Measured on
    # seed 0 of this setting with the models trained by beta-NLL (each term weighted by the detached
    # variance ** beta, Seitzer et al. 2022; now the models' default, beta = 0.5), the one variant measured
    # that learns the reward: 3+ steps after a
    # change the meta-model closed 77 % (beta = 0.5) and 94 % (beta = 1) of the gap, the non-adaptive model
    # none (0 %, -5 %); at the change the meta-model erred above the blind level (it predicts the old
    # direction). Required: the meta-model closes at least 65 %, the non-adaptive model at most 35 %, and the
    # meta-model at most half of the gap at the change. Only seed 0 was measured: an even smaller setting
    # (4 episodes, 30 epochs), seeds 0-2, was too noisy to use. With the NLL itself the oracle closes none.
    assert oracle < 0.5 * blind, "the oracle does not learn the direction's effect on the reward"
    assert later["meta"] < oracle + 0.35 * (blind - oracle), "the meta-model does not infer the direction"
    assert later["non-adaptive"] > oracle + 0.65 * (blind - oracle), "the non-adaptive model knows the direction"
    # Right at the change the history holds only the old direction's rewards: the meta-model cannot know yet.
    assert mae["meta"][0] > mae["oracle"][0] + 0.5 * (mae["oracle, direction averaged"][0] - mae["oracle"][0])
