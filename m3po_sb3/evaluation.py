"""Evaluation of meta-policies: SB3's ``EvalCallback`` that also appends each evaluation to a CSV file."""

import csv
import os

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.vec_env import VecEnv

CSV_COLUMNS = ("timesteps", "mean_return", "std_return", "n_episodes")


class MetaEvalCallback(EvalCallback):
    """
    Every ``eval_freq`` steps, run the (by default deterministic) policy for ``n_eval_episodes`` episodes
    (a meta-env switches tasks inside its episodes by itself), log the returns through SB3's logger
    (``eval/mean_reward``, as ``EvalCallback``) and append a row to ``csv_path`` with the columns
    ``timesteps, mean_return, std_return, n_episodes``. SB3's ``evaluations.npz`` is written beside it.

    :param eval_env: the evaluation env (wrapped like the training env, e.g. with ``HistoryObservation``)
    :param csv_path: CSV file to append to (created with its header if missing)
    :param n_eval_episodes: episodes per evaluation
    :param eval_freq: evaluate every ``eval_freq`` calls (env steps of a single env)
    :param deterministic: evaluate the deterministic policy
    :param callback_after_eval: callback triggered after every evaluation
    :param best_model_save_path: folder to save the best model in (``None``: not saved)
    :param verbose: verbosity level
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

    def _init_callback(self) -> None:
        super()._init_callback()
        if not os.path.exists(self.csv_path):
            with open(self.csv_path, "w", newline="") as file:
                csv.writer(file).writerow(CSV_COLUMNS)

    def _on_step(self) -> bool:
        n_evaluations = len(self.evaluations_results)
        continue_training = super()._on_step()
        if len(self.evaluations_results) > n_evaluations:
            returns = self.evaluations_results[-1]
            with open(self.csv_path, "a", newline="") as file:
                csv.writer(file).writerow([self.num_timesteps, np.mean(returns), np.std(returns), len(returns)])
        return continue_training
