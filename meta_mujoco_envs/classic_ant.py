"""The classic suite's ants: ``AntDir-v0`` (walk in a direction of the plane) and ``AntGoal-v0`` (walk to a goal
position), PEARL's and VariBAD's *ant-dir* and *ant-goal* on Gymnasium's ``Ant-v5``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.ant_v5 import AntEnv

from meta_mujoco_envs.base import Task
from meta_mujoco_envs.checks import check_task_keys, is_real, real_array
from meta_mujoco_envs.classic_suite import ClassicTaskEnv, check_goal
from meta_mujoco_envs.direction import AntHealthRule


def check_angle(task: Any) -> float:
    """The finite angle of an ``{"angle": radians}`` task; a ``ValueError`` naming what is wrong otherwise."""
    check_task_keys(task, ("angle",))
    angle = task["angle"]
    if not is_real(angle) or not math.isfinite(angle):
        raise ValueError(f"task['angle'] must be a finite number of radians, got {angle!r}")
    return float(angle)


def check_angles(angles: Any) -> tuple[float, ...] | None:
    """``None`` or a non-empty tuple of finite angles (the ``direction_angles`` argument)."""
    if angles is None:
        return None
    values = real_array("direction_angles", angles)
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
        raise ValueError(f"direction_angles must be None or a non-empty sequence of finite radians, got {angles!r}")
    return tuple(float(a) for a in values)


class PlanarDirectionTaskEnv(ClassicTaskEnv):
    """Mixin: the task ``{"angle": theta}`` asks for velocity along ``(cos theta, sin theta)`` in the plane.

    The v5 robot computes its velocity from the positions before and after the step but hands only the x part to
    ``_get_rew``; this mixin keeps the position before the step (:meth:`planar_position`) to get the y part.
    """

    def planar_position(self) -> np.ndarray:
        """The ``(x, y)`` position whose change the v5 robot calls its velocity."""
        raise NotImplementedError

    def _sample_task(self, rng: np.random.Generator) -> Task:
        if self._direction_angles is not None:
            return {"angle": self._direction_angles[int(rng.integers(len(self._direction_angles)))]}
        return {"angle": float(rng.uniform(0.0, 2.0 * np.pi))}

    def _validate_task(self, task: Any) -> Task:
        return {"angle": check_angle(task)}

    def _apply_task(self) -> None:
        self._direction = (math.cos(self._task["angle"]), math.sin(self._task["angle"]))

    def task_features(self, task: Task) -> np.ndarray:
        return np.array([math.cos(task["angle"]), math.sin(task["angle"])])

    def step(self, action):
        self._xy_before = self.planar_position().copy()
        return super().step(action)

    def _get_rew(self, x_velocity: float, action: np.ndarray):
        # The v5 forward term is forward_reward_weight times the velocity it is given: given the velocity's
        # component along the task's direction, it is the originals' term.
        y_velocity = (self.planar_position()[1] - self._xy_before[1]) / self.dt
        cos, sin = self._direction
        return super()._get_rew(cos * x_velocity + sin * y_velocity, action)


class AntDirEnv(AntHealthRule, PlanarDirectionTaskEnv, AntEnv):
    """
    ## Description
    Gymnasium's ``Ant-v5`` must walk in a direction of the plane, hidden from the agent: PEARL's *ant-dir*
    (angle ``U(0, 2 pi)``; ``direction_angles=(0, math.pi)`` gives its forward/backward variant), one direction
    per episode as in the originals, or a new one every ``task_switch_seconds``.

    ## Action Space
    ``Box(-1, 1, (8,), float32)``, as ``Ant-v5``.

    ## Observation Space
    ``Box(-inf, inf, (27,), float64)``: ``qpos[2:]`` and ``qvel``, PEARL's ant observation (``Ant-v5`` with
    ``include_cfrc_ext_in_observation=False``; pass ``True`` for v5's 105 entries). With ``task_in_obs=True`` two
    more entries, ``(cos theta, sin theta)``.

    ## Rewards
    ``reward = <torso_xy_velocity, (cos theta, sin theta)> + healthy_reward - 0.5 * sum(action**2)
    - 5e-4 * sum(clip(cfrc_ext, -1, 1)**2)``: PEARL's, the ``Ant-v5`` reward whose forward term is the torso's
    velocity along the task's direction. As v5, the healthy reward is paid while healthy (PEARL pays it on the
    terminating step too). Terms in ``info`` as ``Ant-v5`` (``reward_forward`` the directional term).

    ## Task
    ``{"angle": theta}`` in radians, ``theta ~ U(0, 2 pi)`` or uniform among ``direction_angles``. Task API and
    ``info`` as ``HalfCheetahVel-v0``.

    ## Starting State
    As ``Ant-v5`` (PEARL's: qpos noise ``U(-0.1, 0.1)``, qvel noise ``0.1 N(0, 1)``).

    ## Episode End
    Termination unless the state is finite and ``0.2 <= z <= 1`` (PEARL's and v5's rule), or when the physics
    diverges; truncation at 200 steps (10 s).

    ## Arguments
    ``direction_angles`` (``None``: ``U(0, 2 pi)``), ``tasks``, ``task_switch_seconds`` (``None``), the package's
    other task arguments, and every ``Ant-v5`` argument (``include_cfrc_ext_in_observation`` defaults to False).

    ## Version History
    * v0: initial version, on ``Ant-v5``.
    """

    def __init__(
        self, direction_angles: Any = None, include_cfrc_ext_in_observation: bool = False, **kwargs: Any
    ) -> None:
        self._direction_angles = check_angles(direction_angles)
        super().__init__(include_cfrc_ext_in_observation=include_cfrc_ext_in_observation, **kwargs)
        utils.EzPickle.__init__(
            self,
            direction_angles=direction_angles,
            include_cfrc_ext_in_observation=include_cfrc_ext_in_observation,
            **kwargs,
        )

    def planar_position(self) -> np.ndarray:
        return self.data.body(self._main_body).xpos[:2]


class AntGoalEnv(ClassicTaskEnv, AntEnv):
    """
    ## Description
    Gymnasium's ``Ant-v5`` must walk to a goal position on the plane, hidden from the agent: PEARL's, ProMP's
    and VariBAD's *ant-goal*, one goal per episode as in the originals, or a new one every ``task_switch_seconds``.

    ## Action Space
    ``Box(-1, 1, (8,), float32)``, as ``Ant-v5``.

    ## Observation Space
    ``Box(-inf, inf, (107,), float64)``: all of ``qpos`` (the torso's x and y included: the agent must know where
    it is), ``qvel`` and the clipped contact forces of the 13 bodies (``Ant-v5`` with
    ``exclude_current_positions_from_observation=False``; the originals also list the world body's contact
    forces, always 0). With ``task_in_obs=True`` two more entries, the goal.

    ## Rewards
    ``reward = -forward_reward_weight * (|x - goal_x| + |y - goal_y|) - 0.1 * sum(action**2)
    - 5e-4 * sum(clip(cfrc_ext, -1, 1)**2)``, the torso's position after the step, the originals' weights;
    ``info["reward_goal"]`` is the first term, ``reward_ctrl``, ``reward_contact`` and ``reward_survive`` (0)
    as ``Ant-v5``.

    ## Task
    ``{"goal": (x, y)}`` uniform on the disc of radius ``goal_radius`` (3): angle ``U(0, 2 pi)`` and radius
    ``goal_radius * sqrt(U(0, 1))``, as the originals. Task API and ``info`` as ``HalfCheetahVel-v0``.

    ## Starting State
    As ``Ant-v5``.

    ## Episode End
    Never terminates, as the originals (``terminate_when_unhealthy=False``), except when the physics diverges;
    truncation at 200 steps (10 s).

    ## Arguments
    ``goal_radius`` (3.0), ``tasks``, ``task_switch_seconds`` (``None``), the package's other task arguments, and
    every ``Ant-v5`` argument (defaults changed to the originals': ``ctrl_cost_weight=0.1``,
    ``healthy_reward=0``, ``terminate_when_unhealthy=False``, ``exclude_current_positions_from_observation=False``).

    ## Version History
    * v0: initial version, on ``Ant-v5``.
    """

    def __init__(
        self,
        goal_radius: float = 3.0,
        ctrl_cost_weight: float = 0.1,
        healthy_reward: float = 0.0,
        terminate_when_unhealthy: bool = False,
        exclude_current_positions_from_observation: bool = False,
        **kwargs: Any,
    ) -> None:
        if not is_real(goal_radius) or not 0.0 < goal_radius < math.inf:
            raise ValueError(f"goal_radius must be a positive finite number, got {goal_radius!r}")
        self._goal_radius = float(goal_radius)
        defaults = dict(
            ctrl_cost_weight=ctrl_cost_weight,
            healthy_reward=healthy_reward,
            terminate_when_unhealthy=terminate_when_unhealthy,
            exclude_current_positions_from_observation=exclude_current_positions_from_observation,
        )
        super().__init__(**defaults, **kwargs)
        utils.EzPickle.__init__(self, goal_radius=goal_radius, **defaults, **kwargs)

    def _sample_task(self, rng: np.random.Generator) -> Task:
        angle = rng.uniform(0.0, 2.0 * np.pi)
        radius = self._goal_radius * math.sqrt(rng.uniform())
        return {"goal": (radius * math.cos(angle), radius * math.sin(angle))}

    def _validate_task(self, task: Any) -> Task:
        return {"goal": check_goal(task)}

    def _apply_task(self) -> None:
        self._goal = np.array(self._task["goal"])  # read by _get_rew; nothing in the MuJoCo model changes

    def task_features(self, task: Task) -> np.ndarray:
        return np.array(task["goal"], dtype=np.float64)

    def _get_rew(self, x_velocity: float, action: np.ndarray):
        # v5's terms with a zero forward term: healthy reward, control and contact costs; the goal term replaces it.
        reward, reward_info = super()._get_rew(0.0, action)
        del reward_info["reward_forward"]
        goal_reward = -self._forward_reward_weight * np.abs(self.data.body(self._main_body).xpos[:2] - self._goal).sum()
        reward_info["reward_goal"] = goal_reward
        return goal_reward + reward, reward_info
