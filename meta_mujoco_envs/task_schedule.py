"""When the task switches: a step counter over simulated time, independent of any robot.

Three schedules, chosen by the environments' ``task_schedule`` argument:

- ``"periodic"`` (:class:`PeriodicSchedule`): every ``task_switch_seconds``, optionally jittered (the paper's);
- ``"memoryless"`` (:class:`MemorylessSchedule`): a switch at rate ``1 / task_switch_seconds`` per simulated
  second, i.e. exponential waiting times (a Poisson process, as in NS-Gym's or CARL's random context changes);
- a callable ``f(rng) -> seconds`` (:class:`CallableSchedule`): the user's waiting times.

Every draw uses the env's ``np_random``, so ``reset(seed=...)`` fixes the whole switch sequence.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from meta_mujoco_envs.checks import is_real

WaitingTime = Callable[[np.random.Generator], float]


class TaskSchedule:
    """Counts down the env steps of the current task period; subclasses draw each period's length.

    :param dt: simulated seconds per env step.
    """

    def __init__(self, dt: float) -> None:
        self.dt = dt
        self._steps_left = math.inf

    @property
    def task_switch_seconds(self) -> float | None:
        """The nominal (periodic) or mean (memoryless) seconds between switches; ``None`` if there is none."""
        return None

    @property
    def steps_per_task(self) -> int | None:
        """Nominal steps in one task period (``None`` without a nominal period)."""
        seconds = self.task_switch_seconds
        return None if seconds is None else int(round(seconds / self.dt))

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
        """Steps in the next task period, ``>= 1`` (``math.inf``: no further switch)."""
        raise NotImplementedError


def check_seconds(name: str, seconds: object, dt: float) -> float:
    """``seconds`` as a float if it is a finite number of seconds of at least one env step, else an error."""
    if not is_real(seconds):
        raise TypeError(f"{name} must be a number of seconds, got {seconds!r}")
    if not math.isfinite(seconds):
        raise ValueError(f"{name} must be a finite number of seconds, got {seconds!r}")
    if seconds <= 0:
        raise ValueError(f"{name} must be > 0, got {seconds}")
    if seconds < dt * (1 - 1e-9):
        raise ValueError(f"{name}={seconds} is shorter than one env step (dt={dt}); the task would switch on every step")
    return float(seconds)


class PeriodicSchedule(TaskSchedule):
    """A switch every ``round(task_switch_seconds / dt)`` steps of simulated time.

    With ``jitter > 0`` each period is drawn as ``round(task_switch_seconds * (1 + U(-jitter, jitter)) / dt)``
    steps (the paper's "around every 15 s"). ``task_switch_seconds=None`` means one task per episode.

    :param task_switch_seconds: simulated seconds between switches, or ``None`` for no switch.
    :param dt: simulated seconds per env step.
    :param jitter: relative half-width of the uniform jitter on each period, in ``[0, 1)``.
    """

    def __init__(self, task_switch_seconds: float | None, dt: float, jitter: float = 0.0) -> None:
        super().__init__(dt)
        if task_switch_seconds is not None:
            task_switch_seconds = check_seconds("task_switch_seconds", task_switch_seconds, dt)
        if not is_real(jitter):
            raise TypeError(f"task_switch_jitter must be a number, got {jitter!r}")
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"task_switch_jitter must be in [0, 1), got {jitter!r}")
        if jitter > 0 and task_switch_seconds is None:
            raise ValueError("task_switch_jitter needs a task_switch_seconds; got None (no switching)")
        self._seconds = task_switch_seconds
        self.jitter = float(jitter)

    @property
    def task_switch_seconds(self) -> float | None:
        return self._seconds

    def _draw_period(self, np_random: np.random.Generator) -> float:
        if self._seconds is None:
            return math.inf
        if self.jitter == 0.0:
            return self.steps_per_task
        seconds = self._seconds * (1.0 + np_random.uniform(-self.jitter, self.jitter))
        return max(1, int(round(seconds / self.dt)))


class MemorylessSchedule(TaskSchedule):
    """A switch at rate ``1 / mean_seconds`` per simulated second: exponential waiting times, seen in steps.

    Whether a switch happens does not depend on how long the task has lasted. In steps, the waiting time is
    geometric with ``p = 1 - exp(-dt / mean_seconds)``: exactly an exponential waiting time rounded up to whole
    steps, so a period lasts one step or more and ``mean_seconds`` is the mean up to that rounding.

    :param mean_seconds: mean simulated seconds between switches (the inverse of the rate).
    :param dt: simulated seconds per env step.
    """

    def __init__(self, mean_seconds: float, dt: float) -> None:
        super().__init__(dt)
        self._seconds = check_seconds("task_switch_seconds", mean_seconds, dt)
        self._p_switch = -math.expm1(-dt / self._seconds)

    @property
    def task_switch_seconds(self) -> float:
        return self._seconds

    def _draw_period(self, np_random: np.random.Generator) -> float:
        return int(np_random.geometric(self._p_switch))


class CallableSchedule(TaskSchedule):
    """Waiting times drawn by the user: ``waiting_time(rng)`` gives the seconds until the next switch.

    ``rng`` is the env's ``np_random``, so a seeded ``reset`` gives the same switches. The seconds are rounded
    to whole steps (at least one); ``math.inf`` means no further switch in the episode.

    :param waiting_time: ``f(rng: np.random.Generator) -> float``, positive simulated seconds.
    :param dt: simulated seconds per env step.
    """

    def __init__(self, waiting_time: WaitingTime, dt: float) -> None:
        super().__init__(dt)
        if not callable(waiting_time):
            raise TypeError(f"a task schedule must be 'periodic', 'memoryless' or a callable, got {waiting_time!r}")
        self.waiting_time = waiting_time

    def _draw_period(self, np_random: np.random.Generator) -> float:
        seconds = self.waiting_time(np_random)
        if not is_real(seconds) or math.isnan(seconds) or seconds <= 0:
            raise ValueError(f"the task schedule {self.waiting_time!r} must return positive seconds, got {seconds!r}")
        return math.inf if math.isinf(seconds) else max(1, int(round(seconds / self.dt)))


def make_schedule(
    task_schedule: str | WaitingTime, task_switch_seconds: float | None, jitter: float, dt: float
) -> TaskSchedule:
    """The schedule named by an env's ``task_schedule`` argument, with its ``task_switch_*`` arguments."""
    if task_schedule == "periodic":
        return PeriodicSchedule(task_switch_seconds, dt, jitter)
    if jitter != 0.0:
        raise ValueError(f"task_switch_jitter applies to the periodic schedule only, got task_schedule={task_schedule!r}")
    if task_schedule == "memoryless":
        if task_switch_seconds is None:
            raise ValueError("the memoryless schedule needs task_switch_seconds (its mean waiting time); got None")
        return MemorylessSchedule(task_switch_seconds, dt)
    return CallableSchedule(task_schedule, dt)
