"""The classic meta-RL suite: rewards against the originals' definitions, task distributions, the originals' fixed
task lists, in-episode switching, determinism, errors, and conformance (checkers, pickling, vector envs)."""

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

from meta_mujoco_envs import CLASSIC_ENV_IDS, ENV_IDS

HORIZONS = {env_id: 200 for env_id in CLASSIC_ENV_IDS} | {"PointRobot-v0": 20, "SparsePointRobot-v0": 20}
# One id per family (the module that defines it), for the costlier checks.
FAMILY_IDS = ["HalfCheetahVel-v0", "AntGoal-v0", "HumanoidDir-v0", "Walker2dRandParams-v0", "SparsePointRobot-v0"]


def make(env_id: str, **kwargs):
    return gym.make(env_id, **kwargs).unwrapped


def random_actions(env, n: int, seed: int = 0) -> np.ndarray:
    space = env.action_space
    return np.random.default_rng(seed).uniform(space.low, space.high, size=(n,) + space.shape)


def legacy_global_draws(draw):
    """``draw()`` run on numpy's global legacy generator, as the originals do, with its state restored after."""
    state = np.random.get_state()
    try:
        return draw()
    finally:
        np.random.set_state(state)


# ---------------------------------------------------------------------------------------------- registration
def test_registered_with_the_originals_horizons_one_task_per_episode():
    assert not set(CLASSIC_ENV_IDS) & set(ENV_IDS)
    for env_id in CLASSIC_ENV_IDS:
        assert gym.spec(env_id).max_episode_steps == HORIZONS[env_id]
        env = gym.make(env_id)
        assert env.unwrapped.task_switch_seconds is None
        env.reset(seed=0)
        task = env.unwrapped.get_task()
        for action in random_actions(env, HORIZONS[env_id]):
            _, _, terminated, truncated, info = env.step(action)
            assert info["task"] == task and not info["task_switched"]
            if terminated or truncated:
                break


@pytest.mark.parametrize("env_id", CLASSIC_ENV_IDS)
def test_env_checkers(env_id):
    gym_check_env(make(env_id), skip_render_check=True)
    sb3_check_env(make(env_id), warn=False)


def test_spaces_and_dt():
    expected = {  # id: (v5 base or None, obs size, dt)
        "HalfCheetahVel-v0": ("HalfCheetah-v5", 17, 0.05),
        "HalfCheetahDir-v0": ("HalfCheetah-v5", 17, 0.05),
        "AntDir-v0": ("Ant-v5", 27, 0.05),
        "AntGoal-v0": ("Ant-v5", 107, 0.05),
        "HumanoidDir-v0": ("Humanoid-v5", 348, 0.015),
        "HopperRandParams-v0": ("Hopper-v5", 11, 0.016),
        "Walker2dRandParams-v0": ("Walker2d-v5", 17, 0.016),
        "PointRobot-v0": (None, 2, 0.1),
        "SparsePointRobot-v0": (None, 2, 0.1),
    }
    assert set(expected) == set(CLASSIC_ENV_IDS)
    for env_id, (base_id, obs_size, dt) in expected.items():
        env = make(env_id)
        assert env.observation_space.shape == (obs_size,) and env.dt == pytest.approx(dt), env_id
        if base_id is not None:
            assert env.action_space == gym.make(base_id).action_space
        oracle = make(env_id, task_in_obs=True)
        assert oracle.observation_space.shape[0] == obs_size + env.task_features(env.get_task()).size


# ---------------------------------------------------------------------------------------------- rewards
def mass_center_xy(env) -> np.ndarray:
    mass = env.model.body_mass
    return (mass @ env.data.xipos / mass.sum())[:2]


