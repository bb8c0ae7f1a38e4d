"""GHP-MDP as an agent: the histories it trains on, trajectory sampling, the SB3 plumbing (save/load, Ctrl-C,
MetaEvalCallback) and its errors. The model's latent is tested in ``test_latent_dynamics.py``."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from hidden_task_systems import SYSTEMS, hidden_task_data
from m3po_sb3.agents.ghp_mdp import GHPMDP, GHPMDPModel, transition_histories
from m3po_sb3.callbacks.evaluation import MetaEvalCallback
from m3po_sb3.history import HistoryLayout, HistoryObservation
from m3po_sb3.planning.mpc import TransitionData, Window, predicted_returns
from m3po_sb3.planning.planners import CEM

TINY_MODEL = dict(latent_dim=2, ensemble_size=2, hidden_units=16, num_hidden_layers=1, encoder_arch=(16,), epochs=2)
SMALL = dict(learning_starts=60, train_freq=60, particles=4, planner_kwargs=dict(horizon=4, n_candidates=16, n_elites=4, iterations=2), seed=0)


def _pendulum() -> HistoryObservation:
    return HistoryObservation(gym.make("Pendulum-v1", max_episode_steps=60), history_length=4)


def test_training_histories_are_the_windows_the_agent_saw():
    # Two episodes of Pendulum (torque bound 2) in HistoryObservation: the histories rebuilt from the transitions
    # must be the wrapper's observations, with the actions in the scaled space [-1, 1] the data keeps.
    env = HistoryObservation(gym.make("Pendulum-v1", max_episode_steps=7), history_length=3)
    layout, rows = env.history_layout, []
    env.action_space.seed(0)
    for episode in range(2):
        history, _ = env.reset(seed=episode)
        for _ in range(7):
            action = env.action_space.sample()
            next_history, reward, *_ = env.step(action)
            rows.append((history, action / 2.0, reward, next_history[: layout.obs_dim], episode))
            history = next_history
    histories, actions, rewards, next_obs, episodes = (np.array(column) for column in zip(*rows))
    columns = (histories[:, : layout.obs_dim], actions, rewards, next_obs)
    data = TransitionData(*(th.as_tensor(x, dtype=th.float32) for x in columns), th.as_tensor(episodes))
    current, past_obs, past_act, past_rew, mask = layout.split(th.as_tensor(histories))
    th.testing.assert_close(transition_histories(layout, data), layout.join(current, past_obs, past_act / 2.0, past_rew, mask))


def test_particles_keep_their_member_and_latent_along_the_horizon():
    layout = HistoryLayout(obs_dim=2, act_dim=1, history_length=3)
    model = GHPMDPModel(layout, 1e-3, **TINY_MODEL)
    window = Window(th.randn(1, 3, 2), th.rand(1, 3, 1), th.randn(1, 3), th.randn(1, 3, 2), th.ones(1, 3))
    context = model.adapt(window)
    obs, actions = th.randn(5, 2), th.rand(5, 1)
    with th.no_grad():
        _, _, context = model.step(context, obs, actions)
        z = context["z"].clone()
        _, _, context = model.step(context, obs, actions)
    assert z.shape == (5, 2) and th.equal(context["z"], z)
    # Row r goes to member r mod B: rows 0, 2, 4 to member 0, rows 1, 3 to member 1.
    grouped = model._by_member(th.arange(5.0)[:, None])
    assert grouped[..., 0].tolist() == [[0.0, 2.0, 4.0], [1.0, 3.0, 0.0]]
    th.testing.assert_close(model._by_row(grouped, 5), th.arange(5.0)[:, None])
    # The noise restarts with the window: the same window gives the same imagined returns.
    sequences = th.rand(3, 4, 1) * 2 - 1
    returns = [predicted_returns(model, model.adapt(window), obs[0], sequences, None, particles=4) for _ in range(2)]
    th.testing.assert_close(returns[0], returns[1])


@pytest.mark.parametrize("latent", [dict(latent_dim=4, reward_latent_dim=2), dict(latent_dim=0)], ids=["structured", "no latent"])
def test_the_plan_follows_the_goal_inferred_from_the_window(latent):
    # A point mass whose reward pays for moving in a hidden direction (+1 or -1) that switches every 25 steps: with
    # the goal latent inferred from the window, the first planned action pushes the right way; without a latent,
    # the planner cannot tell the directions apart.
    layout = SYSTEMS["reward_sign"][1]
    train = hidden_task_data("reward_sign", np.random.default_rng(0), 15)
    test = hidden_task_data("reward_sign", np.random.default_rng(1), 4, labels=True)
    th.manual_seed(0)
    model = GHPMDPModel(layout, 3e-3, ensemble_size=2, hidden_units=64, num_hidden_layers=2, encoder_arch=(64,), **latent)
    model.latent_model.fit(*train, epochs=20, batch_size=128, rng=np.random.default_rng(0))
    planner = CEM(-np.ones(2), np.ones(2), horizon=3, n_candidates=64, n_elites=8, iterations=3, seed=0)
    correct = []
    for row in np.flatnonzero(test[5] >= layout.history_length)[::5]:  # windows inside one task
        current, past_obs, past_act, past_rew, mask = layout.split(th.as_tensor(test[0][row : row + 1]))
        window = Window(past_obs, past_act, past_rew, th.cat([past_obs[:, 1:], current[:, None]], dim=1), mask)
        with th.no_grad():
            context = model.adapt(window)
            plan = planner.plan(lambda sequences: predicted_returns(model, context, current[0], sequences, None, particles=4))
        correct.append(np.sign(plan[0, 0].item()) == test[4][row])
    if latent["latent_dim"]:
        assert np.mean(correct) > 0.9, np.mean(correct)
    else:
        assert np.mean(correct) < 0.75, np.mean(correct)


def test_save_load_gives_identical_actions_and_a_ctrl_c_leaves_a_loadable_agent(tmp_path):
    class CtrlC(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps == 70:  # while planning, after the first fit
                raise KeyboardInterrupt
            return True

    agent = GHPMDP("MPCPolicy", _pendulum(), model_kwargs=TINY_MODEL, **SMALL)
    with pytest.raises(KeyboardInterrupt):
        agent.learn(150, callback=CtrlC())
    assert agent.num_timesteps == 70 and bool(agent.policy.model.fitted)
    agent.save(tmp_path / "agent")
    loaded = GHPMDP.load(tmp_path / "agent", env=_pendulum())
    assert loaded.policy.particles == 4 and loaded.policy.planner_name == "cem"
    # The model's Adam state travels with the agent, so that its next refit continues as an uninterrupted run's.
    saved_state, loaded_state = (a.policy.model.optimizer.state_dict()["state"] for a in (agent, loaded))
    assert saved_state and all(th.equal(saved_state[k]["exp_avg"], loaded_state[k]["exp_avg"]) for k in saved_state)
    env = _pendulum()
    obs, _ = env.reset(seed=3)
    for _ in range(5):
        action, plans = agent.predict(obs, deterministic=True)
        loaded_action, loaded_plans = loaded.predict(obs, deterministic=True)
        np.testing.assert_array_equal(action, loaded_action)
        np.testing.assert_array_equal(plans[0], loaded_plans[0])
        assert env.action_space.contains(action.astype(np.float32))
        obs, *_ = env.step(action)
    loaded.learn(30, reset_num_timesteps=False)
    assert loaded.num_timesteps >= 100


def test_agent_works_with_evaluate_policy_and_meta_eval_callback(tmp_path):
    small_mppi = dict(SMALL, planner_kwargs=dict(horizon=4, n_candidates=16, iterations=2))
    agent = GHPMDP("MPCPolicy", _pendulum(), model_kwargs=dict(TINY_MODEL, reward_latent_dim=1), planner="mppi", **small_mppi)
    eval_env = DummyVecEnv([lambda: Monitor(_pendulum())])
    callback = MetaEvalCallback(eval_env, str(tmp_path / "eval.csv"), n_eval_episodes=1, eval_freq=100, eval_seed=0)
    agent.learn(100, callback=callback)
    assert (tmp_path / "eval.csv").read_text().count("\n") == 2
    assert np.isfinite(agent.logger.name_to_value["model/nll"])
    returns, _ = evaluate_policy(agent, eval_env, n_eval_episodes=1)
    assert np.isfinite(returns)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="particles"):
        GHPMDP("MPCPolicy", _pendulum(), particles=0)
    with pytest.raises(ValueError, match="unknown planner"):
        GHPMDP("MPCPolicy", _pendulum(), planner="ilqr")
    with pytest.raises(ValueError, match="reward_latent_dim"):
        GHPMDP("MPCPolicy", _pendulum(), model_kwargs=dict(TINY_MODEL, reward_latent_dim=2))
    with pytest.raises(ValueError, match="epochs"):
        GHPMDP("MPCPolicy", _pendulum(), model_kwargs=dict(TINY_MODEL, epochs=0))
    with pytest.raises(ValueError, match="HistoryObservation"):
        GHPMDP("MPCPolicy", gym.make("Pendulum-v1"))
    with pytest.raises(TypeError, match="hidden_size"):  # another agent's model argument
        GHPMDP("MPCPolicy", _pendulum(), model_kwargs=dict(hidden_size=64))


def test_the_command_line_trains_evaluates_and_saves_it(tmp_path):
    from m3po_sb3.run.train import main

    argv = ["--env", "Pendulum-v1", "--preset", "demo", "--algo", "ghp-mdp", "--timesteps", "80", "--epoch-length", "40", "--learning-starts", "40"]
    argv += ["--train-freq", "40", "--particles", "2", "--eval-episodes", "1", "--env-kwargs", "max_episode_steps:40", "--out", str(tmp_path)]
    agent = main([*argv, "--no-progress-bar", "--verbose", "0"])
    assert type(agent) is GHPMDP and agent.num_timesteps == 80 and agent.policy.particles == 2
    assert agent.policy.planner_name == "cem" and agent.buffer_size == 10 * 40  # all the data of the demo preset's budget
    assert (tmp_path / "eval.csv").read_text().count("\n") == 3  # header, steps 40 and 80
    loaded = GHPMDP.load(tmp_path / "model.zip")
    obs = agent.env.reset()
    np.testing.assert_array_equal(agent.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
