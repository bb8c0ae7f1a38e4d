"""The Gymnasium v5 contract, for every id: what Gymnasium's own MuJoCo tests check on its v5 envs, and identity.

Each id is one row of ``V5_TWINS``: its v5 base, and the task (with constructor arguments) under which the task
changes nothing, with how the base must be fed to act the same. Under that task the env must be its v5 base bit
for bit: the same compiled model, observations, rewards and ``info`` over 1000 steps of the same seeded actions.
Every id, twin or not, must keep what Gymnasium checks on v5 (``tests/envs/mujoco/test_mujoco_v5.py`` and the
generic ``tests/envs/test_envs.py`` of Gymnasium): info positions and velocities, the reward as the sum of its
terms, reset noise, ``exclude_current_positions_from_observation``, ``frame_skip`` and ``dt``, the observation
structure, determinism, pickling, vector envs, render modes, and new data on every call.
"""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.envs.mujoco.humanoid_v5 import mass_center
from gymnasium.utils.env_checker import check_env, check_returned_data_not_reused

import meta_mujoco_envs  # noqa: F401  (registers the ids)


def _identity(action: np.ndarray) -> np.ndarray:
    return action


def _zeroed(*entries: int) -> Callable[[np.ndarray], np.ndarray]:
    """The action with ``entries`` set to 0, in the action's dtype."""

    def zero(action: np.ndarray) -> np.ndarray:
        action = action.copy()
        action[list(entries)] = 0
        return action

    return zero


def _unit_factors(n_bodies: int, n_dofs: int, n_geoms: int) -> dict[str, tuple]:
    """The rand-params task whose every factor is 1: the model's defaults."""
    return {
        "body_mass": (1.0,) * n_bodies,
        "body_inertia": ((1.0,) * 3,) * n_bodies,
        "dof_damping": (1.0,) * n_dofs,
        "geom_friction": ((1.0,) * 3,) * n_geoms,
    }


@dataclass(frozen=True)
class V5Twin:
    """How an id relates to its Gymnasium v5 base.

    :param base_id: the Gymnasium v5 id it is built on.
    :param neutral_task: a task that changes nothing (put in force with ``reset(options={"task": ...})``);
        ``None`` for an id with a robot or world of its own, which has no twin (only the contract is checked).
    :param neutral_kwargs: constructor arguments that make ``neutral_task`` change nothing, besides
        ``task_switch_seconds=None``.
    :param base_action: the action to give the base for the action given to ours (the crippled leg's mask).
    :param cosmetic_fields: MuJoCo model fields the neutral task changes for rendering only (a red leg).
    :param reward_sum: the reward from its ``info`` terms, for an env whose reward replaces a v5 term;
        ``None``: the base's (``V5_REWARD_SUM``).
    """

    base_id: str
    neutral_task: dict[str, Any] | None
    neutral_kwargs: dict[str, Any] = field(default_factory=dict)
    base_action: Callable[[np.ndarray], np.ndarray] = _identity
    cosmetic_fields: tuple[str, ...] = ()
    reward_sum: Callable[[dict[str, Any]], float] | None = None


V5_TWINS = {
    "HalfCheetahFwdBwd-v0": V5Twin("HalfCheetah-v5", {"direction": 1}),
    "HalfCheetahPier-v0": V5Twin("HalfCheetah-v5", None),
    "AntFwdBwd-v0": V5Twin("Ant-v5", {"direction": 1}),
    # Leg 0 is driven by hip_1 and ankle_1, entries 2 and 3 of Ant-v5's action.
    "AntCrippledLeg-v0": V5Twin(
        "Ant-v5", {"crippled_leg": 0}, {"shrink_crippled_leg": False}, _zeroed(2, 3), ("geom_rgba",)
    ),
    "Walker2dRandomParams-v0": V5Twin("Walker2d-v5", {"torso_mass_scale": 1.0, "friction_scale": 1.0}),
    "HumanoidDirec-v0": V5Twin("Humanoid-v5", {"direction": 1}),
    # The classic suite. Goal velocity and goal position replace v5's forward term: no task changes nothing.
    "HalfCheetahVel-v0": V5Twin("HalfCheetah-v5", None, reward_sum=lambda i: i["reward_forward"] + i["reward_ctrl"]),
    "HalfCheetahDir-v0": V5Twin("HalfCheetah-v5", {"direction": 1}, {"ctrl_cost_weight": 0.1}),
    "AntDir-v0": V5Twin("Ant-v5", {"angle": 0.0}, {"include_cfrc_ext_in_observation": True}),
    "AntGoal-v0": V5Twin(
        "Ant-v5", None, reward_sum=lambda i: i["reward_goal"] + (i["reward_survive"] - (-i["reward_ctrl"] + -i["reward_contact"]))
    ),
    "HumanoidDir-v0": V5Twin("Humanoid-v5", {"angle": 0.0}),
    "HopperRandParams-v0": V5Twin("Hopper-v5", _unit_factors(n_bodies=5, n_dofs=6, n_geoms=5), {"frame_skip": 4}),
    "Walker2dRandParams-v0": V5Twin("Walker2d-v5", _unit_factors(n_bodies=8, n_dofs=9, n_geoms=8), {"frame_skip": 4}),
}
TWIN_IDS = [env_id for env_id, twin in V5_TWINS.items() if twin.neutral_task is not None]


