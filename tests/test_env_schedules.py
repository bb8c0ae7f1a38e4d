"""meta_mujoco_envs.task_schedule: periodic, memoryless and user-drawn switches, seeded, with an opt-in notification."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from meta_mujoco_envs import ENV_IDS, CallableSchedule, MemorylessSchedule, PeriodicSchedule

HEALTH_ENVS = {"AntFwdBwd-v0", "AntCrippledLeg-v0", "Walker2dRandomParams-v0", "HumanoidDirec-v0"}


def periods(schedule, n_steps: int, seed: int = 0) -> np.ndarray:
    """Lengths in steps of the task periods a schedule opens over ``n_steps`` steps (the last, unfinished, dropped)."""
    rng = np.random.default_rng(seed)
    schedule.reset(rng)
    switches = [t for t in range(n_steps) if schedule.step(rng)]
    return np.diff(np.r_[0, switches])


def test_memoryless_waiting_times_are_geometric_in_steps_with_the_exponential_rate():
    dt, mean_seconds = 0.05, 0.5
    lengths = periods(MemorylessSchedule(mean_seconds, dt), 40_000)
    p = -math.expm1(-dt / mean_seconds)  # P(switch within a step) at rate 1 / mean_seconds
    assert lengths.min() >= 1
    assert lengths.mean() == pytest.approx(1 / p, rel=0.05)
    for k in (5, 10, 20):  # survival (1 - p)^k: the same whatever time has already passed (memoryless)
        assert np.mean(lengths > k) == pytest.approx((1 - p) ** k, abs=0.03)
    later = lengths[lengths > 10] - 10
    assert np.mean(later > 10) == pytest.approx(np.mean(lengths > 10), abs=0.04)


def test_periodic_schedule_keeps_its_exact_period():
    np.testing.assert_array_equal(periods(PeriodicSchedule(1.0, 0.05), 200), [20] * 9)


def test_callable_schedule_draws_the_users_waiting_times_with_the_envs_generator():
    schedule = CallableSchedule(lambda rng: rng.choice([0.5, 1.0]), dt=0.05)
    lengths = periods(schedule, 2000)
    assert set(lengths) == {10, 20}
    np.testing.assert_array_equal(lengths, periods(schedule, 2000))
    assert not np.array_equal(lengths, periods(schedule, 2000, seed=1))
    never = CallableSchedule(lambda rng: math.inf, dt=0.05)
    assert len(periods(never, 500)) == 0


def test_new_options_pass_the_env_checkers():
    env = gym.make(
        "AntCrippledLeg-v0", task_schedule="memoryless", task_switch_seconds=1.0, task_in_obs=True, task_switch_in_obs=True
    ).unwrapped
    check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), "1", True, None])
def test_callable_schedule_rejects_bad_waiting_times(bad):
    env = gym.make("HalfCheetahFwdBwd-v0", task_schedule=lambda rng: bad)
    with pytest.raises(ValueError, match="must return positive seconds"):
        env.reset(seed=0)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"task_schedule": "poisson"}, TypeError, "'periodic', 'memoryless' or a callable"),
        ({"task_schedule": "memoryless", "task_switch_seconds": None}, ValueError, "needs task_switch_seconds"),
        ({"task_schedule": "memoryless", "task_switch_jitter": 0.1}, ValueError, "periodic schedule only"),
        ({"task_schedule": "memoryless", "task_switch_seconds": 0.01}, ValueError, "shorter than one env step"),
        ({"task_switch_in_obs": 1}, TypeError, "task_switch_in_obs"),
    ],
)
def test_bad_schedule_arguments_raise(kwargs, error, message):
    with pytest.raises(error, match=message):
        gym.make("HalfCheetahFwdBwd-v0", **kwargs)


def switch_steps(env_id: str, seed: int, **kwargs) -> list[int]:
    health = {"terminate_when_unhealthy": False} if env_id in HEALTH_ENVS else {}
    env = gym.make(env_id, max_episode_steps=10_000, **health, **kwargs)
    obs, _ = env.reset(seed=seed)
    assert obs.shape == env.observation_space.shape
    steps = []
    for t in range(120):
        obs, _, _, _, info = env.step(np.zeros(env.action_space.shape))
        if kwargs.get("task_switch_in_obs"):
            assert obs[-1] == float(info["task_switched"])  # the notification is the last entry
        if info["task_switched"]:
            steps.append(t)
    return steps


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_memoryless_schedule_on_every_env_is_seeded_and_notified(env_id):
    seconds = 10 * gym.make(env_id).unwrapped.dt  # a mean of 10 steps
    kwargs = {"task_schedule": "memoryless", "task_switch_seconds": seconds, "task_switch_in_obs": True}
    first = switch_steps(env_id, 0, **kwargs)
    assert len(first) >= 3 and len(set(np.diff(first))) > 1  # irregular periods
    assert switch_steps(env_id, 0, **kwargs) == first
    assert switch_steps(env_id, 1, **kwargs) != first


def test_switch_notification_comes_after_the_task_features():
    env = gym.make("HalfCheetahFwdBwd-v0", task_switch_seconds=0.5, task_in_obs=True, task_switch_in_obs=True)
    assert env.observation_space.shape == (17 + 1 + 1,)
    assert (env.observation_space.low[-1], env.observation_space.high[-1]) == (0.0, 1.0)
    obs, info = env.reset(seed=0)
    assert obs[-1] == 0.0 and obs[-2] == info["task"]["direction"]
    for t in range(25):
        obs, _, _, _, info = env.step(np.zeros(6))
        assert obs[-1] == (1.0 if t in (10, 20) else 0.0)
        assert obs[-2] == info["task"]["direction"]
