"""PEARL's and VariBAD's 2-D navigation tasks: ``PointRobot-v0`` (dense reward) and ``SparsePointRobot-v0``.

The originals are plain ``gym.Env`` classes without physics; here the point is a MuJoCo body moved
kinematically (its position is set, nothing is simulated), so that the envs render like the others and share
their task machinery.
"""

from __future__ import annotations

import math
from typing import Any

import mujoco
import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
from gymnasium.spaces import Box

from meta_mujoco_envs.base import Task, asset_path
from meta_mujoco_envs.checks import is_real
from meta_mujoco_envs.classic_suite import (
    PEARL_POINT_ROBOT_SPLITS,
    PEARL_SPARSE_POINT_ROBOT_SPLITS,
    ClassicTaskEnv,
    check_goal,
)

DEFAULT_CAMERA_CONFIG = {"distance": 4.0, "elevation": -90.0, "azimuth": 90.0, "lookat": np.array([0.0, 0.0, 0.0])}


class PointRobot(MujocoEnv, utils.EzPickle):
    """A point on the plane under position control, written in the style of Gymnasium's v5 robots.

    A step moves the point by ``max_step * clip(action, -1, 1)``: PEARL's ``state + action`` behind its
    ``NormalizedBoxEnv`` (which maps ``[-1, 1]`` to the action box ``[-0.1, 0.1]``) and VariBAD's
    ``state + 0.1 * clip(action)``.

    :param max_step: the largest move per step and coordinate (0.1 as the originals).
    :param reset_noise_scale: the start is uniform in ``[-s, s]^2``.
    """

    metadata = {"render_modes": ["human", "rgb_array", "depth_array"], "render_fps": 10}

    def __init__(
        self,
        xml_file: str | None = None,
        default_camera_config: dict[str, Any] = DEFAULT_CAMERA_CONFIG,
        max_step: float = 0.1,
        reset_noise_scale: float = 1.0,
        **kwargs: Any,
    ) -> None:
        utils.EzPickle.__init__(self, xml_file, default_camera_config, max_step, reset_noise_scale, **kwargs)
        for name, value in (("max_step", max_step), ("reset_noise_scale", reset_noise_scale)):
            if not is_real(value) or not 0.0 <= value < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        self._max_step = float(max_step)
        self._reset_noise_scale = float(reset_noise_scale)
        self._ctrl_cost_weight = 0.0  # no reward term depends on the action (read by action_reward_fn)
        observation_space = Box(low=-np.inf, high=np.inf, shape=(2,), dtype=np.float64)
        MujocoEnv.__init__(
            self,
            xml_file or asset_path("point_robot.xml"),
            frame_skip=1,
            observation_space=observation_space,
            default_camera_config=default_camera_config,
            **kwargs,
        )

    def step(self, action):
        self.data.qpos[:] = self.data.qpos + self._max_step * np.clip(action, -1.0, 1.0)
        self.data.time += self.dt
        mujoco.mj_kinematics(self.model, self.data)  # places the body for rendering; nothing is simulated
        observation = self._get_obs()
        reward, reward_info = self._get_rew()
        info = {"x_position": self.data.qpos[0], "y_position": self.data.qpos[1], **reward_info}
        if self.render_mode == "human":
            self.render()
        return observation, reward, False, False, info

    def _get_rew(self) -> tuple[float, dict[str, float]]:
        raise NotImplementedError

    def _get_obs(self) -> np.ndarray:
        return self.data.qpos.copy()

    def reset_model(self) -> np.ndarray:
        noise = self._reset_noise_scale
        self.set_state(self.init_qpos + self.np_random.uniform(-noise, noise, size=2), self.init_qvel)
        return self._get_obs()

    def _get_reset_info(self) -> dict[str, float]:
        return {"x_position": self.data.qpos[0], "y_position": self.data.qpos[1]}