def _qpos_x(env) -> np.ndarray:
    return env.data.qpos[:1].copy()


def _torso_xy(env) -> np.ndarray:
    return env.data.body("torso").xpos[:2].copy()


def _mass_center_xy(env) -> np.ndarray:
    return mass_center(env.model, env.data)[:2].copy()


# Per v5 base, as Gymnasium's tests define them: the position whose change over dt is info's velocity (x, or x and
# y), and the reward as the sum of its info terms, in v5's order of operations (the tests compare with ==).
V5_POSITION = {
    "HalfCheetah-v5": _qpos_x,
    "Walker2d-v5": _qpos_x,
    "Hopper-v5": _qpos_x,
    "Ant-v5": _torso_xy,
    "Humanoid-v5": _mass_center_xy,
}
V5_REWARD_SUM = {
    "HalfCheetah-v5": lambda i: i["reward_forward"] + i["reward_ctrl"],
    "Walker2d-v5": lambda i: i["reward_forward"] + i["reward_survive"] + i["reward_ctrl"],
    "Hopper-v5": lambda i: i["reward_forward"] + i["reward_survive"] + i["reward_ctrl"],
    "Ant-v5": lambda i: (i["reward_survive"] + i["reward_forward"]) - (-i["reward_ctrl"] + -i["reward_contact"]),
    "Humanoid-v5": lambda i: (i["reward_forward"] + i["reward_survive"]) + (i["reward_ctrl"] + i["reward_contact"]),
}
V5_HEALTHY_REWARD = ("Ant-v5", "Walker2d-v5", "Hopper-v5", "Humanoid-v5")  # info["reward_survive"]: 0 if unhealthy
# What Gymnasium's own check_env says of every v5 MuJoCo env (unbounded observations), and ours' documented warning
# that a registered time limit counted in steps sees fewer switches at a smaller frame_skip.
EXPECTED_WARNINGS = (
    "observation space minimum value is -infinity",
    "observation space maximum value is infinity",
    "registered time limit",
)


@pytest.fixture(autouse=True)
def away_from_the_repository(tmp_path, monkeypatch):
    """Gymnasium's HalfCheetah-v5 has MuJoCo log its settotalmass deprecation to MUJOCO_LOG.TXT in the working
    directory: the bases are built in a temporary one."""
    monkeypatch.chdir(tmp_path)


def make(env_id: str, **kwargs):
    return gym.make(env_id, **kwargs).unwrapped


def make_twins(env_id: str, **kwargs):
    """Ours under its neutral task's arguments, and its v5 base, with the same extra ``kwargs``."""
    twin = V5_TWINS[env_id]
    return make(env_id, task_switch_seconds=None, **twin.neutral_kwargs, **kwargs), make(twin.base_id, **kwargs)