def expected_rewards(env_id: str, env, action: np.ndarray, before: dict, healthy: bool) -> float:
    """The originals' reward of the step just taken, from the MuJoCo state before (``before``) and after; the alive
    bonus paid while ``healthy`` only, as v5 (the originals pay it on the terminating step too)."""
    task, dt, data = env.get_task(), env.dt, env.data
    a2 = float(np.sum(np.square(action)))
    if env_id == "HalfCheetahVel-v0":
        return -abs((data.qpos[0] - before["qpos"][0]) / dt - task["velocity"]) - 0.05 * a2
    if env_id == "HalfCheetahDir-v0":
        return task["direction"] * (data.qpos[0] - before["qpos"][0]) / dt - 0.05 * a2
    contact = 5e-4 * np.sum(np.square(np.clip(data.cfrc_ext, -1, 1)))
    if env_id == "AntDir-v0":
        velocity = (data.body("torso").xpos[:2] - before["torso"]) / dt
        direction = np.array([np.cos(task["angle"]), np.sin(task["angle"])])
        return velocity @ direction - 0.5 * a2 - contact + 1.0 * healthy
    if env_id == "AntGoal-v0":
        return -np.abs(data.body("torso").xpos[:2] - np.array(task["goal"])).sum() - 0.1 * a2 - contact
    if env_id == "HumanoidDir-v0":
        direction = np.array([np.cos(task["angle"]), np.sin(task["angle"])])
        forward = 0.25 * direction @ (mass_center_xy(env) - before["com"]) / env.model.opt.timestep  # PEARL's form
        impact = min(0.5e-6 * np.sum(np.square(data.cfrc_ext)), 10.0)
        return forward - 0.1 * np.sum(np.square(data.ctrl)) - impact + 5.0 * healthy
    if env_id in ("HopperRandParams-v0", "Walker2dRandParams-v0"):
        return (data.qpos[0] - before["qpos"][0]) / dt + 1.0 * healthy - 1e-3 * a2
    distance = np.linalg.norm(data.qpos - np.array(task["goal"]))
    if env_id == "PointRobot-v0":
        return -distance
    return 1.0 - distance if distance <= 0.2 else 0.0


@pytest.mark.parametrize("env_id", CLASSIC_ENV_IDS)
def test_reward_is_the_originals_definition_on_real_steps(env_id):
    env = make(env_id)
    env.reset(seed=3)
    if env_id == "SparsePointRobot-v0":  # start near the goal so that both sides of the radius are visited
        env.set_state(np.array(env.get_task()["goal"]) * 0.7, env.init_qvel)
    steps = 0
    for action in random_actions(env, 60, seed=3):
        before = {"qpos": env.data.qpos.copy(), "torso": None, "com": mass_center_xy(env)}
        if "Ant" in env_id:
            before["torso"] = env.data.body("torso").xpos[:2].copy()
        _, reward, terminated, _, info = env.step(action)
        assert reward == pytest.approx(expected_rewards(env_id, env, action, before, not terminated), rel=1e-9, abs=1e-9)
        assert reward == pytest.approx(sum(v for k, v in info.items() if k.startswith("reward_") and k != "reward_dense"))
        if terminated:
            env.reset()
        else:
            steps += 1
    assert steps >= 30


def test_sparse_reward_pays_inside_the_radius_only():
    env = make("SparsePointRobot-v0")
    env.reset(seed=0, options={"task": {"goal": (0.0, 1.0)}})
    _, reward, *_ = env.step(np.zeros(2))  # at the origin, 1 away
    assert reward == 0.0
    env.set_state(np.array([0.0, 0.85]), env.init_qvel)
    _, reward, _, _, info = env.step(np.array([0.0, 1.0]))  # to (0, 0.95): 0.05 away
    assert reward == pytest.approx(0.95) and info["reward_dense"] == pytest.approx(-0.05)
    env.set_state(np.array([0.0, 0.7]), env.init_qvel)
    _, reward, *_ = env.step(np.zeros(2))  # 0.3 away
    assert reward == 0.0
    env.set_state(np.array([0.0, 0.0]), env.init_qvel)
    obs, *_ = env.step(np.array([5.0, -3.0]))  # clipped to the unit box, times 0.1
    np.testing.assert_allclose(obs, [0.1, -0.1])


