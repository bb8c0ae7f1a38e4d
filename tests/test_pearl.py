"""Tests of PEARL: its posterior and KL against their closed forms, the gradient routing of the encoder, oyster's
KL pressure, exploration by posterior sampling, task inference on a family of hidden-direction tasks,
persistence and errors."""

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.vec_env import DummyVecEnv

from m3po_sb3 import PEARL, HistoryObservation, MetaEvalCallback
from m3po_sb3.agents.pearl import LatentFeaturesExtractor, SharedPosterior, oyster_kl_weight
from m3po_sb3.models.context import ContextEncoder, gaussian_product, kl_to_standard_normal
from m3po_sb3.run.plotting import read_eval_csv
from m3po_sb3.run.train import main as train_main


class HiddenDirection(gym.Env):
    """
    Push in one of two opposite directions: the reward is ``d · a`` for the action ``a ∈ [-1, 1]``, where the
    direction ``d ∈ {-1, +1}`` is drawn at each reset and never observed. The observation is the elapsed
    fraction of the episode, which says nothing about ``d`` (a position would: under a policy that already
    moves the right way, it reveals ``d`` without the encoder). The reward is all that reveals ``d``: a
    task-blind policy earns 0 in expectation, one that infers ``d`` up to ``EPISODE_LENGTH - 1``.
    """

    EPISODE_LENGTH = 10
    observation_space = spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.direction = float(self.np_random.choice([-1.0, 1.0])) if options is None else options["direction"]
        self.steps = 0
        return self._obs(), {"task": self.direction}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self.steps += 1
        reward = self.direction * float(np.clip(action[0], -1.0, 1.0))
        return self._obs(), reward, False, self.steps >= self.EPISODE_LENGTH, {"task": self.direction}

    def _obs(self) -> np.ndarray:
        return np.array([self.steps / self.EPISODE_LENGTH], np.float32)


SMALL = dict(
    learning_starts=200,
    batch_size=64,
    encoder_net_arch=(32, 32),
    policy_kwargs=dict(net_arch=[64, 64]),
    device="cpu",
)


HISTORY_LENGTH = 3


def point_env(history_length: int = HISTORY_LENGTH) -> HistoryObservation:
    return HistoryObservation(HiddenDirection(), history_length=history_length)


def make_agent(env: gym.Env | None = None, **overrides: Any) -> PEARL:
    return PEARL("MlpPolicy", point_env() if env is None else env, **{**SMALL, "seed": 0, **overrides})


# ---------------------------------------------------------------------- the posterior and the KL term
def test_gaussian_product_equals_the_normalised_product_of_densities():
    rng = np.random.default_rng(0)
    means, variances = rng.normal(size=(4, 1)), rng.uniform(0.2, 3.0, size=(4, 1))
    mean, variance = gaussian_product(th.tensor(means), th.tensor(variances))
    # Closed form of a product of Gaussian densities, evaluated independently on a grid.
    z = np.linspace(-8.0, 8.0, 200_001)
    log_density = (-0.5 * (z[None, :] - means) ** 2 / variances).sum(axis=0)
    density = np.exp(log_density - log_density.max())
    density /= density.sum()
    grid_mean = (density * z).sum()
    np.testing.assert_allclose(mean.numpy(), [grid_mean], atol=1e-6)
    np.testing.assert_allclose(variance.numpy(), [(density * (z - grid_mean) ** 2).sum()], rtol=1e-5)


def test_gaussian_product_of_two_factors_matches_the_textbook_formula():
    mean, variance = gaussian_product(th.tensor([[1.0, -2.0], [3.0, 0.0]]), th.tensor([[1.0, 4.0], [3.0, 0.5]]))
    np.testing.assert_allclose(mean.numpy(), [(1.0 * 3.0 + 3.0 * 1.0) / 4.0, (-2.0 * 0.5 + 0.0 * 4.0) / 4.5], rtol=1e-6)
    np.testing.assert_allclose(variance.numpy(), [3.0 / 4.0, 2.0 / 4.5], rtol=1e-6)


def test_masked_factors_take_no_part_and_an_empty_context_gives_the_prior():
    means, variances = th.randn(2, 3, 5), th.rand(2, 3, 5) + 0.1
    mask = th.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    mean, variance = gaussian_product(means, variances, mask)
    expected = gaussian_product(means[0, [0, 2]], variances[0, [0, 2]])
    th.testing.assert_close((mean[0], variance[0]), expected)
    th.testing.assert_close((mean[1], variance[1]), (th.zeros(5), th.ones(5)))