def same_bits(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are the same numbers of the same dtype, bit for bit."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def assert_info_equal(ours: dict, base: dict, where: str) -> None:
    """Every entry of the base's ``info`` is in ours, bit for bit (ours adds the task's entries)."""
    for key, value in base.items():
        assert key in ours and same_bits(ours[key], value), f"{where}: info[{key!r}] {ours.get(key)!r} != {value!r}"


def _model_bytes(model: mujoco.MjModel) -> bytes:
    """The compiled model as MuJoCo saves it (MJB): every number of the model, names included."""
    buffer = np.empty(mujoco.mj_sizeModel(model), dtype=np.uint8)
    mujoco.mj_saveModel(model, None, buffer)
    return buffer.tobytes()


# ---------------------------------------------------------------------------------------------- identity with v5
@pytest.mark.parametrize("env_id", TWIN_IDS)
def test_compiled_model_is_the_v5_base_model(env_id):
    ours, base = make_twins(env_id)
    ours.reset(seed=0, options={"task": V5_TWINS[env_id].neutral_task})
    model = copy.deepcopy(ours.model)
    for name in V5_TWINS[env_id].cosmetic_fields:
        getattr(model, name)[:] = getattr(base.model, name)
    assert _model_bytes(model) == _model_bytes(base.model)


@pytest.mark.parametrize("env_id", TWIN_IDS)
def test_identical_to_the_v5_base_under_a_task_that_changes_nothing(env_id):
    """1000 steps of the same seeded float32 actions (as SB3 gives them), new seeds after each termination."""
    twin = V5_TWINS[env_id]
    ours, base = make_twins(env_id)
    ours.action_space.seed(0)
    episode, step_in_episode = 0, 0
    for step in range(1000):
        if step_in_episode == 0:
            obs, info = ours.reset(seed=episode, options={"task": twin.neutral_task})
            base_obs, base_info = base.reset(seed=episode)
            assert same_bits(obs, base_obs) and ours.get_task() == twin.neutral_task, f"reset {episode}"
            assert_info_equal(info, base_info, f"reset {episode}")
        action = ours.action_space.sample()
        assert action.dtype == np.float32
        obs, reward, terminated, truncated, info = ours.step(action)
        base_obs, base_reward, base_terminated, base_truncated, base_info = base.step(twin.base_action(action))
        where = f"step {step} (episode {episode}, step {step_in_episode})"
        assert same_bits(obs, base_obs), where
        assert same_bits(reward, base_reward), f"{where}: reward {reward!r} != {base_reward!r}"
        assert (terminated, truncated) == (base_terminated, base_truncated), where
        assert_info_equal(info, base_info, where)
        assert not info["task_switched"] and not info["physics_diverged"]
        step_in_episode += 1
        if terminated:
            episode, step_in_episode = episode + 1, 0


# ---------------------------------------------------------------------------------------------- v5 contract
@pytest.mark.parametrize("env_id", V5_TWINS)
def test_info_positions_and_velocities(env_id):
    """With the positions in the observation, they are info's; info's velocities are the position change over dt."""
    env = make(env_id, exclude_current_positions_from_observation=False)
    position = V5_POSITION[V5_TWINS[env_id].base_id]
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(5):
        before = position(env)
        obs, _, _, _, info = env.step(env.action_space.sample())
        velocity = (position(env) - before) / env.dt
        assert obs[0] == info["x_position"] == env.data.qpos[0]
        assert velocity[0] == info["x_velocity"]
        if velocity.size == 2:
            assert obs[1] == info["y_position"] == env.data.qpos[1]
            assert velocity[1] == info["y_velocity"]


@pytest.mark.parametrize("env_id", V5_TWINS)
def test_reward_is_the_sum_of_its_info_terms(env_id):
    env = make(env_id, task_switch_seconds=1.0)
    twin = V5_TWINS[env_id]
    reward_sum = twin.reward_sum or V5_REWARD_SUM[twin.base_id]
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(100):
        _, reward, terminated, _, info = env.step(env.action_space.sample())
        assert reward == reward_sum(info)
        if terminated:
            env.reset()


@pytest.mark.parametrize("env_id", [i for i, twin in V5_TWINS.items() if twin.base_id in V5_HEALTHY_REWARD])
def test_healthy_reward_is_zero_exactly_on_termination(env_id):
    env = make(env_id, reset_noise_scale=0.0)
    if not env._terminate_when_unhealthy:
        pytest.skip(f"{env_id} does not terminate when unhealthy")
    env.reset(seed=0)
    env.action_space.seed(1)
    for _ in range(1000):
        _, _, terminated, _, info = env.step(env.action_space.sample())
        assert (info["reward_survive"] == 0) == terminated
        if terminated:
            break
    assert terminated, "no termination in 1000 random steps: the test did not test"


@pytest.mark.parametrize("env_id", V5_TWINS)
def test_reset_noise_and_state(env_id):
    """No noise: the initial state exactly; noise of scale s: positions within s of it, and a different state."""
    env = make(env_id, reset_noise_scale=0.0)
    obs, info = env.reset(seed=0)
    np.testing.assert_array_equal(env.data.qpos, env.init_qpos)
    np.testing.assert_array_equal(env.data.qvel, env.init_qvel)
    assert info.keys() >= make(V5_TWINS[env_id].base_id).reset(seed=0)[1].keys()
    noisy = make(env_id, reset_noise_scale=0.05)
    noisy.reset(seed=0)
    assert np.abs(noisy.data.qpos - noisy.init_qpos).max() <= 0.05
    assert not np.array_equal(noisy.data.qpos, noisy.init_qpos) and not np.array_equal(noisy.data.qvel, noisy.init_qvel)


@pytest.mark.parametrize("exclude_positions", [True, False])
@pytest.mark.parametrize("task_in_obs, switch_in_obs", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("env_id", V5_TWINS)
def test_observation_structure_adds_up(env_id, exclude_positions, task_in_obs, switch_in_obs):
    """v5's structure describes the robot's part; the task's and the switch flag's entries are counted too."""
    kwargs = {"exclude_current_positions_from_observation": exclude_positions}
    neutral = V5_TWINS[env_id].neutral_kwargs  # v5's own observation options, where an env's defaults differ
    env = make(env_id, task_in_obs=task_in_obs, task_switch_in_obs=switch_in_obs, **neutral, **kwargs)
    base = make(V5_TWINS[env_id].base_id, **kwargs)
    structure = env.observation_structure
    obs, info = env.reset(seed=0)
    assert sum(size for name, size in structure.items() if name != "skipped_qpos") == obs.size
    assert structure["skipped_qpos"] + structure["qpos"] == base.model.nq and structure["qvel"] == base.model.nv
    assert structure.get("task", 0) == task_in_obs * env.task_features(info["task"]).size
    assert structure.get("task_switched", 0) == int(switch_in_obs)
    assert {k: v for k, v in structure.items() if k not in ("task", "task_switched")} == base.observation_structure


@pytest.mark.parametrize("env_id", V5_TWINS)
def test_frame_skip_sets_dt_and_passes_the_env_checker(env_id):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = make(env_id, frame_skip=2)
        assert env.dt == env.model.opt.timestep * 2
        if env.task_switch_seconds is not None:
            assert env.steps_per_task == round(env.task_switch_seconds / env.dt)
        env.reset(seed=0)
        time = env.data.time
        env.step(env.action_space.sample())
        assert env.data.time == pytest.approx(time + env.dt, abs=1e-12)
        check_env(make(env_id, frame_skip=2), skip_render_check=True)
    unexpected = [str(w.message) for w in caught if not any(text in str(w.message) for text in EXPECTED_WARNINGS)]
    assert not unexpected


def _rollout(env, seed: int, n_steps: int) -> list:
    """Reset with ``seed``, then ``n_steps`` of actions seeded by ``seed``: everything the env returned."""
    env.action_space.seed(seed)
    returned = [env.reset(seed=seed)]
    for _ in range(n_steps):
        returned.append(env.step(env.action_space.sample()))
        if returned[-1][2]:
            returned.append(env.reset())
    return returned


def _assert_same_rollouts(a: list, b: list) -> None:
    assert len(a) == len(b)
    for t, (x, y) in enumerate(zip(a, b)):
        assert len(x) == len(y), t
        for u, v in zip(x, y):
            if isinstance(u, dict):
                assert u.keys() == v.keys(), t
                assert all(u[k] == v[k] if isinstance(u[k], dict) else same_bits(u[k], v[k]) for k in u), t
            else:
                assert same_bits(u, v), t


@pytest.mark.parametrize("env_id", V5_TWINS)
def test_seeded_runs_with_switches_are_identical(env_id):
    kwargs = {"task_switch_seconds": 10 * make(env_id).dt}
    first, second = _rollout(make(env_id, **kwargs), 3, 60), _rollout(make(env_id, **kwargs), 3, 60)
    assert any(info["task_switched"] for *_, info in first[1:])
    _assert_same_rollouts(first, second)


@pytest.mark.parametrize("env_id", V5_TWINS)
def test_pickled_env_runs_the_same(env_id):
    env = make(env_id, task_switch_seconds=1.0, task_in_obs=True, reset_noise_scale=0.2)
    env.reset(seed=5)
    clone = pickle.loads(pickle.dumps(env))
    assert clone.observation_space == env.observation_space and clone.task_switch_seconds == 1.0
    _assert_same_rollouts(_rollout(env, 1, 40), _rollout(clone, 1, 40))


@pytest.mark.parametrize("env_id", V5_TWINS)
def test_vector_env_sub_envs_run_as_single_envs(env_id):
    envs = gym.make_vec(env_id, num_envs=2, vectorization_mode="sync")
    singles = [gym.make(env_id) for _ in range(2)]
    obs, _ = envs.reset(seed=[7, 8])
    rng = np.random.default_rng(0)
    for i, env in enumerate(singles):
        single_obs, single_info = env.reset(seed=7 + i)
        assert same_bits(obs[i], single_obs) and envs.envs[i].unwrapped.get_task() == single_info["task"]
    for _ in range(10):
        actions = rng.uniform(-0.4, 0.4, envs.action_space.shape).astype(np.float32)
        obs, rewards, terminated, _, _ = envs.step(actions)
        for i, env in enumerate(singles):
            single_obs, single_reward, single_terminated, *_ = env.step(actions[i])
            assert same_bits(obs[i], single_obs) and rewards[i] == single_reward
            assert terminated[i] == single_terminated
        if terminated.any():
            break
    envs.close()


@pytest.mark.parametrize("task_in_obs", [False, True])
@pytest.mark.parametrize("env_id", V5_TWINS)
def test_every_call_returns_new_data_even_on_a_blow_up(env_id, task_in_obs):
    env = make(env_id, task_in_obs=task_in_obs)
    check_returned_data_not_reused(env)
    obs0, _ = env.reset(seed=0)
    obs1, *_ = env.step(np.zeros(env.action_space.shape))
    kept = obs1.copy()
    obs1 *= 0.0  # a user normalising in place what it holds
    obs0 += 1.0
    env.data.qvel[:] = np.nan  # a diverged state, as a numerical explosion would leave it
    obs2, reward, terminated, _, info = env.step(np.zeros(env.action_space.shape))
    assert info["physics_diverged"] and terminated and reward == 0.0
    np.testing.assert_array_equal(obs2, kept)  # the last finite observation, not the user's edit of it
    obs3, *_, info = env.step(np.zeros(env.action_space.shape))
    assert info["physics_diverged"]
    for earlier in (obs0, obs1, obs2):
        assert not np.shares_memory(obs3, earlier)
    assert not np.shares_memory(obs2, obs1) and not np.shares_memory(obs2, obs0)


RENDER_CODE = """
import sys, gymnasium as gym
import meta_mujoco_envs
def frames(env_id, mode):
    env = gym.make(env_id, render_mode=mode, width=64, height=48)
    env.reset(seed=0)
    frame = env.render()
    env.close()
    return frame if mode == "rgbd_tuple" else (frame,)
def describe(frame):
    return (frame.shape, frame.dtype.name, bool(frame.std() > 0))
for env_id in sys.argv[1:]:
    print(env_id, *map(describe, frames(env_id, "rgbd_tuple")))
print(*[describe(*frames(sys.argv[1], mode)) for mode in ("rgb_array", "depth_array")])
"""


def test_render_modes():
    """Frames of the requested size, not blank, for every id in ``rgbd_tuple`` mode (an RGB and a depth image), and
    in ``rgb_array`` and ``depth_array`` for one (the same Gymnasium code for every env). Needs EGL: each frame's mode
    opens an OpenGL context (about 1.5 s). That the frames are the v5 base's own under a neutral task follows from
    the identical model and state checked above."""
    for env_id, twin in V5_TWINS.items():
        assert make(env_id).metadata["render_modes"] == make(twin.base_id).metadata["render_modes"]
        assert make(env_id).metadata["render_fps"] == round(1 / make(env_id).dt)
    root = Path(__file__).resolve().parents[1]
    pythonpath = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])  # this checkout's package
    out = subprocess.run(
        [sys.executable, "-c", RENDER_CODE, *V5_TWINS],
        env={**os.environ, "MUJOCO_GL": "egl", "PYTHONPATH": pythonpath}, capture_output=True, text=True,
    )
    if out.returncode != 0:
        pytest.skip(f"no offscreen OpenGL (MUJOCO_GL=egl) on this machine: {out.stderr.strip().splitlines()[-1:]}")
    rgb, depth = "((48, 64, 3), 'uint8', True)", "((48, 64), 'float32', True)"
    assert out.stdout.splitlines() == [f"{env_id} {rgb} {depth}" for env_id in V5_TWINS] + [f"{rgb} {depth}"]
