"""Tests of M3PO's data flow (Algorithm 2), variants, errors and persistence, on a tiny Pendulum setup."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.vec_env import DummyVecEnv

from m3po_sb3 import M2PO, M3PO, DynamicsModel, HistoryObservation, MetaDynamicsModel, history_policy_kwargs
from m3po_sb3.agents.buffers import ModelReplayBuffer
from m3po_sb3.models.training import ModelTrainer

L = 2
LEARNING_STARTS = EPOCH = 20
M = 4


class HealthRule(gym.Wrapper):
    """Pendulum with a batched health rule for fictitious steps: 'unhealthy' when the pole points down."""

    @staticmethod
    def termination_fn(next_obs: np.ndarray) -> np.ndarray:
        return next_obs[:, 0] < 0.0


def make_env(health_rule: bool = False) -> HistoryObservation:
    env = gym.make("Pendulum-v1")
    return HistoryObservation(HealthRule(env) if health_rule else env, history_length=L)


def make_agent(env: gym.Env | None = None, agent_class: type[M3PO] = M3PO, **overrides) -> M3PO:
    env = make_env() if env is None else env
    kwargs = dict(
        epoch_length=EPOCH,
        learning_starts=LEARNING_STARTS,
        rollouts_per_step=M,
        gradient_steps=2,
        batch_size=16,
        model_kwargs=dict(hidden_units=8),
        model_fit_kwargs=dict(max_epochs=2),
        seed=0,
        device="cpu",
    )
    if "policy_kwargs" not in overrides:
        kwargs["policy_kwargs"] = history_policy_kwargs(env.history_layout, net_arch=(8,))
    kwargs.update(overrides)
    return agent_class("MlpPolicy", env, **kwargs)


def test_algorithm_2_schedule_fits_rolls_out_and_updates_as_configured():
    total = 50
    agent = make_agent(buffer_size=1000)  # larger than one epoch of rollouts: nothing is overwritten
    fits, first_update = [], {}
    train_dynamics, train = agent.train_dynamics, agent.train

    def counting_train_dynamics():
        fits.append(agent.num_timesteps)
        return train_dynamics()

    def checking_train(gradient_steps, batch_size):
        first_update.setdefault("state", (agent.num_timesteps, bool(agent.last_model_fit_stats), agent.replay_buffer.size()))
        train(gradient_steps, batch_size)

    agent.train_dynamics, agent.train = counting_train_dynamics, checking_train
    agent.learn(total)

    assert fits == [20, 40]  # every E steps from learning_starts on
    # The first update comes after the model is trained and D_model holds the rollouts of steps 20 and 21.
    assert first_update["state"] == (LEARNING_STARTS + 1, True, 2 * M)
    assert agent._n_updates == 2 * (total - LEARNING_STARTS)  # G per env step
    assert agent.env_buffer.size() == total
    n_rollout_steps = total - LEARNING_STARTS + 1
    assert agent.replay_buffer.size() == M * n_rollout_steps  # M per env step, k = 1, nothing terminates
    model_obs = agent.replay_buffer.observations[: agent.replay_buffer.size(), 0]
    env_obs = agent.env_buffer.observations[:total, 0]
    assert np.all((model_obs[:, None, :] == env_obs[None, :, :]).all(axis=-1).any(axis=1))  # starts come from D_env
    assert set(agent.last_model_fit_stats) >= {"holdout_nll", "train_nll", "epochs"}
    for key in ("model/holdout_nll", "model/train_nll", "model/epochs", "rollout/model_transitions", "train/beta"):
        assert key in agent.logger.name_to_value


def test_rollouts_of_many_steps_are_batched():
    agent = make_agent(rollout_every=5, buffer_size=1000)
    agent.learn(44)
    # Batches at steps 20, 25, ..., 40 of M * 5 rollouts each.
    assert agent.replay_buffer.size() == 5 * M * 5
    assert agent.last_rollout_stats["model_transitions"] == M * 5


def test_env_health_rule_marks_fictitious_terminations():
    agent = make_agent(make_env(health_rule=True), rollout_length=2, rollouts_per_step=16)
    agent.learn(30)
    size = agent.replay_buffer.size()
    next_obs = agent.history_layout.split(agent.replay_buffer.next_observations[:size, 0])[0]
    dones = agent.replay_buffer.dones[:size, 0]
    np.testing.assert_array_equal(dones, next_obs[:, 0] < 0.0)
    assert 0 < dones.sum() < size
    assert agent.last_rollout_stats["terminated_fraction"] == agent.logger.name_to_value["rollout/terminated_fraction"]
    # k = 2: each batch holds the 16 first steps plus a second step for the rows that did not end.
    assert agent.last_rollout_stats["model_transitions"] > 16


def test_non_finite_model_predictions_are_dropped_and_counted():
    agent = make_agent(buffer_size=1000)
    sample = agent.dynamics_model.sample

    def half_nan_sample(histories, actions, generator=None):
        next_obs, rewards = sample(histories, actions, generator)
        next_obs[: len(next_obs) // 2] = th.nan
        return next_obs, rewards

    agent.dynamics_model.sample = half_nan_sample
    agent.learn(30)
    assert agent.last_rollout_stats["dropped_nonfinite"] == M // 2
    assert agent.logger.name_to_value["rollout/dropped_nonfinite"] == M // 2
    assert agent.replay_buffer.size() == (M // 2) * (30 - LEARNING_STARTS + 1)
    assert np.all(np.isfinite(agent.replay_buffer.next_observations))


def test_m3po_h_trains_on_the_hybrid_dataset_with_the_beta_schedule():
    agent = make_agent(hybrid_schedule=(1, 3))
    assert [agent.hybrid_beta(epoch) for epoch in (0, 1, 2, 3, 4)] == [1.0, 1.0, 0.5, 0.0, 0.0]
    sampled = []
    model_sample, env_sample = agent.replay_buffer.sample, agent.env_buffer.sample
    agent.replay_buffer.sample = lambda n, env=None: sampled.append(("model", n)) or model_sample(n, env)
    agent.env_buffer.sample = lambda n, env=None: sampled.append(("env", n)) or env_sample(n, env)
    agent.learn(50)  # the last update is at step 50, epoch 2: beta 0.5
    assert agent.logger.name_to_value["train/beta"] == 0.5
    assert sampled[-2:] == [("model", 8), ("env", 8)]
    assert isinstance(agent.replay_buffer, ModelReplayBuffer)  # the hybrid view was only lent to SAC.train


@pytest.mark.parametrize(
    "schedule, betas, split",
    [(None, [0.75] * 5, [("model", 12), ("env", 4)]), ((1, 3), [0.75, 0.75, 0.5, 0.0, 0.0], [("model", 8), ("env", 8)])],
)
def test_real_ratio_puts_real_transitions_in_every_minibatch(schedule, betas, split):
    agent = make_agent(hybrid_schedule=schedule, real_ratio=0.25)
    assert [agent.hybrid_beta(epoch) for epoch in (0, 1, 2, 3, 4)] == betas
    sampled = []
    model_sample, env_sample = agent.replay_buffer.sample, agent.env_buffer.sample
    agent.replay_buffer.sample = lambda n, env=None: sampled.append(("model", n)) or model_sample(n, env)
    agent.env_buffer.sample = lambda n, env=None: sampled.append(("env", n)) or env_sample(n, env)
    agent.learn(50)  # the last update is at step 50, epoch 2
    assert sampled[:2] == [("model", 12), ("env", 4)] and sampled[-2:] == split


def test_m2po_uses_the_non_adaptive_model_and_keeps_the_history_policy():
    agent = make_agent(agent_class=M2PO)
    assert type(agent.dynamics_model) is DynamicsModel and agent.dynamics_model.history_encoder is None
    assert isinstance(make_agent().dynamics_model, MetaDynamicsModel)
    assert agent.policy.actor.features_extractor.__class__.__name__ == "HistoryFeaturesExtractor"
    agent.learn(25)
    assert agent._n_updates == 2 * 5


def test_m2po_defaults_are_mbpo_halfcheetah_config():
    # jannerm/mbpo examples/config/halfcheetah/0.py: model_train_freq 250, rollout_batch_size 100e3 per fit,
    # model_retain_epochs 1 (of 1 000 steps), real_ratio 0.05, 7 networks of which 5 elites; bnn.py: four hidden
    # layers of 200, the plain NLL of raw targets, a fit stops once more than 5 epochs brought no progress.
    agent = M2PO("MlpPolicy", make_env(), seed=0, device="cpu")
    assert agent.epoch_length == 250 and agent.rollouts_per_step * agent.rollout_every == 100_000
    assert agent.buffer_size == 400_000 and agent.rollout_length == 1 and agent.hybrid_beta() == 0.95
    model = agent.dynamics_model
    assert (model.ensemble_size, model.num_elites, len(model.ensemble) // 2) == (7, 5, 4)  # (linear, swish) per hidden layer, then the output layer
    assert model.ensemble[0].weight.shape[-1] == 200 and model.nll_beta == 0.0 and not model.standardise_targets
    assert agent.model_fit_kwargs == {"max_epochs_since_update": 6}
    # A fit option given by the user joins MBPO's patience rather than replacing it.
    assert M2PO("MlpPolicy", make_env(), model_fit_kwargs=dict(max_epochs=3)).model_fit_kwargs == {"max_epochs_since_update": 6, "max_epochs": 3}


def test_m2po_starts_sac_on_a_full_period_of_rollouts_with_real_rows_in_its_batches():
    agent = make_agent(agent_class=M2PO, real_ratio=0.25)
    first_update, sampled = {}, []
    train, env_sample = agent.train, agent.env_buffer.sample

    def recording_train(gradient_steps, batch_size):
        first_update.setdefault("rows", agent.replay_buffer.size())
        train(gradient_steps, batch_size)

    agent.train = recording_train
    agent.env_buffer.sample = lambda n, env=None: sampled.append(n) or env_sample(n, env)
    agent.learn(LEARNING_STARTS + 5)
    # MBPO makes a fit's rollouts at once: SAC's first update samples M rollouts of each of the E steps to come.
    assert first_update["rows"] == M * EPOCH and agent.replay_buffer.size() == M * EPOCH
    assert sampled == [4] * 2 * 5  # a quarter of each minibatch of 16 is real, G = 2 per step


def test_save_load_restores_policy_critics_and_model_and_training_continues(tmp_path):
    agent = make_agent()
    agent.learn(30)
    agent.save(tmp_path / "agent.zip")
    agent.save_replay_buffer(tmp_path / "d_model.pkl")
    agent.save_env_buffer(tmp_path / "d_env.pkl")

    env = make_env()
    loaded = M3PO.load(tmp_path / "agent.zip", env=env, device="cpu")
    observations = np.stack([env.reset(seed=seed)[0] for seed in range(5)])
    np.testing.assert_array_equal(agent.predict(observations, deterministic=True)[0], loaded.predict(observations, deterministic=True)[0])
    for name, module in (("dynamics_model", "dynamics_model"), ("critic", "critic"), ("critic_target", "critic_target")):
        expected, actual = getattr(agent, module).state_dict(), getattr(loaded, module).state_dict()
        assert expected.keys() == actual.keys(), name
        for key in expected:
            assert th.equal(expected[key], actual[key]), f"{name}.{key}"
    assert loaded.dynamics_model.obs_std.ne(1.0).any()  # fitted normalisers came back
    assert loaded.history_layout == agent.history_layout and loaded.rollouts_per_step == M

    loaded.load_replay_buffer(tmp_path / "d_model.pkl")
    loaded.load_env_buffer(tmp_path / "d_env.pkl")
    assert (loaded.replay_buffer.size(), loaded.env_buffer.size()) == (agent.replay_buffer.size(), agent.env_buffer.size())
    n_updates = loaded._n_updates
    loaded.learn(15, reset_num_timesteps=False)  # crosses the epoch boundary at 40: a model fit on loaded D_env
    assert loaded.num_timesteps == 45 and loaded._n_updates == n_updates + 2 * 15
    assert loaded.last_model_fit_stats["epochs"] >= 1


def test_loaded_agent_without_d_env_fails_clearly_unless_its_schedule_starts_over(tmp_path):
    agent = make_agent()
    agent.learn(25)
    agent.save(tmp_path / "agent.zip")
    loaded = M3PO.load(tmp_path / "agent.zip", env=make_env(), device="cpu")
    # Without D_env the model would refit on the steps seen since and roll out from them.
    with pytest.raises(ValueError, match=r"D_env holds 0 real transitions but the agent has taken 25 steps.*load_env_buffer"):
        loaded.learn(5, reset_num_timesteps=False)
    loaded.learn(25, reset_num_timesteps=True)  # a fresh schedule: D_env refills before the model's first fit
    assert loaded.num_timesteps == 25 and loaded.env_buffer.size() == 25 and loaded.last_model_fit_stats


def test_an_env_id_is_made_and_wrapped():
    agent = M3PO("MlpPolicy", "Pendulum-v1", history_length=3, policy_kwargs=None, _init_setup_model=False)
    assert agent.env.env_is_wrapped(HistoryObservation) == [True]
    assert agent.history_layout.history_length == 3
    assert agent.policy_kwargs["features_extractor_kwargs"]["history_layout"] == agent.history_layout


def test_discrete_action_space_is_rejected():
    with pytest.raises(TypeError, match="continuous"):
        M3PO("MlpPolicy", "CartPole-v1", _init_setup_model=False)


@pytest.mark.parametrize("env", [lambda: gym.make("Pendulum-v1"), lambda: DummyVecEnv([lambda: gym.make("Pendulum-v1")])])
def test_env_without_history_observation_is_rejected(env):
    with pytest.raises(ValueError, match="HistoryObservation"):
        M3PO("MlpPolicy", env(), _init_setup_model=False)


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        (dict(rollout_length=0), ValueError, "rollout_length"),
        (dict(rollouts_per_step=0), ValueError, "rollouts_per_step"),
        (dict(gradient_steps=-1), ValueError, "gradient_steps"),
        (dict(epoch_length=0), ValueError, "epoch_length"),
        (dict(rollout_every=0), ValueError, "rollout_every"),
        (dict(rollout_every=EPOCH + 1), ValueError, "rollout_every"),
        (dict(learning_starts=0), ValueError, "learning_starts"),
        (dict(buffer_size=M * EPOCH - 1), ValueError, "one epoch of rollouts"),
        (dict(env_buffer_size=LEARNING_STARTS - 1), ValueError, "env_buffer_size"),
        (dict(hybrid_schedule=(5, 5)), ValueError, "hybrid_schedule"),
        (dict(real_ratio=1.5), ValueError, "real_ratio"),
        (dict(history_length=L + 1), ValueError, "history_length"),
        (dict(rollouts_per_step=2.5), TypeError, "rollouts_per_step"),
    ],
)
def test_inconsistent_hyper_parameters_are_rejected(overrides, error, match):
    with pytest.raises(error, match=match):
        make_agent(_init_setup_model=False, **overrides)


def test_multiple_envs_are_rejected():
    with pytest.raises(ValueError, match="one env"):
        make_agent(DummyVecEnv([make_env, make_env]), policy_kwargs=None, _init_setup_model=False)


class KnownActionReward(gym.Wrapper):
    """Pendulum with its reward's action term, ``-0.001 u**2``, offered as known."""

    @staticmethod
    def action_reward_fn(actions: np.ndarray) -> np.ndarray:
        return -0.001 * (actions**2).sum(axis=1)