class PointRobotEnv(ClassicTaskEnv, PointRobot):
    """
    ## Description
    A point on the plane must reach a goal position, hidden from the agent: PEARL's *point-robot*, one goal per
    episode as the original, or a new one every ``task_switch_seconds`` (the point has no physics; its time step
    is 0.1 s by convention).

    ## Action Space
    ``Box(-1, 1, (2,), float32)``: the move, times ``max_step`` (0.1), clipped to the box.

    ## Observation Space
    ``Box(-inf, inf, (2,), float64)``: the position; with ``task_in_obs=True`` two more entries, the goal.

    ## Rewards
    ``reward = -||position - goal||_2`` after the move (``info["reward_distance"]``; ``info["distance_to_goal"]``).

    ## Task
    ``{"goal": (x, y)}`` uniform in ``[-1, 1]^2`` (PEARL's ``randomize_tasks=True``); ``tasks="pearl-train"`` /
    ``"pearl-test"``: PEARL's 80 training / 20 evaluation goals (``np.random.seed(1337)``, exactly its values).
    PEARL's default without ``randomize_tasks`` is 8 hand-written debugging goals, not offered. Task API and
    ``info`` as ``HalfCheetahVel-v0``.

    ## Starting State
    Uniform in ``[-1, 1]^2`` (PEARL's; ``reset_noise_scale``).

    ## Episode End
    Never terminates; truncation at 20 steps (PEARL's; VariBAD runs 100: pass ``max_episode_steps=100``).

    ## Arguments
    ``max_step`` (0.1), ``reset_noise_scale`` (1.0), ``tasks``, ``task_switch_seconds`` (``None``), the package's
    other task arguments, ``render_mode``, ``width``, ``height``.

    ## Version History
    * v0: initial version.
    """

    NAMED_TASK_SETS = PEARL_POINT_ROBOT_SPLITS

    def _prepare_model(self) -> None:
        self._goal_site = self.model.site("goal").id

    def _sample_task(self, rng: np.random.Generator) -> Task:
        return {"goal": (float(rng.uniform(-1.0, 1.0)), float(rng.uniform(-1.0, 1.0)))}

    def _validate_task(self, task: Any) -> Task:
        return {"goal": check_goal(task)}

    def _apply_task(self) -> None:
        self._goal = np.array(self._task["goal"])
        self.model.site_pos[self._goal_site, :2] = self._goal  # drawn only

    def task_features(self, task: Task) -> np.ndarray:
        return np.array(task["goal"], dtype=np.float64)

    def distance_to_goal(self) -> float:
        """Euclidean distance from the point to the goal."""
        return float(np.linalg.norm(self.data.qpos - self._goal))

    def _get_rew(self) -> tuple[float, dict[str, float]]:
        distance = self.distance_to_goal()
        return -distance, {"reward_distance": -distance, "distance_to_goal": distance}


class SparsePointRobotEnv(PointRobotEnv):
    """
    ## Description
    A point on the plane must reach a goal on the upper half of the unit circle, and is rewarded only within
    ``goal_radius`` of it: PEARL's and VariBAD's *sparse-point-robot*, one goal per episode as the originals, or a
    new one every ``task_switch_seconds``.

    ## Action Space
    ``Box(-1, 1, (2,), float32)``, as ``PointRobot-v0``.

    ## Observation Space
    ``Box(-inf, inf, (2,), float64)``, as ``PointRobot-v0``.

    ## Rewards
    ``reward = 1 - ||position - goal||_2`` within ``goal_radius`` (0.2) of the goal, 0 outside: PEARL's sparse
    reward, which this env returns as VariBAD's does (PEARL's env returns the dense reward and puts the sparse one
    in ``info``); ``info["reward_sparse"]`` is the reward, ``info["reward_dense"]`` PEARL's dense reward
    ``-||position - goal||_2`` (not part of the reward), ``info["distance_to_goal"]`` the distance.

    ## Task
    ``{"goal": (cos a, sin a)}``, ``a ~ U(0, pi)`` (VariBAD's); ``tasks="pearl-train"`` / ``"pearl-test"``:
    PEARL's 80 / 20 goals (100 evenly spaced angles shuffled after ``np.random.seed(1337)``, exactly its values).
    Task API and ``info`` as ``HalfCheetahVel-v0``.

    ## Starting State
    The origin (``reset_noise_scale=0``), as both originals.

    ## Episode End
    Never terminates; truncation at 20 steps (PEARL's; VariBAD runs 100: pass ``max_episode_steps=100``).

    ## Arguments
    ``goal_radius`` (0.2), ``max_step`` (0.1), ``reset_noise_scale`` (0.0), ``tasks``, ``task_switch_seconds``
    (``None``), the package's other task arguments, ``render_mode``, ``width``, ``height``.

    ## Version History
    * v0: initial version.
    """

    NAMED_TASK_SETS = PEARL_SPARSE_POINT_ROBOT_SPLITS

    def __init__(self, goal_radius: float = 0.2, reset_noise_scale: float = 0.0, **kwargs: Any) -> None:
        if not is_real(goal_radius) or not 0.0 < goal_radius < math.inf:
            raise ValueError(f"goal_radius must be a positive finite number, got {goal_radius!r}")
        self._goal_radius = float(goal_radius)
        super().__init__(reset_noise_scale=reset_noise_scale, **kwargs)
        self.model.site_size[self._goal_site, 0] = self._goal_radius  # the rewarded disc, drawn
        utils.EzPickle.__init__(self, goal_radius=goal_radius, reset_noise_scale=reset_noise_scale, **kwargs)

    def _sample_task(self, rng: np.random.Generator) -> Task:
        angle = rng.uniform(0.0, np.pi)
        return {"goal": (math.cos(angle), math.sin(angle))}

    def _get_rew(self) -> tuple[float, dict[str, float]]:
        distance = self.distance_to_goal()
        sparse = 1.0 - distance if distance <= self._goal_radius else 0.0
        return sparse, {"reward_sparse": sparse, "reward_dense": -distance, "distance_to_goal": distance}
