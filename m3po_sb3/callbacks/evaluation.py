"""Evaluation of meta-policies: SB3's ``EvalCallback`` that also appends each evaluation to a CSV file, and the
random policy's return, the floor of a learning curve."""

import csv
import os
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv

CSV_COLUMNS = ("timesteps", "mean_return", "std_return", "n_episodes")


def append_eval_row(csv_path: str | os.PathLike, timesteps: int, returns: Sequence[float]) -> None:
    """
    Append one evaluation to a CSV file (created with its header if missing).

    :param csv_path: the CSV file, columns :data:`CSV_COLUMNS`
    :param timesteps: the env step of the evaluation
    :param returns: the return of each evaluation episode
    """
    new = not os.path.exists(csv_path)
    with open(csv_path, "a", newline="") as file:
        writer = csv.writer(file)
        if new:
            writer.writerow(CSV_COLUMNS)
        writer.writerow([timesteps, np.mean(returns), np.std(returns), len(returns)])


class MetaEvalCallback(EvalCallback):
    """
    Every ``eval_freq`` steps, run the (by default deterministic) policy for ``n_eval_episodes`` episodes
    (a meta-env switches tasks inside its episodes by itself), log the returns through SB3's logger
    (``eval/mean_reward``, as ``EvalCallback``) and append a row to ``csv_path`` with the columns
    ``timesteps, mean_return, std_return, n_episodes``. SB3's ``evaluations.npz`` is written beside it.

    With ``eval_seed``, every evaluation reseeds ``eval_env``: all evaluations run the same episodes (task
    sequences and initial states), so the curve compares policies, not episode draws, and an evaluation
    depends on the policy alone. Evaluations fall on multiples of ``eval_freq`` env steps, counted from the
    agent's ``num_timesteps``, so a resumed agent keeps the schedule.

    :param eval_env: the evaluation env (wrapped like the training env, e.g. with ``HistoryObservation``)
    :param csv_path: CSV file to append to (created with its header at the first evaluation)
    :param n_eval_episodes: episodes per evaluation
    :param eval_freq: evaluate every ``eval_freq`` calls (env steps of a single env)
    :param deterministic: evaluate the deterministic policy
    :param callback_after_eval: callback triggered after every evaluation
    :param best_model_save_path: folder to save the best model in (``None``: not saved)
    :param eval_seed: seed of ``eval_env`` at every evaluation (``None``: seeded once, by the caller)
    :param verbose: 1: print a line per evaluation (SB3's ``EvalCallback``)
    """

    def __init__(
        self,
        eval_env: gym.Env | VecEnv,
        csv_path: str,
        n_eval_episodes: int = 5,
        eval_freq: int = 1000,
        deterministic: bool = True,
        callback_after_eval: BaseCallback | None = None,
        best_model_save_path: str | None = None,
        eval_seed: int | None = None,
        verbose: int = 0,
    ):
        # EvalCallback keeps each evaluation's returns only when it has a log path.
        super().__init__(
            eval_env,
            callback_after_eval=callback_after_eval,
            n_eval_episodes=n_eval_episodes,
            eval_freq=eval_freq,
            log_path=os.path.dirname(os.path.abspath(csv_path)),
            best_model_save_path=best_model_save_path,
            deterministic=deterministic,
            verbose=verbose,
        )
        self.csv_path = csv_path
        self.eval_seed = eval_seed

    def _on_training_start(self) -> None:
        super()._on_training_start()
        self.n_calls = self.model.num_timesteps // self.model.n_envs  # EvalCallback counts calls, not steps

    def _on_step(self) -> bool:
        if self.eval_seed is not None and self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:
            self.eval_env.seed(self.eval_seed)
        n_evaluations = len(self.evaluations_results)
        continue_training = super()._on_step()
        if len(self.evaluations_results) > n_evaluations:
            append_eval_row(self.csv_path, self.num_timesteps, self.evaluations_results[-1])
        return continue_training


class RandomPolicy:
    """
    Uniformly random actions behind SB3's ``predict``, for ``evaluate_policy`` (SB3 has no random agent).

    :param action_space: the env's action space
    :param seed: seed of its sampler
    """

    def __init__(self, action_space: gym.spaces.Space, seed: int | None = None):
        self.action_space = action_space
        self.action_space.seed(seed)

    def predict(
        self,
        observation: np.ndarray,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """:return: one random action per env of the batch ``observation``, and no recurrent state"""
        return np.stack([self.action_space.sample() for _ in range(len(observation))]), None


def random_policy_returns(env: VecEnv, n_episodes: int, seed: int | None = None) -> np.ndarray:
    """
    :param env: the evaluation env (seed it first to get the episodes of the evaluations)
    :param n_episodes: episodes to average over
    :param seed: seed of the random actions
    :return: the return of each episode of the uniformly random policy
    """
    returns, _ = evaluate_policy(RandomPolicy(env.action_space, seed), env, n_episodes, return_episode_rewards=True)  # type: ignore[arg-type]
    return np.asarray(returns, dtype=float)
