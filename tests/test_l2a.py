"""GrBAL and ReBAL (Learning to Adapt) and the model-predictive-control plumbing they share.

The adaptation tests use a system the methods were not designed around: the damped pendulum of
``hidden_task_systems`` whose hidden action gain switches every 50 steps inside an episode."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from hidden_task_systems import gain_step
import meta_mujoco_envs  # noqa: F401  (registers the envs)
from m3po_sb3.agents.l2a import GrBAL, GrBALModel, ReBAL, ReBALModel
from m3po_sb3.callbacks.evaluation import MetaEvalCallback
from m3po_sb3.history import HistoryLayout, HistoryObservation
from m3po_sb3.planning.mpc import PlanningModel, TransitionData, Window, predicted_returns

GAINS = (0.3, 1.0, 1.7)
SWITCH, STEPS, M, K = 50, 200, 8, 8
LAYOUT = HistoryLayout(obs_dim=2, act_dim=1, history_length=M)


def gain_switching_data(rng: np.random.Generator, episodes: int) -> TransitionData:
    """Random-action episodes of the pendulum, its gain switching every ``SWITCH`` steps to a different gain."""
    rows = []
    for episode in range(episodes):
        obs, gains = rng.uniform(-1, 1, 2).astype(np.float32), rng.permutation(GAINS)
        for t in range(STEPS):
            action = rng.uniform(-1, 1, 1).astype(np.float32)
            next_obs, reward = gain_step(obs, action, gains[(t // SWITCH) % len(GAINS)], rng)
            rows.append((obs, action, np.float32(reward), next_obs, episode))
            obs = next_obs
    obs, actions, rewards, next_obs, episode_index = (np.array(column) for column in zip(*rows))
    return TransitionData(*(th.as_tensor(x) for x in (obs, actions, rewards, next_obs)), th.as_tensor(episode_index))


def errors_after_switches(model: PlanningModel, data: TransitionData, steps: int = K) -> dict[str, float]:
    """
    Mean z-scored squared error of the model's one-step predictions over the ``steps`` steps that follow the first
    ``M`` steps after each switch, the model adapted to those ``M`` steps (``"new task"``), to nothing (an empty
    window: the meta-trained weights, ReBAL's zero state; ``"unadapted"``), or to the ``M`` steps before the
    switch (``"old task"``). The context advances along the real steps (ReBAL's state does; GrBAL's weights stay).
    """
    errors: dict[str, list[float]] = {"new task": [], "unadapted": [], "old task": []}
    for start in range(0, len(data), STEPS):
        for switch in range(SWITCH, STEPS, SWITCH):
            after, before = data.windows(th.tensor([start + switch]), M), data.windows(th.tensor([start + switch - M]), M)
            empty = Window(after.observations, after.actions, after.rewards, after.next_observations, th.zeros_like(after.mask))
            target = data.windows(th.tensor([start + switch + M]), steps)
            for name, window in (("new task", after), ("unadapted", empty), ("old task", before)):
                with th.no_grad():
                    context, error = model.adapt(window), 0.0
                    for k in range(steps):
                        obs, action = target.observations[:, k], target.actions[:, k]
                        next_obs, reward, context = model.step(context, obs, action)
                        predicted = model._targets(obs, reward, next_obs)
                        true = model._targets(obs, target.rewards[:, k], target.next_observations[:, k])
                        error += float(((predicted - true) ** 2).mean()) / steps
                errors[name].append(error)
    return {name: float(np.mean(values)) for name, values in errors.items()}


@pytest.fixture(scope="module")
def switching_data() -> tuple[TransitionData, TransitionData]:
    rng = np.random.default_rng(0)
    return gain_switching_data(rng, 30), gain_switching_data(rng, 8)


def test_grbal_one_gradient_step_lowers_the_error_after_a_switch(switching_data):
    train, test = switching_data
    th.manual_seed(0)
    model = GrBALModel(LAYOUT, 3e-3, hidden_sizes=(64, 64), adaptation_steps=M, prediction_steps=K, inner_learning_rate=0.1, max_epochs=6)
    statistics = model.fit(train)
    assert bool(model.fitted) and statistics["validation_loss"] < statistics["initial_validation_loss"]
    errors = errors_after_switches(model, test)
    assert errors["new task"] < 0.75 * errors["unadapted"], errors
    assert errors["new task"] < 0.8 * errors["old task"], errors  # it is the new task's data that helps


def test_rebal_hidden_state_lowers_the_error_after_a_switch(switching_data):
    train, test = switching_data
    th.manual_seed(0)
    model = ReBALModel(LAYOUT, hidden_size=32, chunk_length=50, max_epochs=10)
    model.fit(train)
    # the state advances along the real steps, so an unadapted state catches up within a few: the difference is
    # in the first predictions after the window, those the planner's rollouts start from
    errors = errors_after_switches(model, test, steps=2)
    assert errors["new task"] < 0.7 * errors["unadapted"], errors
    assert errors["new task"] < 0.7 * errors["old task"], errors


def test_grbal_meta_training_is_second_order():
    """The outer gradient differs from the first-order one (the inner step's Hessian term reaches the weights)."""
    th.manual_seed(0)
    model = GrBALModel(LAYOUT, hidden_sizes=(16,), adaptation_steps=M, prediction_steps=K, inner_learning_rate=0.5)
    window = Window(th.randn(4, M + K, 2), th.rand(4, M + K, 1) * 2 - 1, th.randn(4, M + K), th.randn(4, M + K, 2), th.ones(4, M + K))
    model._window_loss(window).backward()
    second_order = model.net[0].weight.grad.clone()
    model.zero_grad()
    inputs = model._inputs(window.observations, window.actions)
    targets = model._targets(window.observations, window.rewards, window.next_observations)
    adapted = model.adapted_params(inputs[:, :M], targets[:, :M], window.mask[:, :M])
    first_order = {name: value.detach().requires_grad_() for name, value in adapted.items()}
    th.func.vmap(model._loss)(first_order, inputs[:, M:], targets[:, M:], window.mask[:, M:]).mean().backward()
    assert not th.allclose(second_order, first_order["0.weight"].grad.sum(0), atol=1e-6)


class _Counter(PlanningModel):
    """Observation ``x`` moves by the action; every step earns 1: a rollout's return counts its living steps."""

    def fit(self, data):
        self.fitted.fill_(True)
        return {}

    def adapt(self, window):
        return None

    def step(self, context, observations, actions):
        return observations + actions[:, :1], th.ones(len(observations)), context


def test_predicted_returns_stop_at_the_envs_termination_and_add_the_known_reward():
    model = _Counter(HistoryLayout(1, 1, 2), learning_rate=1.0)
    sequences = th.stack([th.full((6, 1), 1.0), th.full((6, 1), -1.0)])  # x = 1, 2, 3, ... and -1, -2, ...
    returns = predicted_returns(model, None, th.zeros(1), sequences, lambda next_obs: next_obs[:, 0] >= 3)
    assert returns.tolist() == [3.0, 6.0]  # the step that terminates earns its reward, none after it
    returns = predicted_returns(model, None, th.zeros(1), sequences, None, known_reward=lambda actions: actions[:, 0] / 2)
    assert returns.tolist() == [9.0, 3.0]


def test_known_action_reward_is_taken_out_of_what_the_model_learns_and_adapts_to():
    """HalfCheetahFwdBwd's control cost is the same for both directions: the model learns the rest of the reward."""
    env = HistoryObservation(gym.make("HalfCheetahFwdBwd-v0", max_episode_steps=40), history_length=4)
    agent = GrBAL("MPCPolicy", env, known_action_reward=True, model_kwargs=MODELS[GrBAL], **SMALL)
    agent.learn(60)
    fitted = []
    original_fit = agent.policy.model.fit
    agent.policy.model.fit = lambda data: fitted.append(data) or original_fit(data)
    agent.train(1, 1)
    rows = agent.replay_buffer.pos
    actions = agent.replay_buffer.actions[:rows, 0]  # scaled: the cheetah's bounds are [-1, 1] already
    control_cost = -0.1 * np.sum(actions**2, axis=1)
    np.testing.assert_allclose(fitted[0].rewards.numpy(), agent.replay_buffer.rewards[:rows, 0] - control_cost, rtol=1e-5, atol=1e-6)
    history = agent.env.reset()
    for _ in range(2):  # two real steps in the window, two padded slots
        history, *_ = agent.env.step(agent.predict(history)[0])
    adapted = []
    saved = agent.policy.model.adapt
    agent.policy.model.adapt = lambda window: adapted.append(window) or saved(window)
    agent.predict(history)
    _, _, past_actions, past_rewards, mask = env.history_layout.split(history[0])
    expected = (past_rewards - (-0.1 * np.sum(past_actions**2, axis=1))) * mask
    assert mask.tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(adapted[0].rewards[0].numpy(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="action_reward_fn"):
        GrBAL("MPCPolicy", _pendulum(), known_action_reward=True, model_kwargs=MODELS[GrBAL])


def test_the_history_window_is_the_transitions_it_holds():
    layout = HistoryLayout(2, 1, 3)
    space = gym.spaces.Box(-2.0, 2.0, (1,))
    history = layout.initial(th.tensor([[0.0, 1.0]]))
    for t in range(2):  # two real steps: one padded slot left
        history = layout.shift(history, th.tensor([[2.0 * t]]), th.tensor([float(t)]), th.tensor([[t + 1.0, 1.0]]))
    window = Window.from_histories(layout, history, space)
    assert window.mask.tolist() == [[0.0, 1.0, 1.0]]
    assert window.actions[0, 1:, 0].tolist() == [0.0, 1.0]  # scaled from [-2, 2] to [-1, 1]
    assert window.observations[0, 1:, 0].tolist() == [0.0, 1.0] and window.next_observations[0, 1:, 0].tolist() == [1.0, 2.0]


# ---------------------------------------------------------------------------------------------- the agents


def _pendulum() -> HistoryObservation:
    return HistoryObservation(gym.make("Pendulum-v1", max_episode_steps=60), history_length=4)


SMALL = dict(learning_starts=60, train_freq=60, planner_kwargs=dict(horizon=4, n_candidates=16), seed=0)
MODELS = {
    GrBAL: dict(hidden_sizes=(16,), adaptation_steps=4, prediction_steps=4, max_epochs=2),
    ReBAL: dict(hidden_size=8, chunk_length=10, max_epochs=2),
}


@pytest.mark.parametrize("agent_class", [GrBAL, ReBAL])
def test_save_load_gives_identical_actions_and_a_ctrl_c_leaves_a_loadable_agent(agent_class, tmp_path):
    class CtrlC(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps == 90:  # while planning, after the first fit
                raise KeyboardInterrupt
            return True

    agent = agent_class("MPCPolicy", _pendulum(), model_kwargs=MODELS[agent_class], **SMALL)
    with pytest.raises(KeyboardInterrupt):
        agent.learn(150, callback=CtrlC())
    assert agent.num_timesteps == 90 and bool(agent.policy.model.fitted)
    agent.save(tmp_path / "agent")
    loaded = agent_class.load(tmp_path / "agent", env=_pendulum())
    env = _pendulum()
    obs, _ = env.reset(seed=3)
    for _ in range(5):
        action, plans = agent.predict(obs, deterministic=True)
        loaded_action, loaded_plans = loaded.predict(obs, deterministic=True)
        np.testing.assert_array_equal(action, loaded_action)
        np.testing.assert_array_equal(plans[0], loaded_plans[0])
        assert env.action_space.contains(action.astype(np.float32))
        obs, *_ = env.step(action)
    loaded.learn(30, reset_num_timesteps=False)  # the loaded agent trains on
    assert loaded.num_timesteps == 120  # learn stops at its budget, inside an iteration


def test_agent_works_with_evaluate_policy_and_meta_eval_callback(tmp_path):
    agent = GrBAL("MPCPolicy", _pendulum(), model_kwargs=MODELS[GrBAL], **SMALL)
    eval_env = DummyVecEnv([lambda: Monitor(_pendulum())])
    callback = MetaEvalCallback(eval_env, str(tmp_path / "eval.csv"), n_eval_episodes=1, eval_freq=100, eval_seed=0)
    agent.learn(100, callback=callback)
    assert (tmp_path / "eval.csv").read_text().count("\n") == 2  # header and the evaluation at step 100
    assert agent._n_updates == 1  # one refit: after the random iteration of 60 steps (the next is due at 120)
    returns, _ = evaluate_policy(agent, eval_env, n_eval_episodes=1)
    assert np.isfinite(returns)


def test_warm_start_is_the_shifted_previous_plan():
    agent = GrBAL("MPCPolicy", _pendulum(), model_kwargs=MODELS[GrBAL], **SMALL)
    agent.learn(61)
    env = _pendulum()
    obs, _ = env.reset(seed=0)
    _, first = agent.predict(obs, deterministic=True)
    assert first[0].shape == (1, 4, 1)
    obs, *_ = env.step(env.action_space.sample())
    cold, _ = agent.predict(obs, deterministic=True)
    warm, _ = agent.predict(obs, state=first, deterministic=True)
    restarted, _ = agent.predict(obs, state=first, episode_start=np.array([True]), deterministic=True)
    assert not np.array_equal(cold, warm) and np.array_equal(cold, restarted)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown planner"):
        GrBAL("MPCPolicy", _pendulum(), planner="ilqr")
    with pytest.raises(ValueError, match="adaptation_steps=16 exceeds the history length"):
        GrBAL("MPCPolicy", _pendulum())
    with pytest.raises(ValueError, match="HistoryObservation"):
        ReBAL("MPCPolicy", gym.make("Pendulum-v1"))
    with pytest.raises(TypeError, match="Box"):
        ReBAL("MPCPolicy", "CartPole-v1")
    with pytest.raises(TypeError, match="train_freq"):
        ReBAL("MPCPolicy", _pendulum(), train_freq=10.5)
    with pytest.raises(ValueError, match="learning_rate"):
        ReBAL("MPCPolicy", _pendulum(), learning_rate=-1.0)
    with pytest.raises(ValueError, match="hidden_size"):
        ReBAL("MPCPolicy", _pendulum(), model_kwargs=dict(hidden_size=0))
    agent = ReBAL("MPCPolicy", _pendulum(), model_kwargs=MODELS[ReBAL], buffer_size=100, **SMALL)
    with pytest.raises(ValueError, match="keeps all real data"):
        agent.learn(101)
    with pytest.raises(ValueError, match="non-finite"):
        TransitionData(th.full((3, 2), np.nan), th.zeros(3, 1), th.zeros(3), th.zeros(3, 2), th.zeros(3, dtype=th.long))


def test_string_env_ids_get_a_window_long_enough_for_grbal():
    agent = GrBAL("MPCPolicy", "Pendulum-v1", model_kwargs=dict(adaptation_steps=5, prediction_steps=3, hidden_sizes=(8,)))
    assert agent.history_layout.history_length == 5


@pytest.mark.parametrize("algo, agent_class", [("grbal", GrBAL), ("rebal", ReBAL)])
def test_the_command_line_trains_evaluates_and_saves_them(tmp_path, algo, agent_class):
    from m3po_sb3.run.train import main

    argv = ["--env", "Pendulum-v1", "--preset", "demo", "--algo", algo, "--timesteps", "80", "--epoch-length", "40", "--learning-starts", "40"]
    argv += ["--train-freq", "40", "--eval-episodes", "1", "--env-kwargs", "max_episode_steps:40", "--out", str(tmp_path), "--no-progress-bar", "--verbose", "0"]
    # 40 real steps: fewer than GrBAL's validation blocks need, so its fit holds out windows instead
    agent = main(argv)
    assert type(agent) is agent_class and agent.num_timesteps == 80 and agent.history_layout.history_length == 16
    assert agent.buffer_size == 10 * 40  # all the data of the budget: the demo preset's 10 epochs of E = 40
    assert (tmp_path / "eval.csv").read_text().count("\n") == 3  # header, steps 40 and 80
    loaded = agent_class.load(tmp_path / "model.zip")
    obs = agent.env.reset()
    np.testing.assert_array_equal(agent.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])


def test_an_interrupted_and_resumed_run_equals_the_uninterrupted_one(tmp_path, monkeypatch, ctrl_c_at):
    from m3po_sb3.run.folders import read_status
    from m3po_sb3.run.train import main

    run = ["--env", "Pendulum-v1", "--preset", "demo", "--algo", "rebal", "--timesteps", "90", "--epoch-length", "30", "--learning-starts", "30"]
    run += ["--train-freq", "30", "--eval-freq", "45", "--eval-episodes", "1", "--save-freq", "40", "--env-kwargs", "max_episode_steps:40"]
    run += ["--no-progress-bar", "--verbose", "0", "--seed", "5"]
    whole = main([*run, "--out", str(tmp_path / "whole")])
    ctrl_c_at(53)  # between two checkpoints and two refits, mid-episode, while planning
    main([*run, "--out", str(tmp_path / "cut")])
    monkeypatch.undo()
    assert read_status(tmp_path / "cut")["num_timesteps"] == 53
    resumed = main(["--resume", str(tmp_path / "cut"), "--no-progress-bar"])
    assert resumed.num_timesteps == 90
    assert (tmp_path / "cut" / "eval.csv").read_text() == (tmp_path / "whole" / "eval.csv").read_text()
    for name, value in whole.policy.state_dict().items():
        if isinstance(value, th.Tensor):
            assert th.equal(value, resumed.policy.state_dict()[name]), name