# ---------------------------------------------------------------------------------------------- task distributions
def test_task_distributions():
    n = 4000
    tolerance = 4 / np.sqrt(n)  # about 4 standard errors of a mean of unit variance

    def tasks(env_id, key, **kwargs):
        env = make(env_id, **kwargs)
        env.reset(seed=11)
        return np.array([task[key] for task in env.sample_tasks(n)])

    velocity = tasks("HalfCheetahVel-v0", "velocity")
    assert velocity.min() >= 0 and velocity.max() <= 3
    assert abs(velocity.mean() - 1.5) < 3 * tolerance and abs(velocity.var() - 0.75) < 3 * tolerance
    assert tasks("HalfCheetahVel-v0", "velocity", velocity_range=(0.0, 2.0)).max() <= 2.0
    direction = tasks("HalfCheetahDir-v0", "direction")
    assert set(direction) == {-1, 1} and abs(direction.mean()) < tolerance
    for env_id in ("AntDir-v0", "HumanoidDir-v0"):
        angle = tasks(env_id, "angle")
        assert angle.min() >= 0 and angle.max() < 2 * np.pi
        # uniform angles: the mean direction is 0, the histogram flat
        assert abs(np.cos(angle).mean()) < tolerance and abs(np.sin(angle).mean()) < tolerance
        counts = np.histogram(angle, bins=8, range=(0, 2 * np.pi))[0]
        assert counts.min() > 0.8 * n / 8
    assert set(tasks("AntDir-v0", "angle", direction_angles=(0.0, np.pi))) == {0.0, np.pi}
    goal = tasks("AntGoal-v0", "goal")
    radius2 = (goal**2).sum(axis=1) / 9  # uniform on the disc of radius 3: (r / 3)^2 ~ U(0, 1)
    assert radius2.max() <= 1 and abs(radius2.mean() - 0.5) < tolerance and abs(goal.mean(axis=0)).max() < 3 * tolerance
    goal = tasks("PointRobot-v0", "goal")
    assert np.abs(goal).max() <= 1 and abs(goal.mean(axis=0)).max() < tolerance
    assert abs(goal.var(axis=0) - 1 / 3).max() < tolerance
    goal = tasks("SparsePointRobot-v0", "goal")
    np.testing.assert_allclose(np.linalg.norm(goal, axis=1), 1.0)
    angle = np.arctan2(goal[:, 1], goal[:, 0])
    assert angle.min() >= 0 and angle.max() <= np.pi and abs(angle.mean() - np.pi / 2) < 3 * tolerance


@pytest.mark.parametrize("env_id", ["HopperRandParams-v0", "Walker2dRandParams-v0"])
def test_rand_params_factors_are_log_uniform_per_element(env_id):
    env = make(env_id)
    env.reset(seed=5)
    tasks = env.sample_tasks(400)
    for name, base in (("body_mass", 1.5), ("body_inertia", 1.5), ("dof_damping", 1.3), ("geom_friction", 1.5)):
        exponents = np.log(np.array([task[name] for task in tasks])) / np.log(base)
        assert exponents.shape[1:] == getattr(env.model, name).shape
        assert exponents.min() >= -3 and exponents.max() <= 3
        # U(-3, 3): mean 0 and variance 3 in every element, drawn independently (elements uncorrelated)
        flat = exponents.reshape(len(tasks), -1)
        assert np.abs(flat.mean(axis=0)).max() < 0.6 and np.abs(flat.var(axis=0) - 3).max() < 1.0
        assert np.abs(np.corrcoef(flat.T)[np.triu_indices(flat.shape[1], 1)]).max() < 0.25


