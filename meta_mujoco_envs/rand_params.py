"""rand_param_envs' tasks (PEARL's *hopper-rand-params* and *walker-rand-params*) on Gymnasium's v5 robots:
``HopperRandParams-v0`` and ``Walker2dRandParams-v0``, every body mass and inertia, joint damping and geom
friction scaled by its own random factor."""

from __future__ import annotations

import math
from typing import Any

import mujoco
import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv

from meta_mujoco_envs.base import Task
from meta_mujoco_envs.checks import check_task_keys, is_real, real_array
from meta_mujoco_envs.classic_suite import ClassicTaskEnv
from meta_mujoco_envs.walker_params import Walker2dHealthRule

# Each parameter's factor is BASE ** U(-log_scale_limit, log_scale_limit), element by element; rand_param_envs
# draws them in this order (mass, inertia, damping, friction), each array in MuJoCo's row-major order.
MULTIPLIER_BASES = {"body_mass": 1.5, "body_inertia": 1.5, "dof_damping": 1.3, "geom_friction": 1.5}
RAND_PARAMS = tuple(MULTIPLIER_BASES)
# rand_param_envs steps 4 frames of its XMLs' 0.004 s: dt 0.016. v5's XMLs step 0.002 s, so 8 frames keep that dt.
ORIGINALS_FRAME_SKIP = 8


def _as_tuples(values: np.ndarray) -> tuple:
    """A 1-D or 2-D array as (nested) tuples of floats: an immutable, picklable task value."""
    return tuple(tuple(row) for row in values.tolist()) if values.ndim == 2 else tuple(values.tolist())


class RandParamsTaskEnv(ClassicTaskEnv):
    """Mixin: the task is one positive factor per element of the model's ``body_mass``, ``body_inertia``,
    ``dof_damping`` and ``geom_friction`` (or of the subset ``rand_params``), applied to their default values.

    :param log_scale_limit: each factor is ``base ** U(-log_scale_limit, log_scale_limit)`` (rand_param_envs' 3).
    :param rand_params: which parameters the task scales (all four by default, as rand_param_envs).
    :param frame_skip: 8 (dt 0.016 s, the originals' step) by default; v5's own is 4.
    """

    def __init__(
        self,
        log_scale_limit: float = 3.0,
        rand_params: tuple[str, ...] = RAND_PARAMS,
        frame_skip: int = ORIGINALS_FRAME_SKIP,
        **kwargs: Any,
    ) -> None:
        if not is_real(log_scale_limit) or not 0.0 <= log_scale_limit < math.inf:
            raise ValueError(f"log_scale_limit must be a finite number >= 0, got {log_scale_limit!r}")
        if isinstance(rand_params, str) or not set(rand_params) <= set(RAND_PARAMS) or not rand_params:
            raise ValueError(f"rand_params must be a non-empty subset of {RAND_PARAMS}, got {rand_params!r}")
        self._log_scale_limit = float(log_scale_limit)
        self._rand_params = tuple(name for name in RAND_PARAMS if name in rand_params)  # in the draw order
        super().__init__(frame_skip=frame_skip, **kwargs)
        utils.EzPickle.__init__(
            self, log_scale_limit=log_scale_limit, rand_params=rand_params, frame_skip=frame_skip, **kwargs
        )

    @property
    def default_parameters(self) -> dict[str, np.ndarray]:
        """The model's parameters before any task scaled them (copies)."""
        return {name: values.copy() for name, values in self._defaults.items()}

    def _prepare_model(self) -> None:
        # Copies: the model's arrays are live views, and scaling a view of itself would compound the factors.
        self._defaults = {name: getattr(self.model, name).copy() for name in RAND_PARAMS}
        self._scratch_data = mujoco.MjData(self.model)
        sizes = [self._defaults[name].size for name in self._rand_params]
        self._n_factors, self._splits = sum(sizes), np.cumsum(sizes)[:-1]
        self._factor_bases = np.repeat([MULTIPLIER_BASES[name] for name in self._rand_params], sizes)

    def _sample_task(self, rng: np.random.Generator) -> Task:
        # One draw of all exponents gives the same values, in the same order, as one draw per parameter.
        exponents = rng.uniform(-self._log_scale_limit, self._log_scale_limit, size=self._n_factors)
        factors = np.split(self._factor_bases**exponents, self._splits)
        return {name: _as_tuples(f.reshape(self._defaults[name].shape)) for name, f in zip(self._rand_params, factors)}

    def _validate_task(self, task: Any) -> Task:
        check_task_keys(task, self._rand_params)
        clean = {}
        for name in self._rand_params:
            factors = real_array(f"task[{name!r}]", task[name])
            shape = self._defaults[name].shape
            # min() > 0 is False for a NaN; sum() is finite iff no entry is inf (all are positive)
            if factors.shape != shape or not (factors.min() > 0 and np.isfinite(factors.sum())):
                raise ValueError(f"task[{name!r}] must be {shape} positive finite factors, got {task[name]!r}")
            clean[name] = _as_tuples(factors)
        return clean

    def _apply_task(self) -> None:
        for name, factors in self._task.items():
            getattr(self.model, name)[:] = self._defaults[name] * np.array(factors)
        if "body_mass" in self._task or "body_inertia" in self._task:
            # Refresh what MuJoCo derives from masses; mj_setConst overwrites the mjData it is given with the
            # reference pose, so it gets a scratch one and the running state does not move.
            mujoco.mj_setConst(self.model, self._scratch_data)

    def task_features(self, task: Task) -> np.ndarray:
        return np.log(np.concatenate([np.ravel(task[name]) for name in self._rand_params]))


