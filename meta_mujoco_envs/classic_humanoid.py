"""``HumanoidDir-v0``: PEARL's *humanoid-dir*, Gymnasium's ``Humanoid-v5`` walking in a direction of the plane."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.humanoid_v5 import HumanoidEnv, mass_center

from meta_mujoco_envs.classic_ant import PlanarDirectionTaskEnv, check_angles
from meta_mujoco_envs.direction import HumanoidHealthRule


class HumanoidDirEnv(HumanoidHealthRule, PlanarDirectionTaskEnv, HumanoidEnv):
    """
    ## Description
    Gymnasium's ``Humanoid-v5`` must walk in a direction of the plane, hidden from the agent: PEARL's
    *humanoid-dir*, one direction per episode as in the original, or a new one every ``task_switch_seconds``.
    ``HumanoidDirec-v0`` is M3PO's forward/backward variant.

    ## Action Space
    ``Box(-0.4, 0.4, (17,), float32)``, as ``Humanoid-v5``.

    ## Observation Space
    ``Box(-inf, inf, (348,), float64)``, as ``Humanoid-v5`` (PEARL's lists the world body's rows and the free
    joint's actuator forces too, always 0); with ``task_in_obs=True`` two more entries, ``(cos theta, sin theta)``.

    ## Rewards
    ``reward = 1.25 * <com_xy_velocity, (cos theta, sin theta)> + healthy_reward - 0.1 * sum(ctrl**2)
    - min(5e-7 * sum(cfrc_ext**2), 10)``: PEARL's (its ``0.25 * <direction, dcom> / timestep`` is
    ``1.25 * <direction, dcom> / dt`` at 5 frames per step), the ``Humanoid-v5`` reward whose forward term is the
    centre of mass's velocity along the task's direction. As v5, the healthy reward (5) is paid while healthy
    (PEARL pays it on the terminating step too). Terms in ``info`` as ``Humanoid-v5``.

    ## Task
    ``{"angle": theta}`` in radians, ``theta ~ U(0, 2 pi)`` (PEARL's) or uniform among ``direction_angles``.
    Task API and ``info`` as ``HalfCheetahVel-v0``.

    ## Starting State
    As ``Humanoid-v5`` (PEARL's: noise ``U(-0.01, 0.01)`` on qpos and qvel).

    ## Episode End
    Termination when the torso's height leaves ``(1, 2)`` (PEARL's and v5's rule), or when the physics diverges;
    truncation at 200 steps (3 s).

    ## Arguments
    ``direction_angles`` (``None``), ``tasks``, ``task_switch_seconds`` (``None``), the package's other task
    arguments, and every ``Humanoid-v5`` argument.

    ## Version History
    * v0: initial version, on ``Humanoid-v5``.
    """

    def __init__(self, direction_angles: Any = None, **kwargs: Any) -> None:
        self._direction_angles = check_angles(direction_angles)
        super().__init__(**kwargs)
        utils.EzPickle.__init__(self, direction_angles=direction_angles, **kwargs)

    def planar_position(self) -> np.ndarray:
        return mass_center(self.model, self.data)