def test_kl_term_equals_torch_distributions_kl():
    mean, variance = th.randn(7, 5), th.rand(7, 5) + 0.05
    expected = th.distributions.kl_divergence(th.distributions.Normal(mean, variance.sqrt()), th.distributions.Normal(0.0, 1.0)).sum(-1)
    th.testing.assert_close(kl_to_standard_normal(mean, variance), expected)


def test_the_context_is_the_windows_transitions_o_a_r_next_o():
    env = point_env()
    obs = [env.reset(seed=0, options={"direction": -1.0})[0][0]]
    actions, rewards = [0.5, -0.25], []
    for action in actions:
        history, reward, *_ = env.step(np.array([action], np.float32))
        obs.append(history[0])
        rewards.append(reward)
    encoder = ContextEncoder(env.history_layout, net_arch=(4,))
    transitions, mask = encoder.transitions(th.as_tensor(history))
    np.testing.assert_array_equal(mask.numpy(), [0.0, 1.0, 1.0])  # the oldest slot is still padding
    expected = [[obs[k], actions[k], rewards[k], obs[k + 1]] for k in range(2)]
    np.testing.assert_allclose(transitions[1:].numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(rewards, [-0.5, 0.25])


@pytest.mark.parametrize("training", [False, True])
def test_critic_features_add_the_weighted_kl_to_the_gradient_and_actor_features_none(training):
    """The critic's backward equals that of ``loss + kl_weight · mean_rows KL``; the actor's path is detached."""
    th.manual_seed(0)
    env = point_env()
    encoder = ContextEncoder(env.history_layout, latent_dim=5, net_arch=(16,)).double()
    histories = th.tensor(np.stack([env.reset(seed=i)[0] for i in range(3)] + [_history_after_steps(env, n) for n in (1, 3, 5)])).double()
    critic_features = LatentFeaturesExtractor(env.observation_space, SharedPosterior(encoder), trains_encoder=True, kl_weight=0.1)
    critic_features.train(training)
    th.manual_seed(1)
    loss = (critic_features(histories) ** 2).sum()
    got = th.autograd.grad(loss, list(encoder.parameters()))

    mean, variance = encoder(histories)
    th.manual_seed(1)
    z = mean + variance.sqrt() * th.randn_like(mean) if training else mean
    explicit_loss = (th.cat([histories[:, :1], z], dim=-1) ** 2).sum() + 0.1 * kl_to_standard_normal(mean, variance).mean()
    for got_grad, want in zip(got, th.autograd.grad(explicit_loss, list(encoder.parameters()))):
        th.testing.assert_close(got_grad, want)
    th.testing.assert_close(critic_features.last_kl, kl_to_standard_normal(mean, variance).mean().detach())

    actor_features = LatentFeaturesExtractor(env.observation_space, SharedPosterior(encoder), trains_encoder=False, kl_weight=0.1)
    assert not actor_features(histories).requires_grad


def _history_after_steps(env: HistoryObservation, n_steps: int, seed: int = 0) -> np.ndarray:
    history, _ = env.reset(seed=seed)
    rng = np.random.default_rng(n_steps)
    for _ in range(n_steps):
        history, *_ = env.step(rng.uniform(-1.0, 1.0, size=1).astype(np.float32))
    return history


def test_default_kl_weight_puts_oysters_kl_pressure_on_the_encoder():
    """
    Oyster's encoder loss, ``kl_lambda · Σ_tasks KL + mean (Q₁ − y)² + mean (Q₂ − y)²`` at reward scale 5 (its Q
    and y 5 times ours), has 50 times the encoder gradient of ours, SB3's critic loss ``½ Σ_i mean (Q_i − y)²``
    with the default ``kl_weight`` on the rows' mean KL, when each of its 16 tasks is rows of one history.
    """
    th.manual_seed(0)
    agent = make_agent()
    assert agent.kl_weight == pytest.approx(0.1 * 16 / (2 * 5**2))  # configs/default.py: kl_lambda, meta_batch, reward_scale
    encoder = agent.policy.context_encoder.double()
    features = agent.critic.features_extractor
    features.eval()  # z = μ, where oyster's one z per task and ours per row coincide
    env, tasks, rows = point_env(), 16, 4
    task_histories = th.tensor(np.stack([_history_after_steps(env, 1 + task % 9, seed=task) for task in range(tasks)])).double()
    histories = task_histories.repeat_interleave(rows, dim=0)
    heads, targets = th.randn(features.features_dim, 2, dtype=th.float64), th.randn(tasks * rows, 1, dtype=th.float64)

    q_values = features(histories) @ heads
    ours = 0.5 * sum(th.nn.functional.mse_loss(q, targets[:, 0]) for q in q_values.T)
    mean, variance = encoder(task_histories)
    z = mean.repeat_interleave(rows, dim=0)
    q_oyster = 5.0 * th.cat([histories[:, :1], z], dim=-1) @ heads
    oyster = ((q_oyster - 5.0 * targets) ** 2).mean(0).sum() + 0.1 * kl_to_standard_normal(mean, variance).sum()
    for got, want in zip(th.autograd.grad(ours, list(encoder.parameters())), th.autograd.grad(oyster, list(encoder.parameters()))):
        th.testing.assert_close(50.0 * got, want)
    assert oyster_kl_weight(kl_lambda=1.0, meta_batch=10) == pytest.approx(0.2)  # ant-goal's config


def test_encoder_learns_from_the_critic_loss_only():
    agent = make_agent(learning_starts=20)
    agent.learn(21)
    policy = agent.policy
    encoder_params = {id(p) for p in policy.context_encoder.parameters()}
    critic_params = {id(p) for group in policy.critic.optimizer.param_groups for p in group["params"]}
    actor_params = {id(p) for group in policy.actor.optimizer.param_groups for p in group["params"]}
    assert encoder_params <= critic_params and not encoder_params & actor_params
    assert not encoder_params & {id(p) for p in policy.critic_target.parameters()}  # no Polyak update of it
    # A step of the actor's optimizer leaves the encoder as it was.
    before = [p.detach().clone() for p in policy.context_encoder.parameters()]
    agent.train(gradient_steps=1, batch_size=16)
    after_critic_and_actor = [p.detach().clone() for p in policy.context_encoder.parameters()]
    assert any(not th.equal(b, a) for b, a in zip(before, after_critic_and_actor))
    policy.actor.optimizer.step()
    for b, a in zip(after_critic_and_actor, policy.context_encoder.parameters()):
        assert th.equal(b, a)


def test_an_update_encodes_each_batch_once_and_all_networks_share_its_z():
    agent = make_agent(learning_starts=20)
    agent.learn(21)
    calls = []
    handle = agent.policy.context_encoder.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0]))
    seen = {name: [] for name in ("actor", "critic", "critic_target")}
    hooks = [
        getattr(agent.policy, name).features_extractor.register_forward_hook(lambda m, i, out, name=name: seen[name].append(out))
        for name in seen
    ]
    agent.train(gradient_steps=1, batch_size=16)
    handle.remove()
    for hook in hooks:
        hook.remove()
    assert len(calls) == 2  # the histories o and o' of the batch, nothing encoded twice
    (actor_obs, actor_next_obs), (critic_q, critic_pi), (target_next_obs,) = seen["actor"], seen["critic"], seen["critic_target"]
    for features in (critic_q, critic_pi):  # the critic loss and the actor loss see the actor's draw of z
        th.testing.assert_close(features, actor_obs)
    th.testing.assert_close(target_next_obs, actor_next_obs)


