"""Direction tasks: run forward or backward along x, the direction redrawn every 15 s of simulated time.

``HalfCheetahFwdBwd-v0``, ``AntFwdBwd-v0`` and ``HumanoidDirec-v0`` are Gymnasium's v5 robots whose
forward-reward term is multiplied by the task's direction; every other term is the v5 one.
"""

from __future__ import annotations

import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.envs.mujoco.humanoid_v5 import HumanoidEnv

from meta_mujoco_envs.base import NonStationaryTaskEnv, Task
from meta_mujoco_envs.checks import check_choice, check_task_keys

DIRECTIONS = (1, -1)


class DirectionTaskEnv(NonStationaryTaskEnv):
    """Mixin: the task ``{"direction": +1 or -1}`` signs the v5 forward-reward term."""

    def _draw_task(self, rng: np.random.Generator) -> Task:
        return {"direction": DIRECTIONS[int(rng.integers(len(DIRECTIONS)))]}

    def _validate_task(self, task) -> Task:
        check_task_keys(task, ("direction",))
        return {"direction": check_choice("direction", task["direction"], DIRECTIONS)}

    def _apply_task(self) -> None:
        self._direction = self._task["direction"]  # read by _get_rew; nothing in the MuJoCo model changes

    def task_features(self, task: Task) -> np.ndarray:
        return np.array([task["direction"]], dtype=np.float64)

    def _get_rew(self, x_velocity: float, action: np.ndarray):
        # v5 computes forward_reward = forward_reward_weight * x_velocity; signing the velocity signs that term
        # only (info["x_velocity"] stays the true velocity, set by the v5 step).
        return super()._get_rew(self._direction * x_velocity, action)


def _healthy_z_index(env) -> int:
    """Observation index of the torso height qpos[2] (Ant, Humanoid), given the v5 observation options."""
    return 2 - env.observation_structure["skipped_qpos"]


class AntHealthRule:
    """Mixin for the Ant envs: ``termination_fn`` applies ``Ant-v5``'s health rule to a batch of observations."""

    def termination_fn(self, next_obs: np.ndarray) -> np.ndarray:
        """``Ant-v5``'s rule on a batch of observations: finite and ``min_z <= z <= max_z``."""
        if not self._terminate_when_unhealthy:
            return super().termination_fn(next_obs)
        z = next_obs[:, _healthy_z_index(self)]
        low, high = self._healthy_z_range
        return ~(np.isfinite(next_obs).all(axis=1) & (low <= z) & (z <= high))


class HumanoidHealthRule:
    """Mixin for the Humanoid envs: ``termination_fn`` applies ``Humanoid-v5``'s health rule to a batch."""

    def termination_fn(self, next_obs: np.ndarray) -> np.ndarray:
        """``Humanoid-v5``'s rule on a batch of observations: ``min_z < z < max_z``."""
        if not self._terminate_when_unhealthy:
            return super().termination_fn(next_obs)
        z = next_obs[:, _healthy_z_index(self)]
        low, high = self._healthy_z_range
        return ~((low < z) & (z < high))


class HalfCheetahFwdBwdEnv(DirectionTaskEnv, HalfCheetahEnv):
    """
    ## Description
    Gymnasium's ``HalfCheetah-v5`` cheetah must run forward (+x) or backward (-x); the direction is
    hidden from the agent and redrawn every ``task_switch_seconds`` (15 s = 300 steps) while it runs, so
    a meta-policy must infer it from the rewards it gets (M3PO's *Halfcheetah-fwd-bwd*).

    ## Action Space
    ``Box(-1, 1, (6,), float32)``: torques of the 6 joints, as ``HalfCheetah-v5``.

    ## Observation Space
    ``Box(-inf, inf, (17,), float64)``, as ``HalfCheetah-v5``; with ``task_in_obs=True`` one more entry,
    the direction (oracle baseline).

    ## Rewards
    ``reward = direction * forward_reward_weight * x_velocity - ctrl_cost_weight * sum(action**2)``;
    ``info["reward_forward"]`` is the signed first term, ``info["reward_ctrl"]`` the second.

    ## Task and its switching
    ``{"direction": 1}`` or ``{"direction": -1}``, each with probability 1/2, drawn at ``reset`` and again
    every ``round(task_switch_seconds / dt)`` steps (the new draw may repeat the old direction).
    ``info["task"]`` is the task of the step, ``info["task_switched"]`` is ``True`` on the step that opened a
    new period. ``set_task``/``get_task``/``sample_tasks`` as in meta-RL code; ``reset(options={"task": t})``
    starts with task ``t``.

    ## Starting State
    As ``HalfCheetah-v5`` (``reset_noise_scale`` = 0.1).

    ## Episode End
    Truncation at 1000 steps (50 s, so 3 switches); no termination, except when the physics diverges
    (``info["physics_diverged"]``; the previous observation is returned and the reward is 0). Every time
    limit here counts steps at the default ``frame_skip``: with another ``frame_skip`` (or a longer period)
    pass ``max_episode_steps`` to ``gym.make``; the first ``reset`` warns when the registered limit would see
    fewer than 2 switches.

    ## Arguments
    ``task_switch_seconds`` (15.0; ``None``: one task per episode), ``task_switch_jitter`` (0.0: exactly
    periodic; ``j``: each period ``x (1 + U(-j, j))``), ``task_in_obs`` (False), and every ``HalfCheetah-v5``
    argument (``forward_reward_weight``, ``ctrl_cost_weight``, ``reset_noise_scale``, ``frame_skip``,
    ``render_mode``, ``xml_file``, ...).

    ## Version History
    * v0 (unreleased changes): the cheetah is ``HalfCheetah-v5``'s own MJCF again, the compiled model identical to
      v5's (the intermediate copy with masses set by density matched them only to 5.6e-15 relative, enough for
      trajectories under the same actions to part within 200 steps; per-seed runs differ from that copy's), built
      without MuJoCo's deprecation warning for its ``settotalmass``; under a task that changes nothing (direction
      +1, no switch) it is ``HalfCheetah-v5`` bit for bit; ``sample_tasks`` draws from a generator of its own
      (seeded by ``reset``) and no longer changes the episode's task sequence; MuJoCo's reset of an unstable
      simulation is flagged on any step (``physics_diverged``), the first after ``reset`` included; bad arguments,
      options and actions raise errors that name them; a warning when the registered time limit sees fewer than 2
      switches; a diverged step returns a new array (it returned the previous step's); reward terms are computed in
      the action's dtype, as v5 (float32 actions' rewards differed by ~1e-8); ``observation_structure`` counts the
      entries ``task_in_obs`` and ``task_switch_in_obs`` append.
    * v0: initial version, on ``HalfCheetah-v5``.
    """