def test_rand_params_scale_the_defaults_without_compounding():
    env = make("Walker2dRandParams-v0")
    defaults = env.default_parameters
    env.reset(seed=0)
    task = env.get_task()
    for _ in range(3):
        env.set_task(task)
        env.reset(seed=1, options={"task": task})
    for name, values in defaults.items():
        np.testing.assert_allclose(getattr(env.model, name), values * np.array(task[name]), rtol=1e-12)
    # what MuJoCo derives from masses follows them (mj_setConst): the subtree mass of the world is the total
    assert env.model.body_subtreemass[0] == pytest.approx(env.model.body_mass.sum())
    only_mass = make("Walker2dRandParams-v0", rand_params=("body_mass",))
    only_mass.reset(seed=0)
    assert set(only_mass.get_task()) == {"body_mass"}
    np.testing.assert_array_equal(only_mass.model.geom_friction, only_mass.default_parameters["geom_friction"])


# ---------------------------------------------------------------------------------------------- the originals' lists
def test_pearl_fixed_task_lists_are_the_originals_values():
    def cheetah_vel():  # PEARL's HalfCheetahVelEnv.sample_tasks(130)
        np.random.seed(1337)
        return np.random.uniform(0.0, 3.0, size=(130,))

    def point_robot():  # PEARL's PointEnv(randomize_tasks=True, n_tasks=100)
        np.random.seed(1337)
        return [[np.random.uniform(-1.0, 1.0), np.random.uniform(-1.0, 1.0)] for _ in range(100)]

    def sparse_point_robot():  # PEARL's SparsePointEnv(randomize_tasks=True, n_tasks=100)
        np.random.seed(1337)
        angles = np.linspace(0, np.pi, num=100)
        goals = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        np.random.shuffle(goals)
        return goals.tolist()

    cases = [
        ("HalfCheetahVel-v0", "velocity", [float(v) for v in legacy_global_draws(cheetah_vel)], 100),
        ("PointRobot-v0", "goal", [tuple(g) for g in legacy_global_draws(point_robot)], 80),
        ("SparsePointRobot-v0", "goal", [tuple(g) for g in legacy_global_draws(sparse_point_robot)], 80),
    ]
    for env_id, key, original, n_train in cases:
        train, test = make(env_id, tasks="pearl-train"), make(env_id, tasks="pearl-test")
        assert [task[key] for task in train.task_set] == original[:n_train]
        assert [task[key] for task in test.task_set] == original[n_train:]
        # every draw, at reset and from sample_tasks, is one of the set's tasks
        train.reset(seed=0)
        drawn = train.sample_tasks(300) + [train.reset(seed=s)[1]["task"] for s in range(20)]
        assert all(task in train.task_set for task in drawn)
        assert len({str(task) for task in drawn}) > n_train // 2


def test_a_given_task_list_is_drawn_uniformly():
    tasks = [{"goal": (0.5, 0.5)}, {"goal": (-2.0, 1.0)}]
    env = make("AntGoal-v0", tasks=tasks)
    env.reset(seed=0)
    drawn = [task["goal"] for task in env.sample_tasks(2000)]
    assert set(drawn) == {(0.5, 0.5), (-2.0, 1.0)}
    assert abs(drawn.count((0.5, 0.5)) / 2000 - 0.5) < 0.05


# ---------------------------------------------------------------------------------------------- switching
def test_in_episode_switch_changes_the_reward_at_the_right_step():
    env = make("HalfCheetahVel-v0", task_switch_seconds=1.0)  # 20 steps of 0.05 s
    assert env.steps_per_task == 20
    env.reset(seed=2)
    tasks, switched = [], []
    for action in random_actions(env, 45, seed=2):
        x_before = env.data.qpos[0]
        _, reward, _, _, info = env.step(action)
        velocity = (env.data.qpos[0] - x_before) / env.dt
        assert reward == pytest.approx(-abs(velocity - info["task"]["velocity"]) - 0.05 * np.sum(np.square(action)))
        tasks.append(info["task"]["velocity"])
        switched.append(info["task_switched"])
    assert [i for i, flag in enumerate(switched) if flag] == [20, 40]
    assert tasks[19] != tasks[20] and len(set(tasks[:20])) == len(set(tasks[20:40])) == 1