# ---------------------------------------------------------------------- exploration by posterior sampling
def _noise_of(agent: PEARL, histories: th.Tensor, features: th.Tensor) -> th.Tensor:
    """:return: ``ε = (z − μ) / σ`` of the ``z`` that ``features`` hold"""
    with th.no_grad():
        mean, variance = agent.policy.posterior(histories)
    return (features[:, -agent.latent_dim :] - mean) / variance.sqrt()


def test_rollouts_act_on_one_posterior_sample_per_episode():
    """``z = μ + σ ⊙ ε`` of the window's posterior, ``ε`` kept along an episode and drawn anew at the next one
    and at the reset of a new ``learn``."""
    agent = make_agent(learning_starts=0)
    noises = []

    def record(module: th.nn.Module, inputs: tuple[th.Tensor], output: th.Tensor) -> None:
        if not module.training:  # a rollout's action, not an update
            noises.append(_noise_of(agent, inputs[0], output)[0])

    handle = agent.actor.features_extractor.register_forward_hook(record)
    agent.learn(2 * HiddenDirection.EPISODE_LENGTH + 3)
    agent.learn(2)  # resets the env
    handle.remove()
    noise = th.stack(noises)
    episodes = noise.split([HiddenDirection.EPISODE_LENGTH, HiddenDirection.EPISODE_LENGTH, 3, 2])
    for episode in episodes:
        th.testing.assert_close(episode, episode[:1].expand_as(episode), rtol=1e-4, atol=1e-5)
    draws = th.stack([episode[0] for episode in episodes])
    assert (draws.norm(dim=1) > 0.1).all()  # z is not the mean
    distances = th.cdist(draws, draws)
    assert (distances + th.eye(len(draws)) > 0.1).all()  # a new draw per episode
    assert agent.policy.shared_posterior.noise is None  # only while the rollout acts