class AntFwdBwdEnv(AntHealthRule, DirectionTaskEnv, AntEnv):
    """
    ## Description
    Gymnasium's ``Ant-v5`` must walk along +x or -x; the direction is hidden and redrawn every
    ``task_switch_seconds`` (15 s = 300 steps at dt 0.05) (M3PO's *Ant-fwd-bwd*).

    ## Action Space
    ``Box(-1, 1, (8,), float32)``, as ``Ant-v5``.

    ## Observation Space
    ``Box(-inf, inf, (105,), float64)``, as ``Ant-v5`` (contact forces included); with ``task_in_obs=True``
    one more entry, the direction.

    ## Rewards
    ``reward = healthy_reward + direction * forward_reward_weight * x_velocity - ctrl_cost - contact_cost``:
    the ``Ant-v5`` reward with its forward term signed; terms in ``info`` as ``Ant-v5``.

    ## Task and its switching
    ``{"direction": +1 | -1}``, equiprobable, drawn at ``reset`` and every ``round(task_switch_seconds / dt)``
    steps; ``info["task"]``, ``info["task_switched"]`` and the task API as in ``HalfCheetahFwdBwd-v0``.

    ## Starting State
    As ``Ant-v5``.

    ## Episode End
    Termination when unhealthy (torso height outside ``healthy_z_range`` = (0.2, 1.0)) or when the physics
    diverges (``info["physics_diverged"]``); truncation at 1000 steps (50 s, 3 switches).

    ## Arguments
    ``task_switch_seconds`` (15.0), ``task_switch_jitter`` (0.0), ``task_in_obs`` (False), and every
    ``Ant-v5`` argument.

    ## Version History
    * v0 (unreleased changes): ``sample_tasks`` draws from a generator of its own (seeded by ``reset``) and no
      longer changes the episode's task sequence; MuJoCo's reset of an unstable simulation is flagged on any step
      (``physics_diverged``), the first after ``reset`` included; bad arguments, options and actions raise errors
      that name them; a warning when the registered time limit sees fewer than 2 switches;
      a diverged step returns a new array (it returned the previous step's); reward terms are computed in the
      action's dtype, as v5 (float32 actions' rewards differed by ~1e-8); ``observation_structure`` counts the
      entries ``task_in_obs`` and ``task_switch_in_obs`` append.
    * v0: initial version, on ``Ant-v5``.
    """


class HumanoidDirecEnv(HumanoidHealthRule, DirectionTaskEnv, HumanoidEnv):
    """
    ## Description
    Gymnasium's ``Humanoid-v5`` must walk along +x or -x; the direction is hidden and redrawn every
    ``task_switch_seconds`` (15 s = 1000 steps at dt 0.015) (M3PO's *Humanoid-direc*).

    ## Action Space
    ``Box(-0.4, 0.4, (17,), float32)``, as ``Humanoid-v5``.

    ## Observation Space
    ``Box(-inf, inf, (348,), float64)``, as ``Humanoid-v5``; with ``task_in_obs=True`` one more entry.

    ## Rewards
    ``reward = healthy_reward + direction * forward_reward_weight * x_velocity - ctrl_cost - contact_cost``,
    ``x_velocity`` being the centre of mass's, as ``Humanoid-v5``; terms in ``info`` as ``Humanoid-v5``.

    ## Task and its switching
    ``{"direction": +1 | -1}``, equiprobable, drawn at ``reset`` and every ``round(task_switch_seconds / dt)``
    steps; ``info["task"]``, ``info["task_switched"]`` and the task API as in ``HalfCheetahFwdBwd-v0``.

    ## Starting State
    As ``Humanoid-v5``.

    ## Episode End
    Termination when unhealthy (centre height outside ``healthy_z_range`` = (1.0, 2.0)) or when the physics
    diverges; truncation at 3000 steps (45 s), so an episode that stays healthy sees 2 switches
    (``Humanoid-v5``'s 1000 steps would end exactly when the first period does).

    ## Arguments
    ``task_switch_seconds`` (15.0), ``task_switch_jitter`` (0.0), ``task_in_obs`` (False), and every
    ``Humanoid-v5`` argument.

    ## Version History
    * v0 (unreleased changes): ``sample_tasks`` draws from a generator of its own (seeded by ``reset``) and no
      longer changes the episode's task sequence; MuJoCo's reset of an unstable simulation is flagged on any step
      (``physics_diverged``), the first after ``reset`` included; bad arguments, options and actions raise errors
      that name them; a warning when the registered time limit sees fewer than 2 switches;
      a diverged step returns a new array (it returned the previous step's); ``observation_structure`` counts the
      entries ``task_in_obs`` and ``task_switch_in_obs`` append.
    * v0: initial version, on ``Humanoid-v5``.
    """