def test_known_action_reward_the_model_learns_the_rest_of_the_reward(tmp_path, monkeypatch):
    env = HistoryObservation(KnownActionReward(gym.make("Pendulum-v1")), history_length=L)
    agent = make_agent(env, known_action_reward=True)
    fitted = []
    fit = ModelTrainer.fit
    monkeypatch.setattr(ModelTrainer, "fit", lambda self, *data, **kwargs: fitted.append(data) or fit(self, *data, **kwargs))
    agent.learn(EPOCH + 5)
    assert agent.action_reward_fn is not None
    histories, actions, next_obs, rewards = fitted[0]
    stored = agent.env_buffer.rewards[:EPOCH, 0]
    np.testing.assert_allclose(actions[:, 0], agent.env_buffer.actions[:EPOCH, 0, 0] * 2.0, rtol=1e-6)  # env units
    np.testing.assert_allclose(rewards, stored + 0.001 * actions[:, 0] ** 2, rtol=1e-6)
    assert np.any(actions != 0)
    agent.save(tmp_path / "agent.zip")
    loaded = M3PO.load(tmp_path / "agent.zip", env=env)
    # Bound at load, not only at the next ``learn``: rollouts and ``env_transitions`` of a loaded agent use it.
    assert loaded.known_action_reward is True and loaded.action_reward_fn is not None
    with pytest.raises(ValueError, match="action_reward_fn"):  # refused, and the agent keeps its env
        loaded.set_env(HistoryObservation(gym.make("Pendulum-v1"), history_length=L))
    assert loaded.env.get_attr("action_reward_fn")[0] is not None

    with pytest.raises(ValueError, match="action_reward_fn"):
        make_agent(known_action_reward=True)
