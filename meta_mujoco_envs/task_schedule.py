"""When the task switches: a step counter over simulated time, independent of any robot."""

from __future__ import annotations

import math

import numpy as np

from meta_mujoco_envs.checks import is_real


class TaskSchedule:
    """Decides at which env steps a new task is drawn.

    A task period lasts ``round(task_switch_seconds / dt)`` steps of simulated time. With ``jitter > 0``
    each period is drawn as ``round(task_switch_seconds * (1 + U(-jitter, jitter)) / dt)`` steps (the
    paper's "around every 15 s"); the draw uses the env's own ``np_random`` so a seed fixes it.
    ``task_switch_seconds=None`` means one task per episode.

    :param task_switch_seconds: simulated seconds between switches, or ``None`` for no switch.
    :param dt: simulated seconds per env step.
    :param jitter: relative half-width of the uniform jitter on each period, in ``[0, 1)``.
    """

    def __init__(self, task_switch_seconds: float | None, dt: float, jitter: float = 0.0) -> None:
        if task_switch_seconds is not None:
            if not is_real(task_switch_seconds):
                raise TypeError(f"task_switch_seconds must be a number of seconds or None, got {task_switch_seconds!r}")
            if not math.isfinite(task_switch_seconds):
                raise ValueError(f"task_switch_seconds must be a finite number or None, got {task_switch_seconds!r}")
            if task_switch_seconds <= 0:
                raise ValueError(f"task_switch_seconds must be > 0 (or None for no switch), got {task_switch_seconds}")
            if task_switch_seconds < dt * (1 - 1e-9):
                raise ValueError(
                    f"task_switch_seconds={task_switch_seconds} is shorter than one env step (dt={dt}); "
                    "the task would switch on every step"
                )
            task_switch_seconds = float(task_switch_seconds)
        if not is_real(jitter):
            raise TypeError(f"task_switch_jitter must be a number, got {jitter!r}")
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"task_switch_jitter must be in [0, 1), got {jitter!r}")
        if jitter > 0 and task_switch_seconds is None:
            raise ValueError("task_switch_jitter needs a task_switch_seconds; got None (no switching)")
        self.task_switch_seconds = task_switch_seconds
        self.dt = dt
        self.jitter = float(jitter)
        self._steps_left = math.inf

    @property
    def steps_per_task(self) -> int | None:
        """Nominal steps in one task period (``None`` without switching)."""
        if self.task_switch_seconds is None:
            return None
        return int(round(self.task_switch_seconds / self.dt))

    def reset(self, np_random: np.random.Generator) -> None:
        """Start a new episode: the first period begins now."""
        self._steps_left = self._draw_period(np_random)

    def step(self, np_random: np.random.Generator) -> bool:
        """Advance by one env step; ``True`` when this step starts a new task period.

        Call it at the start of a step: the step on which it returns ``True`` already runs under the new task.
        """
        if self._steps_left > 0:
            self._steps_left -= 1
            return False
        # The previous period is over: this step opens the next one (and counts as its first step).
        self._steps_left = self._draw_period(np_random) - 1
        return True

    def _draw_period(self, np_random: np.random.Generator) -> float:
        if self.task_switch_seconds is None:
            return math.inf
        if self.jitter == 0.0:
            return self.steps_per_task
        seconds = self.task_switch_seconds * (1.0 + np_random.uniform(-self.jitter, self.jitter))
        return max(1, int(round(seconds / self.dt)))
