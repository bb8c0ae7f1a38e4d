"""The classic suite's cheetahs: ``HalfCheetahVel-v0`` (run at a goal velocity) and ``HalfCheetahDir-v0`` (run
forward or backward), the tasks of MAML, PEARL and VariBAD on Gymnasium's ``HalfCheetah-v5``."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

from meta_mujoco_envs.base import Task
from meta_mujoco_envs.checks import check_range, check_task_keys, is_real
from meta_mujoco_envs.classic_suite import PEARL_CHEETAH_VEL_SPLITS, ClassicTaskEnv
from meta_mujoco_envs.direction import DirectionTaskEnv

ORIGINALS_CTRL_COST_WEIGHT = 0.05  # MAML's, PEARL's and VariBAD's 0.5 * 1e-1 (HalfCheetah-v5's is 0.1)


class HalfCheetahVelEnv(ClassicTaskEnv, HalfCheetahEnv):
    """
    ## Description
    Gymnasium's ``HalfCheetah-v5`` cheetah must run forward at a goal velocity, hidden from the agent: the
    *cheetah-vel* task of MAML, PEARL and VariBAD. The goal is drawn per episode as in the originals, or every
    ``task_switch_seconds`` inside the episode.

    ## Action Space
    ``Box(-1, 1, (6,), float32)``, as ``HalfCheetah-v5``.

    ## Observation Space
    ``Box(-inf, inf, (17,), float64)``, as ``HalfCheetah-v5``; with ``task_in_obs=True`` one more entry, the
    goal velocity (oracle).

    ## Rewards
    ``reward = -forward_reward_weight * abs(x_velocity - velocity) - ctrl_cost_weight * sum(action**2)``, with
    ``x_velocity`` the root's ``dx / dt`` as ``HalfCheetah-v5`` (and the originals) and the originals' weights
    1 and 0.05; ``info["reward_forward"]`` is the first term, ``info["reward_ctrl"]`` the second.

    ## Task
    ``{"velocity": v}``, ``v ~ U(velocity_range)`` (default ``(0, 3)``, the range PEARL's and VariBAD's code
    draw from; MAML's paper and PEARL's docstring say ``(0, 2)``). ``tasks="pearl-train"`` / ``"pearl-test"``:
    PEARL's 100 training / 30 evaluation goals (``np.random.seed(1337)``, exactly its values), each drawn with
    probability 1/100 (1/30); or any sequence of tasks. ``set_task``/``get_task``/``sample_tasks``,
    ``reset(options={"task": t})``, ``info["task"]`` and ``info["task_switched"]`` as the package's other envs.

    ## Starting State
    As ``HalfCheetah-v5`` (``reset_noise_scale`` = 0.1, as the originals).

    ## Episode End
    Truncation at 200 steps (10 s, the originals' horizon); no termination, except when the physics diverges
    (``info["physics_diverged"]``).

    ## Arguments
    ``velocity_range`` (``(0.0, 3.0)``), ``tasks`` (``None``), ``task_switch_seconds`` (``None``: one task per
    episode), ``task_switch_jitter``, ``task_schedule``, ``task_in_obs``, ``task_switch_in_obs``, and every
    ``HalfCheetah-v5`` argument (``ctrl_cost_weight`` defaults to 0.05).

    ## Version History
    * v0: initial version, on ``HalfCheetah-v5``.
    """

    NAMED_TASK_SETS = PEARL_CHEETAH_VEL_SPLITS

    def __init__(
        self,
        velocity_range: tuple[float, float] = (0.0, 3.0),
        ctrl_cost_weight: float = ORIGINALS_CTRL_COST_WEIGHT,
        **kwargs: Any,
    ) -> None:
        self._velocity_range = check_range("velocity_range", velocity_range)
        super().__init__(ctrl_cost_weight=ctrl_cost_weight, **kwargs)
        utils.EzPickle.__init__(self, velocity_range=velocity_range, ctrl_cost_weight=ctrl_cost_weight, **kwargs)

    def _sample_task(self, rng: np.random.Generator) -> Task:
        return {"velocity": float(rng.uniform(*self._velocity_range))}

    def _validate_task(self, task: Any) -> Task:
        check_task_keys(task, ("velocity",))
        velocity = task["velocity"]
        if not is_real(velocity) or not np.isfinite(velocity):
            raise ValueError(f"task['velocity'] must be a finite number, got {velocity!r}")
        return {"velocity": float(velocity)}

    def _apply_task(self) -> None:
        self._goal_velocity = self._task["velocity"]  # read by _get_rew; nothing in the MuJoCo model changes

    def task_features(self, task: Task) -> np.ndarray:
        return np.array([task["velocity"]], dtype=np.float64)

    def _get_rew(self, x_velocity: float, action: np.ndarray):
        # v5's terms with a zero forward term give -ctrl_cost exactly; the velocity-tracking term replaces it.
        reward, reward_info = super()._get_rew(0.0, action)
        forward_reward = -self._forward_reward_weight * abs(x_velocity - self._goal_velocity)
        reward_info["reward_forward"] = forward_reward
        return forward_reward + reward, reward_info


class HalfCheetahDirEnv(ClassicTaskEnv, DirectionTaskEnv, HalfCheetahEnv):
    """
    ## Description
    Gymnasium's ``HalfCheetah-v5`` cheetah must run forward (+x) or backward (-x), the direction hidden from the
    agent: the *cheetah-dir* task of MAML, PEARL and VariBAD, one direction per episode as in the originals (or
    switching every ``task_switch_seconds``). ``HalfCheetahFwdBwd-v0`` is the same task with M3PO's settings
    (v5's control cost, a switch every 15 s, 1000 steps).

    ## Action Space
    ``Box(-1, 1, (6,), float32)``, as ``HalfCheetah-v5``.

    ## Observation Space
    ``Box(-inf, inf, (17,), float64)``, as ``HalfCheetah-v5``; with ``task_in_obs=True`` one more entry, the
    direction.

    ## Rewards
    ``reward = direction * forward_reward_weight * x_velocity - ctrl_cost_weight * sum(action**2)`` with the
    originals' weights 1 and 0.05; terms in ``info`` as ``HalfCheetah-v5``.

    ## Task
    ``{"direction": +1 | -1}``, each with probability 1/2. Task API and ``info`` as ``HalfCheetahVel-v0``.

    ## Starting State
    As ``HalfCheetah-v5``.

    ## Episode End
    Truncation at 200 steps (10 s); no termination, except when the physics diverges.

    ## Arguments
    ``tasks`` (``None``), ``task_switch_seconds`` (``None``), the package's other task arguments, and every
    ``HalfCheetah-v5`` argument (``ctrl_cost_weight`` defaults to 0.05).

    ## Version History
    * v0: initial version, on ``HalfCheetah-v5``.
    """

    def __init__(self, ctrl_cost_weight: float = ORIGINALS_CTRL_COST_WEIGHT, **kwargs: Any) -> None:
        super().__init__(ctrl_cost_weight=ctrl_cost_weight, **kwargs)
        utils.EzPickle.__init__(self, ctrl_cost_weight=ctrl_cost_weight, **kwargs)

    def _sample_task(self, rng: np.random.Generator) -> Task:
        return DirectionTaskEnv._draw_task(self, rng)
