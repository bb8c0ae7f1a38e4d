"""Checkpoints a run can resume from, every so many steps and on Ctrl-C.

A checkpoint is a folder (``RUN/checkpoint``) holding everything a run's next step depends on:

- ``agent.zip``: SB3's ``save`` (networks, their optimisers, the entropy coefficient, counters, the last
  observation; for M3PO also the dynamics model and its optimiser);
- ``replay_buffer.pkl`` of an off-policy agent (SB3's ``save_replay_buffer``: M3PO's ``D_model``, SAC's replay buffer) and the
  buffers an agent saves itself (:class:`SavesExtraBuffers`; M3PO's ``env_buffer.pkl``, ``D_env``);
- ``state.pkl``: the random generators (Python, NumPy, torch, the action space's), the evaluation log of
  :class:`m3po_sb3.MetaEvalCallback` and the training env, pickled mid-episode with its state;
- ``files/``: copies of the run's CSV files (``eval.csv``, ``diagnostics.csv``) as they were at that step.

Gymnasium's MuJoCo envs pickle through ``EzPickle``, i.e. as their constructor arguments, which would give a
new env: :class:`EnvStatePickler` pickles their state instead (MuJoCo's ``MjModel`` and ``MjData`` pickle by
value), so a resumed run continues the training episode where it stopped and its evaluations equal an
uninterrupted run's (tested on Pendulum and HalfCheetah). An env that cannot be pickled at all (e.g. one
holding an OpenGL context) is made anew instead, and the resumed run starts a new training episode at the
checkpoint: identical up to it, different after it. The state of other callbacks is not saved:
:class:`m3po_sb3.DiagnosticsCallback` starts afresh (a new ``π_D``, no ``ε_m`` before the next model fit),
and as it draws from the global generators, a run with diagnostics does not resume bit-identically.

Checkpoints are taken at ``on_rollout_start``, after a step was stored and trained on (SB3's
``on_step`` comes between an env step and its storage, where no consistent state exists); for an on-policy
agent (RL²'s ``RecurrentPPO``) that is between two rollouts, so its rollout buffer is empty and not saved. A checkpoint is
written to ``checkpoint.tmp`` and then swapped in, so an interruption while saving keeps the previous one.
"""

import io
import pickle
import random
import shutil
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cloudpickle
import numpy as np
import torch as th
from gymnasium.utils import EzPickle
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.save_util import load_from_pkl, save_to_pkl
from stable_baselines3.common.vec_env import VecEnv


CHECKPOINT_DIR = "checkpoint"
# The evaluation log of SB3's EvalCallback: what it has measured, and the best mean return so far.
EVAL_STATE = ("evaluations_timesteps", "evaluations_results", "evaluations_length", "best_mean_reward", "last_mean_reward")


@runtime_checkable
class SavesExtraBuffers(Protocol):
    """An agent whose checkpoint needs buffers besides SB3's replay buffer (M3PO's ``D_env``): it saves and loads
    them itself, so that checkpoints need not know the agent's class."""

    def save_extra_buffers(self, folder: Path) -> None:
        """:param folder: the checkpoint folder to write the buffers into"""

    def load_extra_buffers(self, folder: Path) -> None:
        """:param folder: a checkpoint folder written by :meth:`save_extra_buffers`"""


class TrainingInterrupted(Exception):
    """Training stopped on request (Ctrl-C) after a checkpoint was saved.

    :param num_timesteps: the step of that checkpoint
    """

    def __init__(self, num_timesteps: int):
        super().__init__(f"training interrupted at step {num_timesteps}; a checkpoint was saved")
        self.num_timesteps = num_timesteps


def _restore_dict(obj: Any, state: dict[str, Any]) -> None:
    obj.__dict__.update(state)