def test_in_episode_switch_changes_the_dynamics_at_the_right_step():
    env = make("Walker2dRandParams-v0", task_switch_seconds=0.16, reset_noise_scale=0.0)  # 10 steps of 0.016 s
    twin = make("Walker2dRandParams-v0", reset_noise_scale=0.0)
    env.reset(seed=4)
    twin.reset(seed=4, options={"task": env.get_task()})
    action = np.full(6, 0.3)
    for step in range(11):
        _, _, _, _, info = env.step(action)
        _, _, _, _, twin_info = twin.step(action)  # keeps the first task
        if step < 10:
            assert not info["task_switched"]
            np.testing.assert_array_equal(env.data.qpos, twin.data.qpos)
    assert info["task_switched"] and info["task"] != twin_info["task"]
    np.testing.assert_allclose(env.model.body_mass, env.default_parameters["body_mass"] * info["task"]["body_mass"])
    assert not np.allclose(env.data.qvel, twin.data.qvel)  # the new masses already act on the switching step


# ---------------------------------------------------------------------------------------------- determinism, errors
@pytest.mark.parametrize("env_id", FAMILY_IDS)
def test_same_seed_same_everything(env_id):
    def run(seed):
        env = gym.make(env_id, task_switch_seconds=gym.make(env_id).unwrapped.dt * 7)
        obs, info = env.reset(seed=seed)
        trace = [obs.copy()]
        tasks = [info["task"]]
        for action in random_actions(env, 30, seed=seed):
            obs, reward, terminated, truncated, info = env.step(action)
            trace += [obs.copy(), np.array([reward])]
            tasks.append(info["task"])
            if terminated or truncated:
                obs, info = env.reset()
                tasks.append(info["task"])
        return np.concatenate(trace), tasks, env.unwrapped.sample_tasks(3)

    first, again, other = run(0), run(0), run(1)
    np.testing.assert_array_equal(first[0], again[0])
    assert first[1:] == again[1:]
    assert first[1] != other[1]


@pytest.mark.parametrize(
    "env_id, kwargs, message",
    [
        ("HalfCheetahVel-v0", {"velocity_range": (3.0, 1.0)}, "velocity_range"),
        ("HalfCheetahVel-v0", {"tasks": "maml"}, "unknown task set 'maml'"),
        ("HalfCheetahVel-v0", {"tasks": []}, "non-empty sequence"),
        ("HalfCheetahVel-v0", {"tasks": [{"velocity": 1.0}, {"velocity": float("nan")}]}, r"tasks\[1\]"),
        ("AntDir-v0", {"direction_angles": []}, "direction_angles"),
        ("AntDir-v0", {"tasks": "pearl-train"}, "named sets are \\[\\]"),
        ("AntGoal-v0", {"goal_radius": -1.0}, "goal_radius"),
        ("HumanoidDir-v0", {"direction_angles": [0.0, float("inf")]}, "direction_angles"),
        ("HopperRandParams-v0", {"log_scale_limit": -1.0}, "log_scale_limit"),
        ("Walker2dRandParams-v0", {"rand_params": ("mass",)}, "rand_params"),
        ("PointRobot-v0", {"max_step": float("nan")}, "max_step"),
        ("SparsePointRobot-v0", {"goal_radius": 0.0}, "goal_radius"),
        ("SparsePointRobot-v0", {"task_switch_seconds": -1.0}, "task_switch_seconds"),
    ],
)
def test_bad_kwargs_raise(env_id, kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make(env_id, **kwargs)


@pytest.mark.parametrize(
    "env_id, task, message",
    [
        ("HalfCheetahVel-v0", {"velocity": float("inf")}, "velocity"),
        ("HalfCheetahVel-v0", {"goal": 1.0}, "keys"),
        ("HalfCheetahDir-v0", {"direction": 0}, "direction"),
        ("AntDir-v0", {"angle": "north"}, "angle"),
        ("AntGoal-v0", {"goal": (1.0, 2.0, 3.0)}, "goal"),
        ("Walker2dRandParams-v0", None, "body_mass"),
        ("PointRobot-v0", {"goal": (float("nan"), 0.0)}, "goal"),
    ],
)
def test_invalid_task_raises_and_keeps_the_old_task(env_id, task, message):
    env = make(env_id)
    env.reset(seed=0)
    before = env.get_task()
    if task is None:  # a rand-params task with one negative factor
        task = dict(before, body_mass=(-1.0,) + before["body_mass"][1:])
    with pytest.raises(ValueError, match=message):
        env.set_task(task)
    assert env.get_task() == before


@pytest.mark.parametrize("env_id", FAMILY_IDS)
def test_bad_actions_raise_and_blow_ups_are_flagged(env_id):
    env = make(env_id)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="non-finite"):
        env.step(np.full(env.action_space.shape, np.nan))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(env.action_space.shape[0] + 1))
    if env_id == "SparsePointRobot-v0":
        return  # nothing is simulated: no physics to diverge
    last, *_ = env.step(np.zeros(env.action_space.shape))
    env.data.qvel[:] = np.nan
    obs, reward, terminated, _, info = env.step(np.zeros(env.action_space.shape))
    assert terminated and info["physics_diverged"] and np.isfinite(obs).all() and reward == 0.0
    np.testing.assert_array_equal(obs, last)


