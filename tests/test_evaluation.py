"""MetaEvalCallback: every evaluation on the same episodes, and the random policy's return."""

import gymnasium as gym
import pytest
from stable_baselines3 import SAC
from stable_baselines3.common.env_util import make_vec_env

from m3po_sb3.callbacks.evaluation import MetaEvalCallback, random_policy_returns
from m3po_sb3.run.plotting import read_eval_csv


@pytest.mark.parametrize("eval_seed", [3, None])
def test_with_an_eval_seed_every_evaluation_runs_the_same_episodes(tmp_path, eval_seed):
    agent = SAC("MlpPolicy", "Pendulum-v1", learning_starts=1000, seed=0)  # no update: one policy throughout
    eval_env = make_vec_env("Pendulum-v1", env_kwargs=dict(max_episode_steps=20), seed=1)
    callback = MetaEvalCallback(eval_env, str(tmp_path / "eval.csv"), n_eval_episodes=2, eval_freq=5, eval_seed=eval_seed)
    agent.learn(15, callback=callback)
    returns = read_eval_csv(tmp_path / "eval.csv")["mean_return"]
    assert len(returns) == 3 and (len(set(returns)) == 1) == (eval_seed is not None)


def test_the_random_policy_return_is_that_of_uniform_actions():
    env = make_vec_env(lambda: gym.wrappers.TimeLimit(gym.make("MountainCarContinuous-v0").unwrapped, 30))
    env.seed(0)
    returns = random_policy_returns(env, 40, seed=0)
    # MountainCarContinuous pays -0.1 a² per step and does not reach the goal within 30 random steps:
    # uniform a on [-1, 1] has E[a²] = 1/3, so the mean return is -30 * 0.1 / 3 = -1 (std of the mean ~ 0.03).
    assert returns.shape == (40,) and abs(returns.mean() + 1.0) < 0.15