class EnvStatePickler(cloudpickle.Pickler):
    """
    cloudpickle, except for ``EzPickle`` objects (Gymnasium's MuJoCo envs), which pickle their attributes (the
    simulation's ``MjData`` included) instead of their constructor arguments: they come back in their state.
    """

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, EzPickle):
            return object.__new__, (type(obj),), dict(obj.__dict__), None, None, _restore_dict
        return super().reducer_override(obj)


def pickle_env(env: VecEnv) -> bytes | None:
    """:return: ``env`` pickled with its state (:class:`EnvStatePickler`); ``None`` if it cannot be pickled"""
    file = io.BytesIO()
    try:
        EnvStatePickler(file).dump(env)
    except (TypeError, AttributeError, pickle.PicklingError) as error:
        warnings.warn(f"the training env cannot be pickled ({error}): a resumed run will start a new episode", stacklevel=2)
        return None
    return file.getvalue()


def rng_state(agent: BaseAlgorithm) -> dict[str, Any]:
    """:return: the states of the random generators a training step draws from"""
    state = dict(
        python=random.getstate(),
        numpy=np.random.get_state(),
        torch=th.get_rng_state(),
        action_space=agent.action_space.np_random.bit_generator.state,
    )
    if th.cuda.is_available():
        state["cuda"] = th.cuda.get_rng_state_all()
    return state


def set_rng_state(agent: BaseAlgorithm, state: dict[str, Any]) -> None:
    """:param state: from :func:`rng_state`"""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    th.set_rng_state(state["torch"])
    agent.action_space.np_random.bit_generator.state = state["action_space"]
    if "cuda" in state and th.cuda.is_available():
        th.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    agent: BaseAlgorithm, folder: str | Path, eval_callback: EvalCallback | None = None, files: Sequence[str | Path] = ()
) -> Path:
    """
    Save what a run needs to continue from its current step (see the module docstring).

    :param agent: the agent, between two steps
    :param folder: the checkpoint folder (replaced)
    :param eval_callback: the run's evaluation callback, whose log is saved
    :param files: files of the run (CSV logs) to keep as they are now
    :return: the checkpoint folder
    """
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "files").mkdir(parents=True)
    agent.save(tmp / "agent.zip")
    if isinstance(agent, OffPolicyAlgorithm):
        agent.save_replay_buffer(tmp / "replay_buffer.pkl")
    if isinstance(agent, SavesExtraBuffers):
        agent.save_extra_buffers(tmp)
    env = agent.get_env()
    assert env is not None
    state = dict(
        num_timesteps=agent.num_timesteps,
        rng=rng_state(agent),
        env=pickle_env(env),
        eval={name: getattr(eval_callback, name) for name in EVAL_STATE} if eval_callback is not None else None,
    )
    save_to_pkl(tmp / "state.pkl", state)
    for path in map(Path, files):
        if path.exists():
            shutil.copy2(path, tmp / "files" / path.name)
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def find_checkpoint(run_folder: str | Path) -> Path | None:
    """:return: the run's checkpoint folder (or the previous one, if a save was cut short), ``None`` if none"""
    for name in (CHECKPOINT_DIR, CHECKPOINT_DIR + ".old"):
        if (Path(run_folder) / name / "state.pkl").is_file():
            return Path(run_folder) / name
    return None


def load_buffers(agent: BaseAlgorithm, folder: str | Path) -> None:
    """
    Load a checkpoint's buffers into ``agent``: the replay buffer of an off-policy agent, and those an agent
    saves itself (:class:`SavesExtraBuffers`: ``D_env`` of the M3PO family).

    :param agent: the agent the checkpoint was saved from (or one of its class and spaces)
    :param folder: a checkpoint folder
    """
    if isinstance(agent, OffPolicyAlgorithm):
        agent.load_replay_buffer(Path(folder) / "replay_buffer.pkl")
    if isinstance(agent, SavesExtraBuffers):
        agent.load_extra_buffers(Path(folder))