def test_ant_goal_never_terminates_in_model_rollouts():
    assert not make("AntGoal-v0").termination_fn(np.zeros((2, 107))).any()


# ---------------------------------------------------------------------------------------------- pickling, vector envs
@pytest.mark.parametrize("env_id", FAMILY_IDS)
def test_pickle_keeps_constructor_arguments_and_state(env_id):
    env = make(env_id, task_switch_seconds=0.3, task_in_obs=True)
    env.reset(seed=0)
    clone = pickle.loads(pickle.dumps(env))
    assert clone.steps_per_task == env.steps_per_task and clone.observation_space == env.observation_space
    assert clone.task_switch_seconds == 0.3
    if env_id == "SparsePointRobot-v0":
        assert make(env_id, tasks="pearl-test").task_set == pickle.loads(pickle.dumps(make(env_id, tasks="pearl-test"))).task_set


def test_subproc_vec_env_and_make_vec():
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    # SB3's worker processes do not import meta_mujoco_envs: the "module:ID" form registers it there.
    vec = make_vec_env(
        "meta_mujoco_envs:Walker2dRandParams-v0", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv,
        env_kwargs={"task_switch_seconds": 0.08},
    )
    vec.reset()
    for _ in range(6):
        _, _, _, infos = vec.step(np.zeros((2, 6)))
    assert infos[0]["task_switched"] and infos[0]["task"] != infos[1]["task"]
    vec.close()
    envs = gym.make_vec("HalfCheetahVel-v0", num_envs=2, vectorization_mode="sync", tasks="pearl-test")
    envs.reset(seed=0)
    obs, *_ = envs.step(np.zeros((2, 6)))
    assert obs.shape == (2, 17)
    envs.close()


# ---------------------------------------------------------------------------------------------- pictures
POINT_RENDER_CODE = """
import sys
sys.path.insert(0, "examples")
from render_envs import render_frame
frame, _ = render_frame("SparsePointRobot-v0")
red, green, blue = frame.astype(int).transpose(2, 0, 1)
print(int((green - red > 80).sum()), int((red - green > 80).sum()))  # the green disc, the red point on grey
"""


def test_point_robot_frame_shows_the_goal_disc_and_the_point():
    """What examples/render_envs.py renders into docs/images: the rewarded disc around the goal and the point."""
    out = subprocess.run(
        [sys.executable, "-c", POINT_RENDER_CODE], cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "MUJOCO_GL": "egl"}, capture_output=True, text=True,
    )
    if out.returncode != 0:
        pytest.skip(f"no offscreen OpenGL (MUJOCO_GL=egl) on this machine: {out.stderr.strip().splitlines()[-1:]}")
    green, red = map(int, out.stdout.split())
    assert green > 1000 and red > 30  # the disc of radius 0.2 is 25 times the point's area
