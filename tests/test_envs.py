"""meta_mujoco_envs: registration, API conformance, rewards, task switching, determinism, errors."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import meta_mujoco_envs
from meta_mujoco_envs import CLASSIC_ENV_IDS, ENV_IDS

BASES = {
    "HalfCheetahFwdBwd-v0": "HalfCheetah-v5",
    "HalfCheetahPier-v0": "HalfCheetah-v5",
    "AntFwdBwd-v0": "Ant-v5",
    "AntCrippledLeg-v0": "Ant-v5",
    "Walker2dRandomParams-v0": "Walker2d-v5",
    "HumanoidDirec-v0": "Humanoid-v5",
}
DIRECTION_ENVS = ["HalfCheetahFwdBwd-v0", "AntFwdBwd-v0", "HumanoidDirec-v0"]
HEALTH_ENVS = ["AntFwdBwd-v0", "AntCrippledLeg-v0", "Walker2dRandomParams-v0", "HumanoidDirec-v0"]
CLASSIC_HEALTH_ENVS = ["AntDir-v0", "HumanoidDir-v0", "HopperRandParams-v0", "Walker2dRandParams-v0"]


def make(env_id: str, **kwargs):
    return gym.make(env_id, **kwargs).unwrapped


# ---------------------------------------------------------------------------------------------- registration
def test_six_envs_registered_with_time_limits_that_see_two_switches():
    assert set(ENV_IDS) == set(BASES)
    for env_id in ENV_IDS:
        spec = gym.spec(env_id)
        env = make(env_id)
        assert spec.max_episode_steps >= 2 * env.steps_per_task + 1, env_id
        assert env.steps_per_task == round(15.0 / env.dt)


def test_make_with_module_prefix_works_without_import():
    code = "import gymnasium as gym; e = gym.make('meta_mujoco_envs:HalfCheetahPier-v0'); e.reset(seed=0); print(e.spec.id)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("HalfCheetahPier-v0")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_env_checkers(env_id):
    gym_check_env(make(env_id), skip_render_check=True)
    sb3_check_env(make(env_id), warn=False)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spaces_match_the_v5_base(env_id):
    ours, base = gym.make(env_id), gym.make(BASES[env_id])
    assert ours.action_space == base.action_space
    assert ours.observation_space.shape == base.observation_space.shape
    with_task = gym.make(env_id, task_in_obs=True)
    obs, info = with_task.reset(seed=0)
    task_vec = with_task.unwrapped.task_features(info["task"])
    assert obs.shape == (base.observation_space.shape[0] + task_vec.size,)
    np.testing.assert_array_equal(obs[-task_vec.size :], task_vec)


# ---------------------------------------------------------------------------------------------- rewards
def _step_both_from_same_state(ours, task, base, action, rng, base_action=None):
    """Put both envs in the same (noisy) state, ours under ``task``, step, return both step results."""
    ours.reset(seed=0, options={"task": task})
    base.reset(seed=0)
    qpos = base.init_qpos + rng.uniform(-0.05, 0.05, base.model.nq)
    qvel = base.init_qvel + rng.normal(0, 0.5, base.model.nv)
    ours.set_state(qpos, qvel)
    base.set_state(qpos, qvel)
    return ours.step(action), base.step(action if base_action is None else base_action)


@pytest.mark.parametrize("env_id", DIRECTION_ENVS)
def test_direction_reward_is_v5_reward_with_signed_forward_term(env_id):
    rng = np.random.default_rng(1)
    ours = make(env_id, task_switch_seconds=None)
    base = make(BASES[env_id])
    for direction in (1, -1):
        for _ in range(3):
            action = rng.uniform(ours.action_space.low, ours.action_space.high)
            task = {"direction": direction}
            (o1, r1, t1, _, i1), (o2, r2, t2, _, i2) = _step_both_from_same_state(ours, task, base, action, rng)
            assert ours.get_task() == {"direction": direction}
            np.testing.assert_allclose(o1, o2)
            assert t1 == t2
            assert i1["x_velocity"] == pytest.approx(i2["x_velocity"])
            assert i1["reward_forward"] == pytest.approx(direction * i2["reward_forward"])
            rest = r2 - i2["reward_forward"]
            assert r1 == pytest.approx(direction * i2["reward_forward"] + rest)
            if direction == 1:
                assert r1 == pytest.approx(r2)


def test_crippled_leg_exerts_no_force_and_pays_no_control_cost():
    env = make("AntCrippledLeg-v0", task_switch_seconds=None)
    base = make("Ant-v5")
    action = np.ones(8)
    for leg in range(4):
        env.reset(seed=0, options={"task": {"crippled_leg": leg}})
        _, _, _, _, info = env.step(action)
        dead = [2 * ((leg + 1) % 4), 2 * ((leg + 1) % 4) + 1]  # actuator order hip_4, ankle_4, hip_1, ankle_1, ...
        alive = [a for a in range(8) if a not in dead]
        np.testing.assert_array_equal(env.data.ctrl[dead], 0.0)
        np.testing.assert_array_equal(env.data.actuator_force[dead], 0.0)
        assert np.all(np.abs(env.data.actuator_force[alive]) > 0)
        for a in dead:  # no actuator torque reaches the crippled leg's joints
            dof = env.model.jnt_dofadr[env.model.actuator_trnid[a, 0]]
            assert env.data.qfrc_actuator[dof] == 0.0
        assert info["reward_ctrl"] == pytest.approx(-base._ctrl_cost_weight * 6)
        red = np.all(env.model.geom_rgba == [1, 0, 0, 1], axis=1)
        assert red.sum() == 3 and all(env.model.geom_bodyid[red] > 1)


def test_crippled_leg_reward_is_ant_reward_for_the_applied_action():
    rng = np.random.default_rng(2)
    ours = make("AntCrippledLeg-v0", task_switch_seconds=None, shrink_crippled_leg=False)  # Ant-v5's geometry
    base = make("Ant-v5")
    action = rng.uniform(-1, 1, 8)
    masked = action.copy()
    masked[[6, 7]] = 0.0  # leg 2 = hip_3, ankle_3
    task = {"crippled_leg": 2}
    (o1, r1, *_), (o2, r2, *_) = _step_both_from_same_state(ours, task, base, action, rng, base_action=masked)
    np.testing.assert_allclose(o1, o2)
    assert r1 == pytest.approx(r2)


def test_walker_params_change_at_switches_within_declared_ranges():
    env = make("Walker2dRandomParams-v0", task_switch_seconds=0.4, terminate_when_unhealthy=False)  # 50 steps
    torso = env.model.body("torso").id
    default_mass = gym.make("Walker2d-v5").unwrapped.model.body_mass[torso]
    default_friction = gym.make("Walker2d-v5").unwrapped.model.geom_friction[:, 0].copy()
    (m_low, m_high), (f_low, f_high) = env.task_ranges.values()
    assert (m_low, m_high) == pytest.approx((1.5**-3, 1.5**3))
    _, info = env.reset(seed=3)
    seen = [info["task"]]
    for t in range(200):
        _, _, _, _, info = env.step(np.zeros(6))
        task = info["task"]
        assert info["task_switched"] == (t > 0 and t % 50 == 0)
        assert env.model.body_mass[torso] == pytest.approx(default_mass * task["torso_mass_scale"])
        np.testing.assert_allclose(env.model.geom_friction[:, 0], default_friction * task["friction_scale"])
        assert m_low <= task["torso_mass_scale"] <= m_high and f_low <= task["friction_scale"] <= f_high
        if info["task_switched"]:
            assert task != seen[-1]
            seen.append(task)
    assert len(seen) == 4


def test_walker_ground_contact_friction_is_scaled_exactly():
    env = make("Walker2dRandomParams-v0", task_switch_seconds=None)
    for scale in (0.5, 2.0):
        env.reset(seed=0, options={"task": {"torso_mass_scale": 1.0, "friction_scale": scale}})
        for _ in range(60):
            env.step(np.zeros(6))
        assert env.data.ncon > 0
        for contact in env.data.contact[: env.data.ncon]:
            pair_default = max(env._default_friction[contact.geom1], env._default_friction[contact.geom2])
            assert contact.friction[0] == pytest.approx(scale * pair_default)


def test_pier_blocks_have_per_episode_properties_in_range_and_move_when_stepped_on():
    env = make("HalfCheetahPier-v0", task_switch_seconds=None, reset_noise_scale=0.0)
    (d_low, d_high), (f_low, f_high) = env.task_ranges.values()
    tasks = []
    for seed in (0, 1):
        _, info = env.reset(seed=seed)
        task = info["task"]
        tasks.append(task)
        assert len(task["damping"]) == len(task["friction"]) == env.n_blocks == 8
        assert all(d_low <= d <= d_high for d in task["damping"]) and all(f_low <= f <= f_high for f in task["friction"])
        np.testing.assert_allclose(env.model.dof_damping[env._block_dofs], task["damping"])
        np.testing.assert_allclose(env.model.geom_friction[env._block_geoms, 0], task["friction"])
        np.testing.assert_array_equal(env.block_heights(), 0.0)
        for _ in range(400):
            _, _, _, _, info = env.step(np.zeros(6))
            assert info["task"] == task and not info["task_switched"]
        # The cheetah rests on block 3: its block has sunk, the far ones have not moved.
        heights = env.block_heights()
        assert heights[3] < -0.02
        assert np.abs(heights[[0, 6, 7]]).max() < 1e-6
    assert tasks[0] != tasks[1]


def test_pier_never_runs_out_even_for_an_absurdly_fast_cheetah():
    env = make("HalfCheetahPier-v0")
    env.reset(seed=0)
    half_block = 2.0
    for velocity in (+60.0, -60.0):  # 60 m per 0.05 s step: far beyond any trained policy
        for _ in range(300):
            qpos, qvel = env.data.qpos.copy(), env.data.qvel.copy()
            qpos[0] += velocity
            env.set_state(qpos, qvel)
            _, _, terminated, _, info = env.step(np.zeros(6))
            assert not terminated and not info["physics_diverged"]
            x = env.data.qpos[0]
            centres = env.model.body_pos[env._block_bodies, 0]
            assert np.any(np.abs(centres - x) <= half_block), (x, centres)
            assert np.abs(centres - x).max() <= 0.5 * env.pier_length + abs(velocity)


# ---------------------------------------------------------------------------------------------- switching
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_switch_exactly_every_round_seconds_over_dt(env_id):
    seconds = 0.3
    env = make(env_id, task_switch_seconds=seconds, terminate_when_unhealthy=False) if env_id in HEALTH_ENVS else make(
        env_id, task_switch_seconds=seconds
    )
    period = round(seconds / env.dt)
    assert env.steps_per_task == period
    for episode in range(2):
        _, info = env.reset(seed=episode)
        assert info["task_switched"] is False and info["task"] == env.get_task()
        switches = []
        for t in range(4 * period + 3):
            _, _, _, _, info = env.step(np.zeros(env.action_space.shape))
            assert info["task"] == env.get_task()
            if info["task_switched"]:
                switches.append(t)
        assert switches == [period, 2 * period, 3 * period, 4 * period]


def test_default_period_is_15_seconds_and_none_never_switches():
    env = make("HalfCheetahFwdBwd-v0")
    env.reset(seed=0)
    flags = [env.step(np.zeros(6))[4]["task_switched"] for _ in range(1000)]
    assert np.flatnonzero(flags).tolist() == [300, 600, 900]
    env = make("HalfCheetahFwdBwd-v0", task_switch_seconds=None)
    env.reset(seed=0)
    assert not any(env.step(np.zeros(6))[4]["task_switched"] for _ in range(1000))


def test_jitter_is_bounded_and_seeded():
    def switch_steps(seed):
        env = make("HalfCheetahFwdBwd-v0", task_switch_seconds=1.0, task_switch_jitter=0.5)
        env.reset(seed=seed)
        return np.flatnonzero([env.step(np.zeros(6))[4]["task_switched"] for _ in range(400)])

    steps = switch_steps(0)
    periods = np.diff(np.r_[0, steps])
    assert periods.min() >= 10 and periods.max() <= 30 and len(set(periods)) > 1
    np.testing.assert_array_equal(steps, switch_steps(0))


def test_task_api():
    env = make("AntCrippledLeg-v0")
    env.reset(seed=0)
    tasks = env.sample_tasks(50)
    assert {t["crippled_leg"] for t in tasks} == {0, 1, 2, 3}
    env.set_task(tasks[0])
    assert env.get_task() == tasks[0]
    got = env.get_task()
    got["crippled_leg"] = 99  # a copy: the env's task is untouched
    assert env.get_task() == tasks[0]
    assert pickle.loads(pickle.dumps(tasks)) == tasks


# ---------------------------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("env_id", ["HalfCheetahFwdBwd-v0", "HalfCheetahPier-v0", "AntCrippledLeg-v0", "Walker2dRandomParams-v0"])
def test_same_seed_same_everything_different_seed_different_tasks(env_id):
    def run(seed):
        env = gym.make(env_id, task_switch_seconds=0.4, max_episode_steps=10_000)
        obs, info = env.reset(seed=seed)
        actions = np.random.default_rng(0).uniform(-1, 1, (300,) + env.action_space.shape)
        observations, rewards, tasks = [obs], [], [info["task"]]
        for action in actions:
            obs, reward, terminated, truncated, info = env.step(action)
            observations.append(obs)
            rewards.append(reward)
            tasks.append(info["task"])
            if terminated or truncated:
                obs, info = env.reset()
        return np.array(observations), np.array(rewards), tasks

    a, b, c = run(7), run(7), run(8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]
    assert a[2] != c[2]


# ---------------------------------------------------------------------------------------------- health rule
@pytest.mark.parametrize("env_id", HEALTH_ENVS + CLASSIC_HEALTH_ENVS)
def test_termination_fn_agrees_with_step(env_id):
    env = make(env_id, task_in_obs=True)  # the task's entries follow the robot's: the rule must skip them
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    outcomes = []
    for _ in range(600):
        obs, _, terminated, _, _ = env.step(rng.uniform(env.action_space.low, env.action_space.high))
        assert env.termination_fn(obs[None])[0] == terminated
        outcomes.append(terminated)
        if terminated:
            env.reset()
    assert any(outcomes)  # random actions make each of these fall: both branches are exercised
    assert not make("HalfCheetahFwdBwd-v0").termination_fn(np.zeros((4, 17))).any()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_action_reward_fn_is_the_control_cost_in_info(env_id):
    env = make(env_id)
    if env_id == "AntCrippledLeg-v0":  # its control cost depends on the task: nothing to take as known
        assert env.action_reward_fn is None
        return
    rng = np.random.default_rng(1)
    env.reset(seed=1)
    actions = rng.uniform(env.action_space.low, env.action_space.high, size=(20,) + env.action_space.shape)
    for action, known in zip(actions, env.action_reward_fn(actions)):
        _, reward, terminated, _, info = env.step(action)
        assert known == pytest.approx(info["reward_ctrl"], rel=1e-6) and known < 0
        if terminated:
            env.reset()


@pytest.mark.parametrize("env_id", ENV_IDS + CLASSIC_ENV_IDS)
def test_drawn_tasks_are_clean_tasks(env_id):
    # The env puts its own draws in force without checking them (at every reset and switch): each draw must be
    # what the check returns for it, value and type (repr tells 1 from 1.0), and pass the check unchanged.
    env = gym.make(env_id).unwrapped
    env.reset(seed=3)
    draws = env.sample_tasks(20) + [env.get_task()]
    for task in draws:
        assert repr(env._validate_task(task)) == repr(task)
    env.set_task(draws[0])
    assert env.get_task() == draws[0]


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_bad_actions_raise(env_id):
    env = gym.make(env_id)
    env.reset(seed=0)
    n = env.action_space.shape[0]
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(n + 1))
    for bad in (np.nan, np.inf, -np.inf):
        action = np.zeros(n)
        action[0] = bad
        with pytest.raises(ValueError, match="non-finite"):
            env.step(action)


@pytest.mark.parametrize(
    "env_id, kwargs, message",
    [
        ("HalfCheetahFwdBwd-v0", {"task_switch_seconds": -1.0}, "task_switch_seconds must be > 0"),
        ("HalfCheetahFwdBwd-v0", {"task_switch_seconds": 0.0}, "task_switch_seconds must be > 0"),
        ("HalfCheetahFwdBwd-v0", {"task_switch_seconds": float("nan")}, "finite"),
        ("HalfCheetahFwdBwd-v0", {"task_switch_seconds": 0.01}, "shorter than one env step"),
        ("HalfCheetahFwdBwd-v0", {"task_switch_jitter": 1.5}, "task_switch_jitter"),
        ("HalfCheetahFwdBwd-v0", {"task_switch_seconds": None, "task_switch_jitter": 0.1}, "task_switch_jitter"),
        ("AntCrippledLeg-v0", {"crippled_legs": (0, 4)}, "crippled_legs"),
        ("AntCrippledLeg-v0", {"crippled_legs": ()}, "crippled_legs"),
        ("Walker2dRandomParams-v0", {"torso_mass_scale_range": (0.0, 2.0)}, "torso_mass_scale_range must be positive"),
        ("Walker2dRandomParams-v0", {"friction_scale_range": (2.0, 1.0)}, "low <= high"),
        ("HalfCheetahPier-v0", {"block_damping_range": (-1.0, 1.0)}, "block_damping_range"),
        ("HalfCheetahPier-v0", {"block_friction_range": "high"}, "block_friction_range"),
    ],
)
def test_bad_kwargs_raise(env_id, kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make(env_id, **kwargs)


@pytest.mark.parametrize(
    "env_id, task, message",
    [
        ("HalfCheetahFwdBwd-v0", {"direction": 0}, "direction"),
        ("HalfCheetahFwdBwd-v0", {"direction": True}, "direction"),
        ("HalfCheetahFwdBwd-v0", {"dir": 1}, "keys"),
        ("HalfCheetahFwdBwd-v0", 1, "dict"),
        ("AntCrippledLeg-v0", {"crippled_leg": 4}, "crippled_leg"),
        ("Walker2dRandomParams-v0", {"torso_mass_scale": 10.0, "friction_scale": 1.0}, "torso_mass_scale"),
        ("Walker2dRandomParams-v0", {"torso_mass_scale": 1.0, "friction_scale": float("nan")}, "friction_scale"),
        ("HalfCheetahPier-v0", {"damping": (1.0,) * 7, "friction": (0.5,) * 8}, "damping"),
        ("HalfCheetahPier-v0", {"damping": (1.0,) * 8, "friction": (5.0,) * 8}, "friction"),
    ],
)
def test_invalid_task_raises_and_keeps_the_old_task(env_id, task, message):
    env = make(env_id)
    env.reset(seed=0)
    before = env.get_task()
    with pytest.raises(ValueError, match=message):
        env.set_task(task)
    assert env.get_task() == before
    with pytest.raises(ValueError, match=message):
        env.reset(options={"task": task})


@pytest.mark.parametrize("env_id", ["HalfCheetahFwdBwd-v0", "AntFwdBwd-v0"])
def test_physics_blow_up_ends_episode_with_flag_and_finite_observation(env_id):
    env = make(env_id)
    obs0, _ = env.reset(seed=0)
    obs1, *_ = env.step(np.zeros(env.action_space.shape))
    env.data.qvel[:] = np.nan  # a diverged state, as a numerical explosion would leave it
    obs, reward, terminated, _, info = env.step(np.zeros(env.action_space.shape))
    assert terminated and info["physics_diverged"]
    assert np.isfinite(obs).all() and np.isfinite(reward)
    np.testing.assert_array_equal(obs, obs1)
    _, info = env.reset(seed=1)
    _, _, terminated, _, info = env.step(np.zeros(env.action_space.shape))
    assert not info["physics_diverged"]


# ---------------------------------------------------------------------------------------------- SB3 / vector envs
def test_subproc_vec_env_and_make_vec():
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    # SB3's worker processes (forkserver) do not import meta_mujoco_envs: the "module:ID" form registers it there.
    vec = make_vec_env("meta_mujoco_envs:HalfCheetahPier-v0", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv)
    vec.reset()
    for _ in range(5):
        _, _, _, infos = vec.step(np.zeros((2, 6)))
    assert all("task" in info for info in infos)
    assert vec.get_attr("steps_per_task") == [300, 300]
    vec.close()
    for mode in ("sync", "async"):
        envs = gym.make_vec("AntCrippledLeg-v0", num_envs=2, vectorization_mode=mode)
        envs.reset(seed=0)
        obs, *_ = envs.step(np.zeros((2, 8)))
        assert obs.shape == (2, 105)
        envs.close()


def test_pickle_keeps_constructor_arguments():
    env = make("Walker2dRandomParams-v0", task_switch_seconds=3.0, friction_scale_range=(0.5, 2.0), task_in_obs=True)
    clone = pickle.loads(pickle.dumps(env))
    assert clone.steps_per_task == env.steps_per_task == round(3.0 / env.dt)
    assert clone.task_ranges == env.task_ranges
    assert clone.observation_space == env.observation_space


@pytest.mark.parametrize("algo", ["SAC", "TD3", "PPO"])
def test_sb3_algorithms_train_unchanged(algo):
    import stable_baselines3 as sb3

    kwargs = {"n_steps": 64, "batch_size": 32} if algo == "PPO" else {"learning_starts": 32, "batch_size": 32}
    model = getattr(sb3, algo)("MlpPolicy", "HalfCheetahFwdBwd-v0", seed=0, policy_kwargs={"net_arch": [16]}, **kwargs)
    model.learn(128)
    assert model.num_timesteps >= 128


# ---------------------------------------------------------------------------------------------- packaging
def test_non_editable_install_carries_the_pier_mjcf(tmp_path):
    root = Path(meta_mujoco_envs.__file__).resolve().parents[1]
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(root)],
        check=True,
        capture_output=True,
    )
    code = (
        "import gymnasium as gym, meta_mujoco_envs, meta_mujoco_envs.pier as p; "
        "e = gym.make('HalfCheetahPier-v0'); e.reset(seed=0); print(p.pier_xml_path())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target)}, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().startswith(str(target))


# ---------------------------------------------------------------------------------------------- rendering
RENDER_CODE = """
import numpy as np
from render_envs import render_frame
pier, _ = render_frame("HalfCheetahPier-v0")
ant, _ = render_frame("AntCrippledLeg-v0")
standing = [render_frame(env_id)[1] for env_id in ("Walker2dRandomParams-v0", "HumanoidDirec-v0")]
red = (ant[..., 0] > 200) & (ant[..., 1] < 60) & (ant[..., 2] < 60)
water = (pier[..., 2] > 150) & (pier[..., 0] < 60)
sky = pier[:60].std(axis=2).max() < 5 and pier[:60].mean() > 60  # grey sky above the horizon, no water there
print(pier.shape == ant.shape == (360, 640, 3), int(red.sum()), int(water.sum()), sky, all(standing))
"""


def test_rgb_array_frames_show_the_pier_the_crippled_leg_and_standing_robots():
    """What examples/render_envs.py renders into docs/images, as the README shows it."""
    root = Path(meta_mujoco_envs.__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", RENDER_CODE], cwd=root / "examples", env={**os.environ, "MUJOCO_GL": "egl"}, capture_output=True, text=True
    )
    if out.returncode != 0:
        pytest.skip(f"no offscreen OpenGL (MUJOCO_GL=egl) on this machine: {out.stderr.strip().splitlines()[-1:]}")
    shapes_ok, red, water, sky, standing = out.stdout.split()
    assert shapes_ok == "True"
    assert int(red) > 200  # the crippled (shrunk) leg is drawn red
    assert int(water) > 10_000  # the water under the pier is blue
    assert sky == "True"  # the track camera sees the sky above the horizon
    assert standing == "True"  # the Walker and the Humanoid are standing in their frames
