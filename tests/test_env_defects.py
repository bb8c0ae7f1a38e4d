"""meta_mujoco_envs: the defects an outside audit found, each pinned by a test that failed before its fix."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import load_env_creator

import meta_mujoco_envs  # noqa: F401


def make(env_id: str, **kwargs):
    return gym.make(env_id, **kwargs).unwrapped


# ---------------------------------------------------------------------------------------------- health rule
def test_crippled_ant_termination_fn_without_health_termination_never_terminates():
    env = make("AntCrippledLeg-v0", terminate_when_unhealthy=False)
    obs = np.zeros((3, env.observation_space.shape[0]))  # torso height 0: unhealthy by Ant-v5's rule
    np.testing.assert_array_equal(env.termination_fn(obs), [False, False, False])
    assert make("AntCrippledLeg-v0").termination_fn(obs).all()


# ---------------------------------------------------------------------------------------------- task draws
# Values whose exp(log(value)) is not value in float64 (3.0 among them): a log-uniform draw rounds off them.
ROUNDING_VALUES = [float(v) for v in np.linspace(0.3, 3.3, 3001) if math.exp(math.log(v)) != v][:8]


@pytest.mark.parametrize("value", ROUNDING_VALUES)
def test_walker_log_uniform_draw_stays_in_a_degenerate_range(value):
    env = make("Walker2dRandomParams-v0", torso_mass_scale_range=(value, value), friction_scale_range=(value, value))
    for seed in range(3):
        _, info = env.reset(seed=seed)
        assert info["task"] == {"torso_mass_scale": value, "friction_scale": value}


def test_sample_tasks_leaves_the_seeded_task_sequence_unchanged():
    def task_sequence(sample: bool):
        env = make("AntCrippledLeg-v0", task_switch_seconds=0.5, terminate_when_unhealthy=False)
        env.reset(seed=3)
        tasks = []
        for t in range(100):
            if sample and t % 7 == 0:
                env.sample_tasks(5)
            tasks.append(env.step(np.zeros(8))[4]["task"])
        return tasks

    assert task_sequence(sample=True) == task_sequence(sample=False)


def test_sample_tasks_is_seeded_by_reset():
    env = make("HalfCheetahPier-v0")
    env.reset(seed=5)
    first = env.sample_tasks(3)
    env.reset(seed=5)
    assert env.sample_tasks(3) == first
    env.reset(seed=6)
    assert env.sample_tasks(3) != first


# ---------------------------------------------------------------------------------------------- physics guard
@pytest.mark.parametrize("env_id", ["HalfCheetahFwdBwd-v0", "AntFwdBwd-v0", "HalfCheetahPier-v0"])
def test_mujoco_reset_of_an_unstable_simulation_is_flagged_on_the_first_step(env_id):
    env = make(env_id)
    obs0, _ = env.reset(seed=0)
    env.data.qvel[:] = 1e12  # huge but finite: MuJoCo resets the simulation to its initial pose by itself
    obs, reward, terminated, _, info = env.step(np.zeros(env.action_space.shape))
    assert info["physics_diverged"] and terminated and reward == 0.0
    np.testing.assert_array_equal(obs, obs0)  # the last observation before the blow-up
    env.reset(seed=1)  # a reset clears MuJoCo's warning counters
    assert not env.step(np.zeros(env.action_space.shape))[4]["physics_diverged"]


# ---------------------------------------------------------------------------------------------- crippled ant
def test_leg_names_match_where_each_foot_stands():
    from meta_mujoco_envs.crippled_ant import LEG_NAMES

    env = make("AntCrippledLeg-v0", reset_noise_scale=0.0)
    env.reset(seed=0)
    torso = env.data.xpos[env.model.body("torso").id]
    for leg, name in enumerate(LEG_NAMES):
        ankle_body = env.model.jnt_bodyid[env.model.joint(f"ankle_{leg + 1}").id]
        x, y = env.data.xpos[ankle_body, :2] - torso[:2]  # the ant faces +x, so +y is its left
        assert name == f"{'front' if x > 0 else 'back'} {'left' if y > 0 else 'right'}"


def test_crippled_leg_shrinks_and_the_others_keep_their_size():
    from meta_mujoco_envs.crippled_ant import SHRINK

    env = make("AntCrippledLeg-v0", task_switch_seconds=None)
    full = gym.make("Ant-v5").unwrapped.model.geom_size.copy()
    for leg in (1, 3, 0):  # switching from leg to leg restores the previous one
        env.reset(seed=0, options={"task": {"crippled_leg": leg}})
        geoms = env._below_hip_geoms[leg]
        np.testing.assert_allclose(env.model.geom_size[geoms, :2], SHRINK * full[geoms, :2])
        others = np.setdiff1d(np.arange(env.model.ngeom), geoms)
        np.testing.assert_array_equal(env.model.geom_size[others], full[others])
    unshrunk = make("AntCrippledLeg-v0", shrink_crippled_leg=False)
    np.testing.assert_array_equal(unshrunk.model.geom_size, full)


# ---------------------------------------------------------------------------------------------- time limits
def test_a_time_limit_that_misses_the_switches_warns():
    env = gym.make("HalfCheetahFwdBwd-v0", frame_skip=1)  # dt 0.01: the 1000-step limit lasts 10 s
    with pytest.warns(UserWarning, match="lasts 10 s at dt=0.01 and sees 0 task switch.*max_episode_steps=3001"):
        env.reset(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env.reset(seed=1)  # once per env
        gym.make("HalfCheetahFwdBwd-v0").reset(seed=0)  # the defaults see 3 switches
        gym.make("HalfCheetahFwdBwd-v0", frame_skip=1, task_switch_seconds=3.0).reset(seed=0)  # 300-step periods


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "env_id, kwargs, error, message",
    [
        ("AntCrippledLeg-v0", {"crippled_legs": 7}, TypeError, "crippled_legs"),
        ("AntCrippledLeg-v0", {"crippled_legs": None}, TypeError, "crippled_legs"),
        ("AntCrippledLeg-v0", {"crippled_legs": (True,)}, ValueError, "crippled_legs"),
        ("AntCrippledLeg-v0", {"crippled_legs": (1.5,)}, ValueError, "crippled_legs"),
        ("AntCrippledLeg-v0", {"shrink_crippled_leg": "no"}, TypeError, "shrink_crippled_leg"),
        ("HalfCheetahFwdBwd-v0", {"task_switch_seconds": True}, TypeError, "task_switch_seconds"),
        ("HalfCheetahFwdBwd-v0", {"task_switch_seconds": "15"}, TypeError, "task_switch_seconds"),
        ("HalfCheetahFwdBwd-v0", {"task_switch_seconds": 0.03}, ValueError, "shorter than one env step"),
        ("HalfCheetahFwdBwd-v0", {"task_switch_jitter": True}, TypeError, "task_switch_jitter"),
        ("HalfCheetahFwdBwd-v0", {"task_in_obs": "False"}, TypeError, "task_in_obs"),
        ("HalfCheetahPier-v0", {"block_damping_range": ("0", "50")}, ValueError, "block_damping_range"),
        ("HalfCheetahPier-v0", {"block_friction_range": (True, 1.0)}, ValueError, "block_friction_range"),
    ],
)
def test_bad_constructor_arguments_raise_naming_them(env_id, kwargs, error, message):
    env_class = load_env_creator(gym.spec(env_id).entry_point)  # gym.make would add the kwargs to any message
    with pytest.raises(error, match=message):
        env_class(**kwargs)


def test_numpy_numbers_are_accepted():
    env = make("HalfCheetahFwdBwd-v0", task_switch_seconds=np.float32(15.0), task_switch_jitter=np.float64(0.1))
    assert env.steps_per_task == 300
    assert make("AntCrippledLeg-v0", crippled_legs=np.array([0, 2]))._crippled_legs == (0, 2)


def test_bad_reset_options_raise():
    env = gym.make("HalfCheetahFwdBwd-v0")
    with pytest.raises(TypeError, match="options must be a dict"):
        env.reset(options="x")
    with pytest.raises(ValueError, match=r"unknown reset options \['tsak'\]"):
        env.reset(options={"tsak": {"direction": 1}})
    env.reset(options={"task": {"direction": -1}})
    assert env.unwrapped.get_task() == {"direction": -1}


@pytest.mark.parametrize("bad", [np.full(6, 1 + 1j), np.array(["0.1"] * 6), np.ones(6, dtype=bool), [None] * 6])
def test_actions_that_are_not_real_numbers_raise(bad):
    env = gym.make("HalfCheetahFwdBwd-v0")
    env.reset(seed=0)
    with pytest.raises(TypeError, match="action must be real numbers"):
        env.step(bad)


def test_a_huge_finite_action_is_reported_as_too_large_not_non_finite():
    env = gym.make("HalfCheetahFwdBwd-v0")
    env.reset(seed=0)
    action = np.zeros(6)
    action[2] = 1e160
    with pytest.raises(ValueError, match=r"out of range \(too large\)"):
        env.step(action)


@pytest.mark.parametrize(
    "task",
    [
        {"damping": ["1"] * 8, "friction": [0.5] * 8},
        {"damping": [1.0] * 8, "friction": [True] * 8},
        {"damping": [1.0 + 0j] * 8, "friction": [0.5] * 8},
        ["1"] * 8,
    ],
)
def test_pier_tasks_must_be_numbers(task):
    env = make("HalfCheetahPier-v0")
    env.reset(seed=0)
    before = env.get_task()
    with pytest.raises(ValueError, match="task"):
        env.set_task(task)
    assert env.get_task() == before


# ---------------------------------------------------------------------------------------------- MJCF
def test_cheetah_mjcf_without_settotalmass_has_v5_masses_and_builds_silently():
    ours = make("HalfCheetahFwdBwd-v0").model
    base = gym.make("HalfCheetah-v5").unwrapped.model
    np.testing.assert_allclose(ours.body_mass, base.body_mass, rtol=1e-12)
    np.testing.assert_allclose(ours.body_inertia, base.body_inertia, rtol=1e-12, atol=1e-15)
    pier = make("HalfCheetahPier-v0").model
    np.testing.assert_allclose(pier.body_mass[: base.nbody], base.body_mass, rtol=1e-12)
    code = "import gymnasium as gym, meta_mujoco_envs\nfor i in meta_mujoco_envs.ENV_IDS: gym.make(i).reset(seed=0)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "settotalmass" not in out.stderr + out.stdout