def load_checkpoint(
    folder: str | Path, agent_class: type[BaseAlgorithm], make_env: Callable[[], VecEnv], device: str = "auto"
) -> tuple[BaseAlgorithm, dict[str, Any] | None]:
    """
    Rebuild an agent as it was at a checkpoint, its random generators included, and copy the checkpoint's
    CSV files back into the run folder (dropping rows written after it).

    :param folder: a checkpoint folder
    :param agent_class: the class that saved the agent
    :param make_env: makes the training env, used where the pickled one did not keep its state
    :param device: torch device
    :return: the agent, ready for ``learn(..., reset_num_timesteps=False)``, and the evaluation log
    """
    folder = Path(folder)
    state = load_from_pkl(folder / "state.pkl")
    agent = agent_class.load(folder / "agent.zip", device=device)
    if state["env"] is not None:
        agent.set_env(pickle.loads(state["env"]), force_reset=False)
    else:  # an env that could not be pickled: a new episode starts, its reset seeded by the seed and the step
        env = make_env()
        env.seed(None if agent.seed is None else agent.seed + agent.num_timesteps)
        agent.set_env(env, force_reset=True)
    load_buffers(agent, folder)
    for path in (folder / "files").iterdir():
        shutil.copy2(path, folder.parent / path.name)
    set_rng_state(agent, state["rng"])  # last: building the agent drew from them
    return agent, state["eval"]


def restore_eval_log(eval_callback: EvalCallback, log: dict[str, Any] | None) -> None:
    """
    :param eval_callback: a new evaluation callback of the resumed run
    :param log: the evaluation log returned by :func:`load_checkpoint`
    """
    for name, value in (log or {}).items():
        setattr(eval_callback, name, value)


class RunCheckpointCallback(BaseCallback):
    """
    Save a checkpoint every ``save_freq`` env steps, and when a stop was requested (Ctrl-C, see
    :func:`stop_on_interrupt`), after which training stops with :class:`TrainingInterrupted`.

    :param folder: the checkpoint folder
    :param save_freq: env steps between checkpoints (``<= 0``: only on a stop request)
    :param eval_callback: the run's evaluation callback, whose log is saved
    :param files: files of the run (CSV logs) saved with each checkpoint
    :param verbose: 1: print where each checkpoint goes
    """

    def __init__(
        self,
        folder: str | Path,
        save_freq: int,
        eval_callback: EvalCallback | None = None,
        files: Sequence[str | Path] = (),
        verbose: int = 0,
    ):
        super().__init__(verbose)
        self.folder = Path(folder)
        self.save_freq = save_freq
        self.eval_callback = eval_callback
        self.files = list(files)
        self.stop_requested = False
        self._last_saved = -1

    def _on_training_start(self) -> None:
        self._last_saved = self.model.num_timesteps  # a resumed run starts from its checkpoint

    def _on_rollout_start(self) -> None:
        steps = self.model.num_timesteps
        # A multiple of save_freq was reached since the last save (on-policy rollouts cross it, SAC's steps hit it).
        due = self.save_freq > 0 and steps // self.save_freq > self._last_saved // self.save_freq
        if due or self.stop_requested:
            save_checkpoint(self.model, self.folder, self.eval_callback, self.files)  # type: ignore[arg-type]
            self._last_saved = steps
            if self.verbose >= 1:
                print(f"Checkpoint at step {steps} saved to {self.folder}")
        if self.stop_requested:
            raise TrainingInterrupted(steps)

    def _on_step(self) -> bool:
        return True


@contextmanager
def stop_on_interrupt(callback: RunCheckpointCallback) -> Iterator[None]:
    """
    While inside, the first Ctrl-C (SIGINT) asks ``callback`` to save a checkpoint and stop after the current
    step; a second one interrupts at once (Python's ``KeyboardInterrupt``). Outside the main thread, where
    signals cannot be handled, it does nothing.

    :param callback: the run's checkpoint callback
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request_stop(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, previous)
        print("\nCtrl-C: stopping after this step with a checkpoint (Ctrl-C again: stop now, without one)", file=sys.stderr)
        callback.stop_requested = True

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
