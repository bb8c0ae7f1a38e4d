"""What all six environments share: the task API, in-episode task switching, input checks, blow-up guard.

``NonStationaryTaskEnv`` is a mixin placed *before* a Gymnasium v5 MuJoCo class in the bases, so the
robot, its reward and its termination stay those of Gymnasium; a subclass only says how a task is drawn,
checked, applied to the MuJoCo model, and (optionally) shown in the observation.
"""

from __future__ import annotations

import math
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import gymnasium as gym
import gymnasium.envs.mujoco
import mujoco
import numpy as np
from gymnasium import utils
from gymnasium.spaces import Box

from meta_mujoco_envs.checks import real_numbers
from meta_mujoco_envs.task_schedule import TaskSchedule, WaitingTime, make_schedule

Task = dict[str, Any]

RESET_OPTIONS = ("task",)
# MuJoCo resets an unstable simulation by itself and counts it in these warnings (mj_checkPos/Vel/Acc).
_BAD_STATE_WARNINGS = slice(int(mujoco.mjtWarning.mjWARN_BADQPOS), int(mujoco.mjtWarning.mjWARN_BADQACC) + 1)
_TASK_SAMPLER_STREAM = 0x5A3  # sample_tasks' generator is seeded with (seed, this): a stream apart from np_random
# Gymnasium's own MJCF files; HalfCheetah-v5's sets the cheetah's mass with the compiler attribute settotalmass,
# which MuJoCo 4 deprecates with a warning at every compilation. It is silenced for these files only.
_GYMNASIUM_ASSETS = Path(gymnasium.envs.mujoco.__file__).resolve().parent / "assets"
_SETTOTALMASS_DEPRECATION = "compiler attribute 'settotalmass' is deprecated"


def asset_path(name: str) -> str:
    """Path of MJCF file ``name``: installed as package data ``meta_mujoco_envs.assets``, or in a source checkout."""
    try:
        return str(resources.files("meta_mujoco_envs.assets") / name)
    except ModuleNotFoundError:  # running from a source checkout that was not pip-installed
        return str(Path(__file__).resolve().parents[1] / "assets" / name)


