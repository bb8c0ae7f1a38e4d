"""``AntCrippledLeg-v0``: Gymnasium's ``Ant-v5`` with one of its four legs crippled, redrawn every 15 s."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.ant_v5 import AntEnv

from meta_mujoco_envs.base import NonStationaryTaskEnv, Task, check_choice, check_task_keys
from meta_mujoco_envs.direction import AntFwdBwdEnv

# Leg i of the task is the leg driven by joints hip_{i+1} and ankle_{i+1} in Gymnasium's ant.xml.
LEG_ROOT_BODIES = ("front_left_leg", "front_right_leg", "back_leg", "right_back_leg")
CRIPPLED_RGBA = np.array([1.0, 0.0, 0.0, 1.0])


class AntCrippledLegEnv(NonStationaryTaskEnv, AntEnv):
    """
    ## Description
    Gymnasium's ``Ant-v5`` must walk forward (+x) while one of its four legs is crippled: the crippled
    leg's two actuators exert no force. The crippled leg is hidden from the agent and redrawn every
    ``task_switch_seconds`` (15 s = 300 steps at dt 0.05) while it walks (M3PO's *Ant-crippled-leg*;
    the crippling follows learning_to_adapt: the leg's actions are zeroed and the leg is drawn red).

    ## Action Space
    ``Box(-1, 1, (8,), float32)``, as ``Ant-v5`` (actuator order hip_4, ankle_4, hip_1, ankle_1, hip_2,
    ankle_2, hip_3, ankle_3). The two entries of the crippled leg are replaced by 0 before the simulation.

    ## Observation Space
    ``Box(-inf, inf, (105,), float64)``, as ``Ant-v5``; with ``task_in_obs=True`` four more entries, the
    one-hot crippled leg.

    ## Rewards
    The ``Ant-v5`` reward ``healthy_reward + forward_reward - ctrl_cost - contact_cost``, with the control
    cost computed on the action actually applied (the crippled leg's entries zeroed). Terms in ``info`` as
    ``Ant-v5``.

    ## Task and its switching
    ``{"crippled_leg": i}`` with ``i`` uniform in ``crippled_legs`` (default ``(0, 1, 2, 3)``: leg ``i`` is
    driven by ``hip_{i+1}``/``ankle_{i+1}``: 0 front left, 1 front right, 2 back left, 3 back right), drawn
    at ``reset`` and every ``round(task_switch_seconds / dt)`` steps; ``info["task"]``,
    ``info["task_switched"]`` and the task API as in ``HalfCheetahFwdBwd-v0``.

    ## Starting State
    As ``Ant-v5``.

    ## Episode End
    As ``Ant-v5`` (unhealthy torso height, physics divergence); truncation at 1000 steps (3 switches).

    ## Arguments
    ``crippled_legs`` (``(0, 1, 2, 3)``: the legs that may be drawn), ``task_switch_seconds`` (15.0),
    ``task_switch_jitter`` (0.0), ``task_in_obs`` (False), and every ``Ant-v5`` argument (with a custom
    ``xml_file``, the leg bodies must keep Gymnasium's names).

    ## Version History
    * v0: initial version, on ``Ant-v5``.
    """

    termination_fn = AntFwdBwdEnv.termination_fn

    def __init__(self, crippled_legs: tuple[int, ...] = (0, 1, 2, 3), **kwargs: Any) -> None:
        legs = tuple(crippled_legs)
        if not legs or not all(isinstance(leg, (int, np.integer)) and 0 <= leg <= 3 for leg in legs):
            raise ValueError(f"crippled_legs must be a non-empty subset of (0, 1, 2, 3), got {crippled_legs!r}")
        self._crippled_legs = tuple(sorted({int(leg) for leg in legs}))
        super().__init__(**kwargs)
        utils.EzPickle.__init__(self, crippled_legs=crippled_legs, **kwargs)

    def _prepare_model(self) -> None:
        """Index each leg's actuators and geoms in the compiled model."""
        model = self.model
        self._leg_actuators = []
        self._leg_geoms = []
        for leg, root in enumerate(LEG_ROOT_BODIES):
            joints = {f"hip_{leg + 1}", f"ankle_{leg + 1}"}
            self._leg_actuators.append(
                [a for a in range(model.nu) if model.joint(model.actuator_trnid[a, 0]).name in joints]
            )
            root_id = model.body(root).id
            bodies = {b for b in range(model.nbody) if self._in_subtree(b, root_id)}
            self._leg_geoms.append([g for g in range(model.ngeom) if model.geom_bodyid[g] in bodies])
        self._default_rgba = model.geom_rgba.copy()

    def _in_subtree(self, body: int, root: int) -> bool:
        while body > 0:
            if body == root:
                return True
            body = self.model.body_parentid[body]
        return False

    def _draw_task(self) -> Task:
        return {"crippled_leg": self._crippled_legs[int(self.np_random.integers(len(self._crippled_legs)))]}

    def _validate_task(self, task: Any) -> Task:
        check_task_keys(task, ("crippled_leg",))
        return {"crippled_leg": check_choice("crippled_leg", task["crippled_leg"], self._crippled_legs)}

    def _apply_task(self) -> None:
        leg = self._task["crippled_leg"]
        self._action_mask = np.ones(self.model.nu)
        self._action_mask[self._leg_actuators[leg]] = 0.0
        self.model.geom_rgba[:] = self._default_rgba
        self.model.geom_rgba[self._leg_geoms[leg]] = CRIPPLED_RGBA

    def task_features(self, task: Task) -> np.ndarray:
        return np.eye(4)[task["crippled_leg"]]

    # Ant-v5's step passes the action to do_simulation and control_cost; masking both makes the crippled leg
    # exert no force and cost nothing. The task schedule runs before them, so the mask is the step's task's.
    def do_simulation(self, ctrl, n_frames) -> None:
        super().do_simulation(ctrl * self._action_mask, n_frames)

    def control_cost(self, action):
        return super().control_cost(action * self._action_mask)
