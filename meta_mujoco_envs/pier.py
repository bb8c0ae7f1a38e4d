"""``HalfCheetahPier-v0``: Gymnasium's cheetah running on a pier of floating blocks of random damping and friction."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.spaces import Box

from meta_mujoco_envs.base import NonStationaryTaskEnv, Task, asset_path
from meta_mujoco_envs.checks import check_range, check_task_keys, real_array

CHEETAH_NQ = 9  # the cheetah's joints come first in the MJCF: qpos[0:9], qvel[0:9]
TASK_KEYS = ("damping", "friction")


def pier_xml_path() -> str:
    """Path of the pier's MJCF."""
    return asset_path("half_cheetah_pier.xml")


class HalfCheetahPierEnv(NonStationaryTaskEnv, HalfCheetahEnv):
    """
    ## Description
    Gymnasium's ``HalfCheetah-v5`` cheetah (same bodies, masses, joints and actuators) runs over a pier of
    8 blocks floating on water (M3PO's *Halfcheetah-pier*, after learning_to_adapt's blocks env). Each block
    is a 4 m box on a vertical 4000 N/m spring (travel ±0.12 m) that sinks and bounces when stepped on: the
    standing cheetah's weight sinks it by 0.034 m, a running one keeps it off its hard stop, and the step to
    the next block stays low enough to run over. Each block has its own damping and friction, so the dynamics
    change as the cheetah runs from block to block, and change again when the task is redrawn. Measured with
    ``benchmarks/bench_pier.py`` (a fixed sine gait): the extreme tasks of the default ranges change its 10 s
    progress by 5x, and the next observation after the same action from the same state by 23 % of a normal
    one-step change. The blocks are moved by whole pier lengths (32 m) to stay within 16 m of
    the cheetah, so the pier never runs out, forwards or backwards (the pattern of blocks repeats every
    32 m); this costs one vectorised comparison per step.

    ## Action Space
    ``Box(-1, 1, (6,), float32)``, as ``HalfCheetah-v5``.

    ## Observation Space
    ``Box(-inf, inf, (17,), float64)``: the cheetah's ``HalfCheetah-v5`` observation (its ``qpos[1:9]`` and
    ``qvel[0:9]``; with ``exclude_current_positions_from_observation=False``, 18 entries from ``qpos[0:9]``);
    the blocks' states are hidden. With ``task_in_obs=True`` 16 more entries: the 8 dampings
    and the 8 frictions of the blocks in slot order.

    ## Rewards
    As ``HalfCheetah-v5``: ``forward_reward_weight * x_velocity - ctrl_cost_weight * sum(action**2)``.

    ## Task and its switching
    ``{"damping": (d_0, ..., d_7), "friction": (f_0, ..., f_7)}``: block ``j``'s slide-joint damping
    (N·s/m) and sliding friction, each drawn uniformly in ``block_damping_range`` (default ``(0, 400)``:
    damping ratios from 0, bouncy, to 0.79 under the standing cheetah and 2.2 for an empty block) and
    ``block_friction_range`` (default ``(0.03, 1.0)``, from ice to rubber; the cheetah's own is 0.4, and a
    contact takes the block's). Drawn at ``reset``, as in the paper, and
    redrawn every ``round(task_switch_seconds / dt)`` steps (15 s = 300 steps at dt 0.05) like the other
    environments; ``task_switch_seconds=None`` keeps one pier per episode, the paper's setting.
    ``info["task"]``, ``info["task_switched"]`` and the task API as in ``HalfCheetahFwdBwd-v0``.

    ## Starting State
    As ``HalfCheetah-v5`` (uniform noise of ``reset_noise_scale`` = 0.1 on positions, normal on
    velocities), applied to the blocks' heights and velocities too; the cheetah stands on block 3.

    ## Episode End
    Truncation at 1000 steps (50 s, 3 switches; the limit counts steps: with another ``frame_skip``
    pass ``max_episode_steps``, the first ``reset`` warns when it sees fewer than 2 switches); no
    termination, except when the physics diverges (``info["physics_diverged"]``).

    ## Arguments
    ``block_damping_range`` ((0, 400)), ``block_friction_range`` ((0.03, 1.0)), ``task_switch_seconds`` (15.0),
    ``task_switch_jitter`` (0.0), ``task_in_obs`` (False), and every ``HalfCheetah-v5`` argument
    (``xml_file`` defaults to the pier's MJCF in ``assets/``).

    ## Version History
    * v0 (unreleased changes, breaking): blocks redesigned so that the task matters: spring 1000 -> 4000 N/m, travel
      ±0.15 -> ±0.12 m, damping range (0, 50) -> (0, 400), friction range (0.2, 1.0) -> (0.03, 1.0) (before, a
      standing cheetah sank its block 0.137 m, a running one kept it on its hard stop 27 % of the time, and a sine
      gait could not climb onto the next block); the friction applies to every geom of a block;
      ``exclude_current_positions_from_observation=False`` is honoured; ``sample_tasks`` draws from a generator of
      its own (seeded by ``reset``) and no longer changes the episode's task sequence; MuJoCo's reset of an unstable
      simulation is flagged on any step (``physics_diverged``), the first after ``reset`` included; bad arguments,
      options and actions raise errors that name them; a warning when the registered time limit sees fewer than 2
      switches;
      a diverged step returns a new array (it returned the previous step's); reward terms are computed in the
      action's dtype, as v5 (float32 actions' rewards differed by ~1e-8); ``observation_structure`` counts the
      entries ``task_in_obs`` and ``task_switch_in_obs`` append.
    * v0: initial version.
    """

    def __init__(
        self,
        block_damping_range: tuple[float, float] = (0.0, 400.0),
        block_friction_range: tuple[float, float] = (0.03, 1.0),
        xml_file: str | None = None,
        **kwargs: Any,
    ) -> None:
        self._ranges = {
            "damping": check_range("block_damping_range", block_damping_range),
            "friction": check_range("block_friction_range", block_friction_range, positive=True),
        }
        super().__init__(xml_file=xml_file or pier_xml_path(), **kwargs)
        utils.EzPickle.__init__(
            self,
            block_damping_range=block_damping_range,
            block_friction_range=block_friction_range,
            xml_file=xml_file,
            **kwargs,
        )

    @property
    def task_ranges(self) -> dict[str, tuple[float, float]]:
        """The declared range of each block property."""
        return dict(self._ranges)

    def _prepare_model(self) -> None:
        model = self.model
        self._block_bodies = np.array([b for b in range(model.nbody) if model.body(b).name.startswith("block_")])
        if self._block_bodies.size == 0:
            raise ValueError("the pier's MJCF has no bodies named block_*")
        self.n_blocks = self._block_bodies.size
        self._block_dofs = model.body_dofadr[self._block_bodies]
        # Every geom of each block (a custom MJCF may build a block from several), and the block of each.
        geom_counts = model.body_geomnum[self._block_bodies]
        self._block_geoms = np.concatenate(
            [model.body_geomadr[b] + np.arange(n) for b, n in zip(self._block_bodies, geom_counts)]
        )
        self._geom_block = np.repeat(np.arange(self.n_blocks), geom_counts)
        self._initial_block_x = model.body_pos[self._block_bodies, 0].copy()
        pitch = np.diff(np.sort(self._initial_block_x))
        self.pier_length = float(pitch.mean() * self.n_blocks)  # recycling period
        self._set_recycle_window()
        # HalfCheetah-v5 sized its observation from all joints; the observation is the cheetah's alone.
        skipped = int(self._exclude_current_positions_from_observation)
        self.observation_space = Box(low=-np.inf, high=np.inf, shape=(2 * CHEETAH_NQ - skipped,), dtype=np.float64)
        self.observation_structure = {"skipped_qpos": skipped, "qpos": CHEETAH_NQ - skipped, "qvel": CHEETAH_NQ}
        self._first_observed_qpos = skipped

    def _draw_task(self, rng: np.random.Generator) -> Task:
        return {key: tuple(rng.uniform(*self._ranges[key], size=self.n_blocks).tolist()) for key in TASK_KEYS}

    def _validate_task(self, task: Any) -> Task:
        check_task_keys(task, TASK_KEYS)
        clean = {}
        for key in TASK_KEYS:
            try:
                values = real_array(f"task[{key!r}]", task[key])
            except TypeError as error:
                raise ValueError(str(error)) from None
            low, high = self._ranges[key]
            if values.shape != (self.n_blocks,) or not (np.isfinite(values).all() and (low <= values).all() and (values <= high).all()):
                raise ValueError(f"task[{key!r}] must be {self.n_blocks} numbers in [{low}, {high}], got {task[key]!r}")
            clean[key] = tuple(values.tolist())
        return clean

    def _apply_task(self) -> None:
        self.model.dof_damping[self._block_dofs] = self._task["damping"]
        self.model.geom_friction[self._block_geoms, 0] = np.asarray(self._task["friction"])[self._geom_block]

    def task_features(self, task: Task) -> np.ndarray:
        return np.concatenate([task["damping"], task["friction"]])

    def _get_obs(self) -> np.ndarray:
        return np.concatenate([self.data.qpos[self._first_observed_qpos : CHEETAH_NQ], self.data.qvel[:CHEETAH_NQ]])

    def reset_model(self) -> np.ndarray:
        self.model.body_pos[self._block_bodies, 0] = self._initial_block_x  # body positions outlive mj_resetData
        self._set_recycle_window()
        return super().reset_model()

    def do_simulation(self, ctrl, n_frames) -> None:
        self._recycle_blocks()
        super().do_simulation(ctrl, n_frames)

    def _recycle_blocks(self) -> None:
        """Move every block by whole pier lengths into ``[x - L/2, x + L/2)`` around the cheetah's ``x``."""
        x = self.data.qpos[0]
        if self._recycle_window[0] <= x < self._recycle_window[1]:
            return  # the common case, one comparison: every block is already within half a pier of x
        block_x = self.model.body_pos[self._block_bodies, 0]
        # Whole-length shifts: exactly 0 for a block already in range, so positions never drift.
        shift = np.floor((x - block_x + 0.5 * self.pier_length) / self.pier_length) * self.pier_length
        self.model.body_pos[self._block_bodies, 0] = block_x + shift
        self._set_recycle_window()

    def _set_recycle_window(self) -> None:
        """The interval of cheetah positions ``x`` for which no block is more than half a pier away."""
        block_x = self.model.body_pos[self._block_bodies, 0]
        half = 0.5 * self.pier_length
        self._recycle_window = (float(block_x.max()) - half, float(block_x.min()) + half)

    def block_heights(self) -> np.ndarray:
        """Vertical displacement of each block from its rest height (m), in slot order."""
        return self.data.qpos[self.model.jnt_qposadr[self.model.body_jntadr[self._block_bodies]]].copy()