class NonStationaryTaskEnv:
    """Mixin: a task drawn at ``reset`` and redrawn every ``task_switch_seconds`` of simulated time (or on
    another schedule).

    Subclasses implement :meth:`_draw_task`, :meth:`_validate_task`, :meth:`_apply_task` and
    :meth:`task_features`; one with constructor arguments of its own sets them before calling this
    ``__init__`` (the first task is drawn here) and records them for pickling with ``EzPickle`` after.

    :param task_switch_seconds: simulated seconds between task switches (the period, or the mean waiting time of
        the memoryless schedule); ``None``: one task per episode.
    :param task_switch_jitter: relative jitter of each period, ``U(-j, j)``; 0 (off) by default.
    :param task_in_obs: append :meth:`task_features` of the task in force to the observation (oracle).
    :param task_schedule: ``"periodic"`` (default), ``"memoryless"`` (exponential waiting times of mean
        ``task_switch_seconds``) or a callable ``f(rng) -> seconds`` drawing each waiting time with the env's
        ``np_random`` (``task_switch_seconds`` unused); see :mod:`meta_mujoco_envs.task_schedule`.
    :param task_switch_in_obs: append one more entry to the observation, 1.0 on the step that opened a new
        task period and 0.0 otherwise (a notification for oracle baselines; ``info["task_switched"]`` always
        carries it).
    :param kwargs: passed to the Gymnasium v5 class (``xml_file``, ``frame_skip``, reward weights,
        ``reset_noise_scale``, ``render_mode``, ...).

    Every ``info`` carries ``"task"`` (the task in force for this step's dynamics and reward),
    ``"task_switched"`` (``True`` on the step that opened a new task period) and ``"physics_diverged"``.
    ``observation_structure`` (the v5 attribute) counts the appended entries too, as ``"task"`` and
    ``"task_switched"``.

    Where the task changes nothing, the env is its Gymnasium v5 base bit for bit: the same compiled model (from
    the same MJCF), the same reward terms computed in the action's own dtype, the same observations and ``info``.
    """

    _task: Task
    _schedule: TaskSchedule

    def __init__(
        self,
        task_switch_seconds: float | None = 15.0,
        task_switch_jitter: float = 0.0,
        task_in_obs: bool = False,
        task_schedule: str | WaitingTime = "periodic",
        task_switch_in_obs: bool = False,
        **kwargs: Any,
    ) -> None:
        for name, flag in (("task_in_obs", task_in_obs), ("task_switch_in_obs", task_switch_in_obs)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        super().__init__(**kwargs)  # the Gymnasium v5 robot, with its own arguments
        # The v5 class recorded only its own arguments for pickling; record ours too (subclasses with extra
        # arguments record again, after this).
        utils.EzPickle.__init__(
            self,
            task_switch_seconds=task_switch_seconds,
            task_switch_jitter=task_switch_jitter,
            task_in_obs=task_in_obs,
            task_schedule=task_schedule,
            task_switch_in_obs=task_switch_in_obs,
            **kwargs,
        )
        self._prepare_model()
        self._schedule = make_schedule(task_schedule, task_switch_seconds, task_switch_jitter, self.dt)
        self._task_in_obs = bool(task_in_obs)
        self._switch_in_obs = bool(task_switch_in_obs)
        self._initial_task = None
        self._task_sampler = np.random.default_rng()
        self._time_limit_checked = False
        # A view on MuJoCo's counters of its own resets of an unstable simulation, read after every step.
        self._bad_state_counts = self.data.warning.number[_BAD_STATE_WARNINGS]
        self._no_bad_state = bytes(self._bad_state_counts.nbytes)
        self._action_shape = self.action_space.shape
        self._put_in_force(self._draw_task(self.np_random))
        if self._task_in_obs or self._switch_in_obs:
            base, n_task = self.observation_space, self._task_obs.size if self._task_in_obs else 0
            flag = np.ones(int(self._switch_in_obs))  # the switch flag lies in [0, 1]
            self.observation_space = Box(
                low=np.concatenate([base.low, np.full(n_task, -np.inf), 0 * flag]),
                high=np.concatenate([base.high, np.full(n_task, np.inf), flag]),
                dtype=base.dtype,
            )
            if hasattr(self, "observation_structure"):  # not every v5 class has one
                appended = {"task": n_task, "task_switched": flag.size}
                self.observation_structure = {
                    **self.observation_structure,
                    **{name: size for name, size in appended.items() if size},
                }
        self._last_obs = np.zeros(self.observation_space.shape, dtype=self.observation_space.dtype)

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        """Compile the MJCF as ``MujocoEnv`` does, without the deprecation warning of v5's own cheetah MJCF.

        Gymnasium's ``MjModel.from_xml_path`` gets MuJoCo's warnings printed (and appended to ``MUJOCO_LOG.TXT`` in
        the working directory) by MuJoCo itself; ``MjSpec.compile`` builds the same model byte for byte and turns
        them into Python warnings, of which the one deprecating ``settotalmass`` is dropped for Gymnasium's own files.
        Loading v5's file, rather than a copy with the masses set another way, keeps the model identical to v5's: a
        copy's masses match only to rounding, and the cheetah's dynamics amplify that into diverging trajectories.
        """
        spec = mujoco.MjSpec.from_file(self.fullpath)
        with warnings.catch_warnings():
            if Path(self.fullpath).resolve().parent == _GYMNASIUM_ASSETS:
                warnings.filterwarnings("ignore", message=_SETTOTALMASS_DEPRECATION, category=UserWarning)
            model = spec.compile()
        # As MujocoEnv._initialize_simulation: grow the offscreen framebuffer to the render size, never shrink it.
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        return model, mujoco.MjData(model)

    # ------------------------------------------------------------------ hooks for subclasses
    def _prepare_model(self) -> None:
        """Once, after the robot is built and before the first task: index what tasks edit, keep defaults."""

    def _draw_task(self, rng: np.random.Generator) -> Task:
        """One task drawn with ``rng``, clean as :meth:`_validate_task` returns it (it is put in force unchecked)."""
        raise NotImplementedError

    def _validate_task(self, task: Any) -> Task:
        """Return a clean copy of ``task`` or raise ``ValueError`` naming what is wrong."""
        raise NotImplementedError

    def _apply_task(self) -> None:
        """Write ``self._task`` into the MuJoCo model (absolute values: edits persist across resets)."""
        raise NotImplementedError

    def task_features(self, task: Task) -> np.ndarray:
        """The task as a flat float vector (what ``task_in_obs=True`` appends to the observation)."""
        raise NotImplementedError

    def termination_fn(self, next_obs: np.ndarray) -> np.ndarray:
        """Whether each of a batch of observations ``(N, obs_dim)`` ends the episode by the env's health rule.

        For model-based rollouts: the same rule as ``step`` applies to real states. Default: never.
        """
        return np.zeros(np.shape(next_obs)[0], dtype=bool)

    def action_reward_fn(self, actions: np.ndarray) -> np.ndarray:
        """The reward term that is a known function of the action alone, for a batch ``(N, act_dim)``: the v5
        control cost, ``-ctrl_cost_weight * sum(action**2)`` (``info["reward_ctrl"]``), the same for every task.

        For model-based agents that take it as known instead of learning it (``M3PO(known_action_reward=True)``).
        """
        # v5's own ``control_cost`` cannot serve: it takes one action (Humanoid's reads ``data.ctrl``), not a batch.
        actions = np.asarray(actions)
        return -self._ctrl_cost_weight * np.sum(np.square(actions), axis=-1)

    # ------------------------------------------------------------------ task API
    @property
    def task_switch_seconds(self) -> float | None:
        """The period (periodic schedule) or mean waiting time (memoryless); ``None`` for a callable or none."""
        return self._schedule.task_switch_seconds

    @property
    def steps_per_task(self) -> int | None:
        """``round(task_switch_seconds / dt)``: env steps in one (unjittered, or mean) task period."""
        return self._schedule.steps_per_task

    @property
    def task_schedule(self) -> TaskSchedule:
        """The schedule of the switches."""
        return self._schedule

    def sample_tasks(self, n_tasks: int) -> list[Task]:
        """Draw ``n_tasks`` tasks from the env's task distribution.

        They come from a generator of their own, seeded by ``reset(seed=...)``: drawing tasks for a user leaves
        the episode's own task sequence (and so a seeded run) unchanged.
        """
        if isinstance(n_tasks, (bool, np.bool_)) or not isinstance(n_tasks, (int, np.integer)) or n_tasks < 0:
            raise ValueError(f"n_tasks must be a non-negative integer, got {n_tasks!r}")
        return [self._draw_task(self._task_sampler) for _ in range(int(n_tasks))]

    def set_task(self, task: Task) -> None:
        """Put ``task`` in force now; it holds until the next scheduled switch or ``reset``."""
        self._put_in_force(self._validate_task(task))

    def _put_in_force(self, task: Task) -> None:
        """Put a clean task in force: a checked one, or one of :meth:`_draw_task`'s, which need no check (the
        env draws a task at every reset and switch)."""
        self._task = task
        self._apply_task()
        if self._task_in_obs:
            self._task_obs = self.task_features(task)

    def get_task(self) -> Task:
        """A copy of the task in force (task values are immutable, so a shallow copy is a full one)."""
        return dict(self._task)

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset the robot and draw the first task (or take ``options["task"]``, the only option)."""
        if options is not None and not isinstance(options, dict):
            raise TypeError(f"options must be a dict or None, got {type(options).__name__}")
        unknown = sorted(set(options or {}) - set(RESET_OPTIONS))
        if unknown:
            raise ValueError(f"unknown reset options {unknown}; the options are {list(RESET_OPTIONS)}")
        if seed is not None:
            self._task_sampler = np.random.default_rng([seed, _TASK_SAMPLER_STREAM])
        if not self._time_limit_checked:
            self._warn_if_time_limit_misses_switches()
        self._initial_task = None if options is None else options.get("task")
        return super().reset(seed=seed, options=options)

    def reset_model(self) -> np.ndarray:
        # Runs inside MujocoEnv.reset after seeding, so a seed fixes the whole task sequence; the task is put
        # in force before the base class places the robot, so the first observation already sees it.
        self._schedule.reset(self.np_random)
        if self._initial_task is None:
            self._put_in_force(self._draw_task(self.np_random))
        else:
            self.set_task(self._initial_task)
        obs = self._observe(super().reset_model(), switched=False)
        self._last_obs = obs.copy()
        return obs

    def _get_reset_info(self) -> dict[str, Any]:
        info = super()._get_reset_info()
        info.update(task=self.get_task(), task_switched=False, physics_diverged=False)
        return info

    def step(self, action):
        action = self._validated_action(action)
        switched = self._schedule.step(self.np_random)
        if switched:
            self._put_in_force(self._draw_task(self.np_random))
        obs, reward, terminated, truncated, info = super().step(action)
        obs = self._observe(obs, switched)
        # On a non-finite or huge state MuJoCo resets the simulation by itself, a silent teleport that it counts
        # in its BADQPOS/BADQVEL/BADQACC warnings (cleared by every reset): flagged like a non-finite observation.
        # Both tests are one cheap operation (bytes comparison; obs.dot(obs) is non-finite iff obs has a NaN/inf
        # entry or entries beyond 1e154), where numpy's any() costs several microseconds per step.
        diverged = self._bad_state_counts.tobytes() != self._no_bad_state or not (
            math.isfinite(obs.dot(obs)) and math.isfinite(reward)
        )
        # The last finite observation is kept as a copy and handed out as a new one: the user may hold and edit
        # (normalise in place) every array the env returned, and a later call must not return or alter it.
        if diverged:
            obs, reward, terminated = self._last_obs.copy(), 0.0, True
        else:
            self._last_obs = obs.copy()
        info["task"] = self.get_task()
        info["task_switched"] = switched
        info["physics_diverged"] = diverged
        return obs, reward, terminated, truncated, info

    # ------------------------------------------------------------------ helpers
    def _observe(self, obs: np.ndarray, switched: bool) -> np.ndarray:
        """The v5 observation, then the task's features and the switch flag if they are asked for."""
        if not (self._task_in_obs or self._switch_in_obs):
            return obs
        parts = [obs]
        if self._task_in_obs:
            parts.append(self._task_obs)
        if self._switch_in_obs:
            parts.append([float(switched)])
        return np.concatenate(parts)

    def _validated_action(self, action: Any) -> np.ndarray:
        """``action``, checked, in its own dtype: v5 computes the control cost in it (float32 for SB3's actions)."""
        # One test on the common path (it runs at every step); the precise error is worked out when it fails.
        array = np.asarray(action)
        if array.dtype.kind in "iuf" and array.shape == self._action_shape and math.isfinite(array.dot(array)):
            return array  # NaN/inf propagate through the dot product
        array = real_numbers("action", action)
        if array.shape != self._action_shape:
            raise ValueError(f"{type(self).__name__}: action has shape {array.shape}, expected {self._action_shape}")
        if np.isfinite(array).all():  # finite, but its square overflows its dtype
            raise ValueError(f"{type(self).__name__}: action out of range (too large), got {array}")
        raise ValueError(f"{type(self).__name__}: action contains non-finite values: {array}")

    def _warn_if_time_limit_misses_switches(self) -> None:
        """Warn once if the registered time limit, in steps, does not span two task periods at this ``dt``.

        The registered limits are counted in steps for the default ``frame_skip`` and period; another
        ``frame_skip`` (or a longer period) changes how much simulated time, and how many switches, they cover.
        ``gym.make`` keeps the limit in its ``TimeLimit`` wrapper, out of the env's sight: the warning cannot tell
        whether the user passed ``max_episode_steps`` and says so.
        """
        self._time_limit_checked = True
        spec, period = self.spec, self.task_switch_seconds
        if spec is None or period is None or self.steps_per_task is None:
            return
        try:
            registered = gym.spec(spec.id).max_episode_steps
        except gym.error.Error:
            return
        if registered is None:
            return
        switches = (registered - 1) // self.steps_per_task  # a switch opens steps P, 2P, ...
        if switches < 2:
            warnings.warn(
                f"{spec.id}: its registered time limit of {registered} steps lasts {registered * self.dt:g} s at "
                f"dt={self.dt:g} and sees {switches} task switch(es) of {period:g} s; unless you passed "
                f"max_episode_steps to gym.make, pass max_episode_steps={2 * self.steps_per_task + 1} or more for two",
                stacklevel=3,
            )