class HopperHealthRule:
    """Mixin: ``termination_fn`` applies ``Hopper-v5``'s health rule to a batch of observations.

    The observation holds ``qvel`` clipped to [-10, 10], always inside the healthy state range (-100, 100): the rule
    checks the rest (``qpos[2:]``, height and angle), and misses only a state whose true velocity exceeds 100.
    """

    def termination_fn(self, next_obs: np.ndarray) -> np.ndarray:
        """``Hopper-v5``'s rule: ``qpos[2:]`` and ``qvel`` in the state range, ``z`` and angle in theirs."""
        if not self._terminate_when_unhealthy:
            return super().termination_fn(next_obs)
        first = 1 - self.observation_structure["skipped_qpos"]  # observation index of qpos[1] (height)
        last = first + 1 + (self.model.nq - 2) + self.model.nv  # state_vector()[2:] ends here; task entries follow
        z, angle, state = next_obs[:, first], next_obs[:, first + 1], next_obs[:, first + 1 : last]
        (s_low, s_high), (z_low, z_high), (a_low, a_high) = (
            self._healthy_state_range,
            self._healthy_z_range,
            self._healthy_angle_range,
        )
        healthy_state = ((s_low < state) & (state < s_high)).all(axis=1)
        return ~(healthy_state & (z_low < z) & (z < z_high) & (a_low < angle) & (angle < a_high))


_COMMON_DOC = """
    ## Action Space
    ``Box(-1, 1, ({n_act},), float32)``, as ``{base}``.

    ## Observation Space
    ``Box(-inf, inf, ({n_obs},), float64)``: ``qpos[1:]`` and ``qvel`` clipped to [-10, 10], as ``{base}`` and
    rand_param_envs; with ``task_in_obs=True`` {n_task} more entries, the natural logarithms of all factors
    (mass, inertia, damping, friction, each in MuJoCo's row-major order).

    ## Rewards
    ``reward = x_velocity + healthy_reward - 1e-3 * sum(action**2)``: rand_param_envs' and ``{base}``'s (weights
    1, 1, 1e-3), ``x_velocity`` the root's ``dx / dt``. As v5, the healthy reward is paid while healthy
    (rand_param_envs pays it on the terminating step too). Terms in ``info`` as ``{base}``.

    ## Task
    ``{{"body_mass": ..., "body_inertia": ..., "dof_damping": ..., "geom_friction": ...}}``: one factor per element
    of the model's array (``body_inertia`` and ``geom_friction`` as tuples of 3-tuples), applied to its default.
    Each factor is ``base ** U(-3, 3)``, base 1.5 for masses, inertias and frictions and 1.3 for damping, drawn
    in rand_param_envs' order. The model's defaults are copied once and every task is written from them, so
    factors never compound (rand_param_envs kept views, harmless on mujoco-py 0.5.7's copies, not on MuJoCo 3);
    ``mj_setConst`` refreshes what MuJoCo derives from masses. ``rand_params`` restricts the task to a subset.
    Task API and ``info`` as ``HalfCheetahVel-v0``.

    ## Starting State
    As ``{base}`` (rand_param_envs': noise ``U(-0.005, 0.005)`` on qpos and qvel).

    ## Episode End
    {health}; or when the physics diverges. Truncation at 200 steps (3.2 s).

    ## Arguments
    ``log_scale_limit`` (3.0), ``rand_params`` (all four), ``tasks``, ``task_switch_seconds`` (``None``), the
    package's other task arguments, and every ``{base}`` argument (``frame_skip`` defaults to 8: dt 0.016 s as
    rand_param_envs, which steps its XMLs' 0.004 s timestep 4 times; v5's timestep is 0.002 s).

    ## Version History
    * v0: initial version, on ``{base}``.
    """


class HopperRandParamsEnv(HopperHealthRule, RandParamsTaskEnv, HopperEnv):
    __doc__ = (
        """
    ## Description
    Gymnasium's ``Hopper-v5`` must hop forward while its body parameters are random: rand_param_envs'
    ``HopperRandParamsEnv`` (PEARL's *hopper-rand-params*), one parameter set per episode as in the original, or a
    new one every ``task_switch_seconds``.
    """
        + _COMMON_DOC.format(
            base="Hopper-v5",
            n_act=3,
            n_obs=11,
            n_task=41,
            health="Termination unless ``abs(state_vector()[2:]) < 100``, ``z > 0.7`` and ``abs(angle) < 0.2`` "
            "(rand_param_envs' and v5's rule)",
        )
    )


class Walker2dRandParamsEnv(Walker2dHealthRule, RandParamsTaskEnv, Walker2dEnv):
    __doc__ = (
        """
    ## Description
    Gymnasium's ``Walker2d-v5`` must walk forward while its body parameters are random: rand_param_envs'
    ``Walker2DRandParamsEnv`` (PEARL's *walker-rand-params*), one parameter set per episode as in the original, or
    a new one every ``task_switch_seconds``. ``Walker2dRandomParams-v0`` is M3PO's variant (torso mass and ground
    friction only). The feet are v5's (both of friction 1.9); rand_param_envs' ``walker2d.xml`` gives the right
    foot 0.9 (pass ``xml_file="walker2d.xml"`` for Gymnasium's copy of that file).
    """
        + _COMMON_DOC.format(
            base="Walker2d-v5",
            n_act=6,
            n_obs=17,
            n_task=65,
            health="Termination unless ``0.8 < z < 2`` and ``-1 < angle < 1`` (rand_param_envs' and v5's rule)",
        )
    )
