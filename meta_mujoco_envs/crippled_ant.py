"""``AntCrippledLeg-v0``: Gymnasium's ``Ant-v5`` with one of its four legs crippled, redrawn every 15 s."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.ant_v5 import AntEnv

from meta_mujoco_envs.base import NonStationaryTaskEnv, Task
from meta_mujoco_envs.checks import check_choice, check_task_keys, is_real
from meta_mujoco_envs.direction import AntHealthRule

# Leg i of the task is the leg driven by joints hip_{i+1} and ankle_{i+1} in Gymnasium's ant.xml; its name is
# where its foot stands, measured with x forward and y to the left.
LEG_ROOT_BODIES = ("front_left_leg", "front_right_leg", "back_leg", "right_back_leg")
LEG_NAMES = ("front left", "back left", "back right", "front right")
CRIPPLED_RGBA = np.array([1.0, 0.0, 0.0, 1.0])
SHRINK = 0.5  # a crippled leg's thigh and shin, as learning_to_adapt: half as long and half as thick


class AntCrippledLegEnv(AntHealthRule, NonStationaryTaskEnv, AntEnv):
    """
    ## Description
    Gymnasium's ``Ant-v5`` must walk forward (+x) while one of its four legs is crippled: the crippled
    leg's two actuators exert no force and, as in learning_to_adapt, the leg below the hip shrinks to half its
    length and thickness (its masses unchanged), so that it no longer props the ant up; it is drawn red. The
    crippled leg is hidden from the agent and redrawn every ``task_switch_seconds`` (15 s = 300 steps at
    dt 0.05) while it walks (M3PO's *Ant-crippled-leg*). Why the shrinking: a limp full-size leg still carries
    the ant. Under 3 open-loop sine gaits found by search on ``Ant-v5`` (10 s, median of 3 seeds), the
    intact ant covers 2.1, 7.2 and 4.9 m; with one leg's actuators zeroed it covered -1.0 to 6.2 m, as far as
    intact in 2 of 12 cases; with the leg also shrunk, -5.4 to 1.6 m, never half as far as intact: the
    "drastic" change of the paper. ``shrink_crippled_leg=False`` gives the zeroed actuators alone.

    ## Action Space
    ``Box(-1, 1, (8,), float32)``, as ``Ant-v5`` (actuator order hip_4, ankle_4, hip_1, ankle_1, hip_2,
    ankle_2, hip_3, ankle_3). The two entries of the crippled leg are replaced by 0 before the simulation.

    ## Observation Space
    ``Box(-inf, inf, (105,), float64)``, as ``Ant-v5``; with ``task_in_obs=True`` four more entries, the
    one-hot crippled leg.

    ## Rewards
    The ``Ant-v5`` reward ``healthy_reward + forward_reward - ctrl_cost - contact_cost``, with the control
    cost computed on the action actually applied (the crippled leg's entries zeroed). Terms in ``info`` as
    ``Ant-v5``. As the control cost depends on the task, the env has no ``action_reward_fn`` (``None``).

    ## Task and its switching
    ``{"crippled_leg": i}`` with ``i`` uniform in ``crippled_legs`` (default ``(0, 1, 2, 3)``: leg ``i`` is
    driven by ``hip_{i+1}``/``ankle_{i+1}``; measured from the feet's positions with x forward and y to the
    left: 0 front left, 1 back left, 2 back right, 3 front right, ``LEG_NAMES``), drawn
    at ``reset`` and every ``round(task_switch_seconds / dt)`` steps; ``info["task"]``,
    ``info["task_switched"]`` and the task API as in ``HalfCheetahFwdBwd-v0``.

    ## Starting State
    As ``Ant-v5``.

    ## Episode End
    As ``Ant-v5`` (unhealthy torso height, physics divergence); truncation at 1000 steps (3 switches).

    ## Arguments
    ``crippled_legs`` (``(0, 1, 2, 3)``: the legs that may be drawn), ``shrink_crippled_leg`` (True: the
    crippled leg also shrinks; False: only its actuators are zeroed), ``task_switch_seconds`` (15.0),
    ``task_switch_jitter`` (0.0), ``task_in_obs`` (False), and every ``Ant-v5`` argument (with a custom
    ``xml_file``, the leg bodies must keep Gymnasium's names).

    ## Version History
    * v0 (unreleased changes, breaking): the crippled leg also shrinks (``shrink_crippled_leg``); leg names
      corrected (1 is back left, 2 back right, 3 front right); ``termination_fn`` works with
      ``terminate_when_unhealthy=False``; ``sample_tasks`` draws from a generator of its own (seeded by ``reset``)
      and no longer changes the episode's task sequence; MuJoCo's reset of an unstable simulation is flagged on any
      step (``physics_diverged``), the first after ``reset`` included; bad arguments, options and actions raise
      errors that name them; a warning when the registered time limit sees fewer than 2 switches;
      a diverged step returns a new array (it returned the previous step's); reward terms are computed in the
      action's dtype, as v5 (float32 actions' rewards differed by ~1e-8); ``observation_structure`` counts the
      entries ``task_in_obs`` and ``task_switch_in_obs`` append.
    * v0: initial version, on ``Ant-v5``.
    """

    def __init__(
        self, crippled_legs: tuple[int, ...] = (0, 1, 2, 3), shrink_crippled_leg: bool = True, **kwargs: Any
    ) -> None:
        self._crippled_legs = self._checked_legs(crippled_legs)
        if not isinstance(shrink_crippled_leg, (bool, np.bool_)):
            raise TypeError(f"shrink_crippled_leg must be True or False, got {shrink_crippled_leg!r}")
        self._shrink = bool(shrink_crippled_leg)
        super().__init__(**kwargs)
        utils.EzPickle.__init__(self, crippled_legs=crippled_legs, shrink_crippled_leg=shrink_crippled_leg, **kwargs)

    @staticmethod
    def _checked_legs(crippled_legs: Any) -> tuple[int, ...]:
        """The sorted distinct legs of ``crippled_legs``; an error naming it unless it is a subset of 0..3."""
        try:
            legs = tuple(crippled_legs)
        except TypeError:
            raise TypeError(f"crippled_legs must be a sequence of leg indices in 0..3, got {crippled_legs!r}") from None
        if not legs or not all(is_real(leg) and leg in (0, 1, 2, 3) and leg == int(leg) for leg in legs):
            raise ValueError(f"crippled_legs must be a non-empty subset of (0, 1, 2, 3), got {crippled_legs!r}")
        return tuple(sorted({int(leg) for leg in legs}))

    def _prepare_model(self) -> None:
        """Index each leg's actuators, geoms, and the bodies and geoms below its hip, in the compiled model."""
        model = self.model
        self._leg_actuators, self._leg_geoms, self._below_hip_bodies, self._below_hip_geoms = [], [], [], []
        for leg, root in enumerate(LEG_ROOT_BODIES):
            joints = {f"hip_{leg + 1}", f"ankle_{leg + 1}"}
            self._leg_actuators.append(
                [a for a in range(model.nu) if model.joint(model.actuator_trnid[a, 0]).name in joints]
            )
            root_id = model.body(root).id
            bodies = {b for b in range(model.nbody) if self._in_subtree(b, root_id)}
            self._leg_geoms.append([g for g in range(model.ngeom) if model.geom_bodyid[g] in bodies])
            thigh = model.jnt_bodyid[model.joint(f"hip_{leg + 1}").id]
            below_hip = [b for b in range(model.nbody) if self._in_subtree(b, thigh)]
            self._below_hip_bodies.append([b for b in below_hip if b != thigh])  # their positions hang from the hip
            self._below_hip_geoms.append([g for g in range(model.ngeom) if model.geom_bodyid[g] in below_hip])
        self._default_rgba = model.geom_rgba.copy()
        self._default_geom_size = model.geom_size.copy()
        self._default_geom_pos = model.geom_pos.copy()
        self._default_body_pos = model.body_pos.copy()

    def _in_subtree(self, body: int, root: int) -> bool:
        while body > 0:
            if body == root:
                return True
            body = self.model.body_parentid[body]
        return False

    def _draw_task(self, rng: np.random.Generator) -> Task:
        return {"crippled_leg": self._crippled_legs[int(rng.integers(len(self._crippled_legs)))]}

    def _validate_task(self, task: Any) -> Task:
        check_task_keys(task, ("crippled_leg",))
        return {"crippled_leg": check_choice("crippled_leg", task["crippled_leg"], self._crippled_legs)}

    def _apply_task(self) -> None:
        leg = self._task["crippled_leg"]
        self._action_mask = np.ones(self.model.nu, dtype=bool)  # boolean: a product keeps the action's dtype
        self._action_mask[self._leg_actuators[leg]] = False
        self.model.geom_rgba[:] = self._default_rgba
        self.model.geom_rgba[self._leg_geoms[leg]] = CRIPPLED_RGBA
        self._shrink_leg(leg if self._shrink else None)

    def _shrink_leg(self, leg: int | None) -> None:
        """Scale leg ``leg`` below its hip by ``SHRINK`` about the hip joint (``None``: every leg at full size).

        Geometry only, as learning_to_adapt: sizes and local positions of its geoms and bodies; the masses stay.
        The smaller geoms lie inside the full-size ones' bounding volumes, so MuJoCo's broadphase stays valid.
        """
        model = self.model
        model.geom_size[:] = self._default_geom_size
        model.geom_pos[:] = self._default_geom_pos
        model.body_pos[:] = self._default_body_pos
        if leg is None:
            return
        geoms, bodies = self._below_hip_geoms[leg], self._below_hip_bodies[leg]
        model.geom_size[geoms, :2] *= SHRINK  # capsules: radius, half-length
        model.geom_pos[geoms] *= SHRINK
        model.body_pos[bodies] *= SHRINK

    def task_features(self, task: Task) -> np.ndarray:
        return np.eye(4)[task["crippled_leg"]]

    # Ant-v5's step passes the action to do_simulation and control_cost; masking both makes the crippled leg
    # exert no force and cost nothing. The task schedule runs before them, so the mask is the step's task's.
    # The masked action keeps its dtype, so the control cost is Ant-v5's for that action, bit for bit.
    def do_simulation(self, ctrl, n_frames) -> None:
        super().do_simulation(ctrl * self._action_mask, n_frames)

    def control_cost(self, action):
        return super().control_cost(action * self._action_mask)

    # The control cost depends on the task (which leg is masked): no action-only reward term to take as known.
    action_reward_fn = None
