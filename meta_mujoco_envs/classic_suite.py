"""What the classic meta-RL suite (PEARL's, VariBAD's, rand_param_envs' tasks) shares: one task per episode by
default, and an optional finite task set, such as the originals' fixed task lists.

The originals draw their task lists from numpy's global generator, some after reseeding it inside
``sample_tasks`` (PEARL's ``np.random.seed(1337)``), most unseeded. Here every draw uses the env's own
generators (seeded by ``reset(seed=...)``); the lists that the originals fixed by a seed are rebuilt by the
functions below with a private legacy ``RandomState``, so they hold the same values without touching numpy's
global state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from gymnasium import utils

from meta_mujoco_envs.base import NonStationaryTaskEnv, Task
from meta_mujoco_envs.checks import check_task_keys, real_array

PEARL_SEED = 1337  # the seed PEARL's cheetah-vel and point robots set before drawing their task lists


def pearl_cheetah_vel_tasks(n_tasks: int = 130) -> list[Task]:
    """PEARL's ``cheetah-vel`` list: ``n_tasks`` goal velocities ``U(0, 3)`` drawn after ``np.random.seed(1337)``.

    PEARL's config draws 130: the first 100 are its training tasks, the last 30 its evaluation tasks.
    """
    velocities = np.random.RandomState(PEARL_SEED).uniform(0.0, 3.0, size=(n_tasks,))
    return [{"velocity": float(v)} for v in velocities]


def pearl_point_robot_goals(n_tasks: int = 100) -> list[Task]:
    """PEARL's ``point-robot`` list (``randomize_tasks=True``): goals ``U(-1, 1)^2`` after ``np.random.seed(1337)``,
    x then y for each goal. PEARL's config uses the first 80 for training and the last 20 for evaluation."""
    rng = np.random.RandomState(PEARL_SEED)
    return [{"goal": (float(rng.uniform(-1.0, 1.0)), float(rng.uniform(-1.0, 1.0)))} for _ in range(n_tasks)]


def pearl_sparse_point_robot_goals(n_tasks: int = 100) -> list[Task]:
    """PEARL's ``sparse-point-robot`` list: ``n_tasks`` goals evenly spaced on the upper unit half-circle (angles
    ``linspace(0, pi, n_tasks)``), shuffled by ``np.random.shuffle`` after ``np.random.seed(1337)``."""
    angles = np.linspace(0.0, np.pi, num=n_tasks)
    goals = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    np.random.RandomState(PEARL_SEED).shuffle(goals)
    return [{"goal": (float(x), float(y))} for x, y in goals]


def check_goal(task: Any) -> tuple[float, float]:
    """The goal of a ``{"goal": (x, y)}`` task as two floats; a ``ValueError`` naming what is wrong otherwise."""
    check_task_keys(task, ("goal",))
    values = real_array("task['goal']", task["goal"])
    if values.shape != (2,) or not np.isfinite(values).all():
        raise ValueError(f"task['goal'] must be 2 finite numbers (x, y), got {task['goal']!r}")
    return float(values[0]), float(values[1])


def _train_test(make_list: Callable[[int], list[Task]], n_train: int, n_test: int) -> dict[str, Callable[[], list]]:
    """The names ``"pearl-train"``/``"pearl-test"`` of a PEARL list split as its config splits it."""
    return {
        "pearl-train": lambda: make_list(n_train + n_test)[:n_train],
        "pearl-test": lambda: make_list(n_train + n_test)[n_train:],
    }


PEARL_CHEETAH_VEL_SPLITS = _train_test(pearl_cheetah_vel_tasks, 100, 30)
PEARL_POINT_ROBOT_SPLITS = _train_test(pearl_point_robot_goals, 80, 20)
PEARL_SPARSE_POINT_ROBOT_SPLITS = _train_test(pearl_sparse_point_robot_goals, 80, 20)


class ClassicTaskEnv(NonStationaryTaskEnv):
    """Mixin for the classic suite: one task per episode unless ``task_switch_seconds`` is given, and tasks drawn
    from the env's distribution or, with ``tasks=...``, uniformly from a finite set.

    Subclasses implement :meth:`_sample_task` (one draw from the distribution) instead of ``_draw_task``, and
    name the originals' fixed lists they offer in ``NAMED_TASK_SETS``.

    :param tasks: ``None`` (the task distribution), a sequence of tasks (each drawn with equal probability), or
        the name of an original's fixed list in ``NAMED_TASK_SETS`` (e.g. ``"pearl-train"``).
    :param task_switch_seconds: ``None`` (default, as in the originals): one task per episode; a number of
        simulated seconds: a new task every that long inside the episode.
    :param kwargs: passed to :class:`~meta_mujoco_envs.base.NonStationaryTaskEnv` and the Gymnasium v5 class.
    """

    NAMED_TASK_SETS: dict[str, Callable[[], list[Task]]] = {}

    def __init__(self, tasks: Sequence[Task] | str | None = None, task_switch_seconds: float | None = None, **kwargs: Any):
        self._task_set = self._named_or_listed_tasks(tasks)  # checked at the first draw, once the model exists
        self._task_set_checked = False
        super().__init__(task_switch_seconds=task_switch_seconds, **kwargs)
        utils.EzPickle.__init__(self, tasks=tasks, task_switch_seconds=task_switch_seconds, **kwargs)

    @property
    def task_set(self) -> tuple[Task, ...] | None:
        """The finite set tasks are drawn from (``None``: the continuous distribution)."""
        return self._task_set

    def _named_or_listed_tasks(self, tasks: Any) -> list | None:
        if tasks is None:
            return None
        if isinstance(tasks, str):
            if tasks not in self.NAMED_TASK_SETS:
                raise ValueError(
                    f"{type(self).__name__}: unknown task set {tasks!r}; the named sets are {sorted(self.NAMED_TASK_SETS)}"
                )
            return self.NAMED_TASK_SETS[tasks]()
        if isinstance(tasks, dict) or not isinstance(tasks, Sequence) or len(tasks) == 0:
            raise ValueError(f"tasks must be None, a set name or a non-empty sequence of tasks, got {tasks!r}")
        return list(tasks)

    def _checked_set_task(self, index: int, task: Any) -> Task:
        try:
            return self._validate_task(task)
        except (TypeError, ValueError) as error:
            raise ValueError(f"tasks[{index}] is not a valid task: {error}") from error

    def _draw_task(self, rng: np.random.Generator) -> Task:
        if self._task_set is not None:
            if not self._task_set_checked:
                self._task_set = tuple(self._checked_set_task(i, task) for i, task in enumerate(self._task_set))
                self._task_set_checked = True
            return self._task_set[int(rng.integers(len(self._task_set)))]
        return self._sample_task(rng)

    def _sample_task(self, rng: np.random.Generator) -> Task:
        """One task drawn from the env's task distribution with ``rng``."""
        raise NotImplementedError