@pytest.mark.parametrize("deterministic", [True, False])
def test_predict_acts_on_the_posterior_mean(deterministic):
    agent = make_agent(learning_starts=0).learn(5)
    histories = np.stack([_history_after_steps(point_env(), n) for n in (0, 1, 3, 5)])
    seen = []
    handle = agent.actor.features_extractor.register_forward_hook(lambda module, inputs, output: seen.append(output))
    agent.predict(histories, deterministic=deterministic)
    handle.remove()
    th.testing.assert_close(_noise_of(agent, th.as_tensor(histories), seen[0]), th.zeros(4, agent.latent_dim))


# ---------------------------------------------------------------------- PEARL infers the task
def _posterior_means_and_return(agent: PEARL, direction: float, episodes: int = 3) -> tuple[np.ndarray, float]:
    env = point_env()
    means, total = [], 0.0
    for episode in range(episodes):
        history, _ = env.reset(seed=episode, options={"direction": direction})
        for step in range(HiddenDirection.EPISODE_LENGTH):
            action, _ = agent.predict(history, deterministic=True)
            history, reward, _, _, _ = env.step(action)
            total += reward
            if step + 1 >= HISTORY_LENGTH:  # the window holds transitions of this episode's task only
                with th.no_grad():
                    means.append(agent.policy.posterior(th.as_tensor(history[None]))[0][0].numpy())
    return np.array(means), total / episodes


def test_pearl_infers_the_hidden_direction_and_beats_task_blind_sac():
    # The same small networks, learning rate and budget for both; the learning rate suits this tiny problem.
    agent = make_agent(ent_coef="auto", learning_rate=3e-3).learn(1000)
    blind_kwargs = {key: SMALL[key] for key in ("learning_starts", "batch_size", "policy_kwargs", "device")}
    blind = SAC("MlpPolicy", HiddenDirection(), ent_coef="auto", learning_rate=3e-3, seed=0, **blind_kwargs).learn(1000)

    means_pos, return_pos = _posterior_means_and_return(agent, +1.0)
    means_neg, return_neg = _posterior_means_and_return(agent, -1.0)
    # The posterior means of the two tasks separate along the line through their centres.
    axis = means_pos.mean(0) - means_neg.mean(0)
    assert (means_pos @ axis).min() > (means_neg @ axis).max()

    blind_return = np.mean([_blind_return(blind, d) for d in (-1.0, 1.0)])
    pearl_return = (return_pos + return_neg) / 2
    assert pearl_return > blind_return + 0.5 * HiddenDirection.EPISODE_LENGTH, (pearl_return, blind_return)


def _blind_return(agent: SAC, direction: float, episodes: int = 3) -> float:
    env, total = HiddenDirection(), 0.0
    for episode in range(episodes):
        obs, _ = env.reset(seed=episode, options={"direction": direction})
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.predict(obs, deterministic=True)[0])
            total, done = total + reward, terminated or truncated
    return total / episodes


# ---------------------------------------------------------------------- SB3's conventions
def test_save_load_restores_the_encoder_and_predicts_the_same_actions(tmp_path):
    agent = make_agent(learning_starts=30)
    agent.learn(60)
    agent.save(tmp_path / "pearl.zip")
    assert "_episode_noise" not in load_from_zip_file(tmp_path / "pearl.zip")[0]  # runtime state of the rollouts
    loaded = PEARL.load(tmp_path / "pearl.zip", env=point_env(), device="cpu")
    for key, value in agent.policy.state_dict().items():
        th.testing.assert_close(loaded.policy.state_dict()[key], value)
    assert any(key.startswith("context_encoder.") for key in loaded.policy.state_dict())
    histories = np.stack([_history_after_steps(point_env(), n) for n in (0, 1, 3, 5)])
    np.testing.assert_array_equal(loaded.predict(histories, deterministic=True)[0], agent.predict(histories, deterministic=True)[0])
    assert loaded.latent_dim == agent.latent_dim and loaded.history_layout == agent.history_layout
    loaded.learn(5, reset_num_timesteps=False)  # training continues


