"""``Walker2dRandomParams-v0``: Gymnasium's ``Walker2d-v5`` whose torso mass and ground friction change every 15 s."""

from __future__ import annotations

import math
from typing import Any

import mujoco
import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv

from meta_mujoco_envs.base import NonStationaryTaskEnv, Task
from meta_mujoco_envs.checks import check_range, check_task_keys, is_real

# rand_param_envs (PEARL's walker) scales parameters by 1.5 ** U(-3, 3): log-uniform around the default.
DEFAULT_SCALE_RANGE = (1.5**-3, 1.5**3)
TASK_KEYS = ("torso_mass_scale", "friction_scale")


class Walker2dHealthRule:
    """Mixin for the Walker2d envs: ``termination_fn`` applies ``Walker2d-v5``'s health rule to a batch."""

    def termination_fn(self, next_obs: np.ndarray) -> np.ndarray:
        """``Walker2d-v5``'s rule on a batch of observations: ``min_z < z < max_z`` and ``min_a < angle < max_a``."""
        if not self._terminate_when_unhealthy:
            return super().termination_fn(next_obs)
        first = 1 - self.observation_structure["skipped_qpos"]  # observation index of qpos[1] (height)
        z, angle = next_obs[:, first], next_obs[:, first + 1]
        (z_low, z_high), (a_low, a_high) = self._healthy_z_range, self._healthy_angle_range
        return ~((z_low < z) & (z < z_high) & (a_low < angle) & (angle < a_high))


class Walker2dRandomParamsEnv(Walker2dHealthRule, NonStationaryTaskEnv, Walker2dEnv):
    """
    ## Description
    Gymnasium's ``Walker2d-v5`` must walk forward while its torso mass and the ground friction change:
    both are redrawn every ``task_switch_seconds`` (15 s = 1875 steps at dt 0.008) while it walks, hidden
    from the agent (M3PO's *Walker2D-randomparams*, after rand_param_envs).

    ## Action Space
    ``Box(-1, 1, (6,), float32)``, as ``Walker2d-v5``.

    ## Observation Space
    ``Box(-inf, inf, (17,), float64)``, as ``Walker2d-v5``; with ``task_in_obs=True`` two more entries, the
    natural logarithms of the two scales.

    ## Rewards
    The ``Walker2d-v5`` reward ``healthy_reward + forward_reward - ctrl_cost``; terms in ``info`` as v5.

    ## Task and its switching
    ``{"torso_mass_scale": m, "friction_scale": f}``, each drawn log-uniformly in its range (default
    ``[1.5**-3, 1.5**3]`` = ``[0.296, 3.375]``, rand_param_envs' ``1.5 ** U(-3, 3)``), at ``reset`` and every
    ``round(task_switch_seconds / dt)`` steps. The torso's mass *and* inertia are the default's times ``m``
    (the torso's density changes, its shape does not). The sliding friction of every geom is the default's
    times ``f``: the walker touches only the ground, and MuJoCo takes the larger friction of a contacting
    pair, so every ground contact's friction is exactly ``f`` times its default. The values are written as
    absolute values from the defaults (MuJoCo model edits outlive ``mj_resetData``), so nothing accumulates.
    ``info["task"]``, ``info["task_switched"]`` and the task API as in ``HalfCheetahFwdBwd-v0``.

    ## Starting State
    As ``Walker2d-v5``.

    ## Episode End
    As ``Walker2d-v5`` (unhealthy height or angle, physics divergence); truncation at 4000 steps (32 s), so an
    episode that stays healthy sees 2 switches (v5's 1000 steps = 8 s would see none).

    ## Arguments
    ``torso_mass_scale_range`` and ``friction_scale_range`` (``(low, high)``, positive; default
    ``(1.5**-3, 1.5**3)``), ``task_switch_seconds`` (15.0), ``task_switch_jitter`` (0.0), ``task_in_obs``
    (False), and every ``Walker2d-v5`` argument.

    ## Version History
    * v0 (unreleased changes): a log-uniform draw no longer rounds outside its declared range (a range ``(3.0,
      3.0)`` raised ``ValueError``); ``sample_tasks`` draws from a generator of its own (seeded by ``reset``) and no
      longer changes the episode's task sequence; MuJoCo's reset of an unstable simulation is flagged on any step
      (``physics_diverged``), the first after ``reset`` included; bad arguments, options and actions raise errors
      that name them; a warning when the registered time limit sees fewer than 2 switches;
      a diverged step returns a new array (it returned the previous step's); reward terms are computed in the
      action's dtype, as v5 (float32 actions' rewards differed by ~1e-8); ``observation_structure`` counts the
      entries ``task_in_obs`` and ``task_switch_in_obs`` append.
    * v0: initial version, on ``Walker2d-v5``.
    """

    def __init__(
        self,
        torso_mass_scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE,
        friction_scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE,
        **kwargs: Any,
    ) -> None:
        self._ranges = {
            "torso_mass_scale": check_range("torso_mass_scale_range", torso_mass_scale_range, positive=True),
            "friction_scale": check_range("friction_scale_range", friction_scale_range, positive=True),
        }
        self._log_ranges = {key: (math.log(low), math.log(high)) for key, (low, high) in self._ranges.items()}
        super().__init__(**kwargs)
        utils.EzPickle.__init__(
            self, torso_mass_scale_range=torso_mass_scale_range, friction_scale_range=friction_scale_range, **kwargs
        )

    @property
    def task_ranges(self) -> dict[str, tuple[float, float]]:
        """The declared range of each task entry."""
        return dict(self._ranges)

    def _prepare_model(self) -> None:
        self._torso = self.model.body("torso").id
        self._default_torso_mass = float(self.model.body_mass[self._torso])
        self._default_torso_inertia = self.model.body_inertia[self._torso].copy()
        self._default_friction = self.model.geom_friction[:, 0].copy()
        self._scratch_data = mujoco.MjData(self.model)

    def _draw_task(self, rng: np.random.Generator) -> Task:
        task = {}
        for key, (low, high) in self._ranges.items():
            # exp(log(x)) may round one ulp outside [low, high]: clipped back into the declared range.
            task[key] = min(max(math.exp(rng.uniform(*self._log_ranges[key])), low), high)
        return task

    def _validate_task(self, task: Any) -> Task:
        check_task_keys(task, TASK_KEYS)
        clean = {}
        for key in TASK_KEYS:
            value, (low, high) = task[key], self._ranges[key]
            if not is_real(value) or not low <= value <= high:
                raise ValueError(f"task[{key!r}] must be a number in [{low}, {high}], got {value!r}")
            clean[key] = float(value)
        return clean

    def _apply_task(self) -> None:
        mass_scale = self._task["torso_mass_scale"]
        self.model.body_mass[self._torso] = self._default_torso_mass * mass_scale
        self.model.body_inertia[self._torso] = self._default_torso_inertia * mass_scale
        self.model.geom_friction[:, 0] = self._default_friction * self._task["friction_scale"]
        # Refresh quantities derived from masses (subtree masses, ...). mj_setConst overwrites the mjData it is
        # given with the reference pose, so it gets a scratch one: the running state must not move.
        mujoco.mj_setConst(self.model, self._scratch_data)

    def task_features(self, task: Task) -> np.ndarray:
        return np.log([task[key] for key in TASK_KEYS])