def test_learn_with_meta_eval_callback_progress_bar_and_tensorboard(tmp_path):
    agent = make_agent(learning_starts=20, tensorboard_log=str(tmp_path / "tb"))
    eval_env = DummyVecEnv([lambda: Monitor(point_env())])
    callback = MetaEvalCallback(eval_env, str(tmp_path / "eval.csv"), n_eval_episodes=2, eval_freq=20)
    agent.learn(40, callback=callback, progress_bar=True)
    curve = read_eval_csv(tmp_path / "eval.csv")
    assert list(curve["timesteps"]) == [20, 40] and list(curve["n_episodes"]) == [2, 2]
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))


def test_cli_trains_pearl_and_writes_its_outputs(tmp_path):
    tiny = ["--env", "Pendulum-v1", "--preset", "demo", "--timesteps", "40", "--history-length", "2", "--eval-freq", "20"]
    agent = train_main([*tiny, "--eval-episodes", "1", "--no-progress-bar", "--algo", "pearl", "--out", str(tmp_path)])
    assert type(agent) is PEARL and agent.history_layout.history_length == 2
    for name in ("model.zip", "eval.csv", "learning_curve.png", "config.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert PEARL.load(tmp_path / "model.zip").num_timesteps == 40


def test_an_env_id_is_made_and_wrapped_and_the_kl_is_logged():
    agent = PEARL("MlpPolicy", "Pendulum-v1", history_length=2, **{**SMALL, "learning_starts": 10})
    assert agent.env.env_is_wrapped(HistoryObservation) == [True]
    assert agent.history_layout.history_length == 2
    agent.learn(12)
    assert np.isfinite(agent.logger.name_to_value["train/kl_divergence"])
    assert 0 < agent.logger.name_to_value["train/posterior_std"]


def test_discrete_action_space_is_rejected():
    with pytest.raises(TypeError, match="continuous"):
        PEARL("MlpPolicy", "CartPole-v1", _init_setup_model=False)


@pytest.mark.parametrize("env", [lambda: gym.make("Pendulum-v1"), lambda: DummyVecEnv([lambda: gym.make("Pendulum-v1")])])
def test_env_without_history_observation_is_rejected(env):
    with pytest.raises(ValueError, match="HistoryObservation"):
        PEARL("MlpPolicy", env(), _init_setup_model=False)


def test_multiple_envs_are_rejected():
    with pytest.raises(ValueError, match="one env"):
        PEARL("MlpPolicy", DummyVecEnv([point_env, point_env]), _init_setup_model=False)


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        (dict(latent_dim=0), ValueError, "latent_dim"),
        (dict(latent_dim=2.5), TypeError, "latent_dim"),
        (dict(kl_weight=-0.1), ValueError, "kl_weight"),
        (dict(kl_weight=float("nan")), ValueError, "kl_weight"),
        (dict(encoder_net_arch=()), ValueError, "encoder_net_arch"),
        (dict(encoder_net_arch=(32, 0)), ValueError, "encoder_net_arch"),
        (dict(gradient_steps=0), ValueError, "gradient_steps"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(learning_starts=-1), ValueError, "learning_starts"),
        (dict(history_length=HISTORY_LENGTH + 1), ValueError, "history_length"),
        (dict(policy_kwargs=dict(latent_dim=3)), ValueError, "latent_dim"),
        (dict(policy_kwargs=dict(share_features_extractor=True)), ValueError, "share_features_extractor"),
    ],
)
def test_bad_hyper_parameters_are_rejected(overrides, error, match):
    with pytest.raises(error, match=match):
        make_agent(**overrides)


def test_bad_oyster_settings_and_posterior_noise_are_rejected():
    with pytest.raises(ValueError, match="meta_batch"):
        oyster_kl_weight(meta_batch=0)
    policy = make_agent().policy
    with pytest.raises(ValueError, match="posterior noise"):
        with policy.posterior_noise(th.zeros(1, policy.latent_dim + 1)):
            pass
