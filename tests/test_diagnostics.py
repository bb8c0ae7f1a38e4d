"""Each diagnostic of m3po_sb3.callbacks.diagnostics checked on a case computed by hand, and the callback on tiny runs."""

import csv
import math

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.distributions import SquashedDiagGaussianDistribution
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.sac.policies import Actor

from m3po_sb3 import M3PO, HistoryObservation
from m3po_sb3.callbacks.diagnostics import (
    DiagnosticsCallback,
    fit_behaviour_policy,
    gaussian_kl,
    newest_rows,
    policy_kl,
    sac_td_error,
    soft_td_target,
    td_error,
)
from m3po_sb3.models.networks import DynamicsModel, EnsembleLinear
from m3po_sb3.history import HistoryLayout, history_policy_kwargs
from m3po_sb3.run.plotting import mean_over_seeds, plot_seed_curves


def linear_actor(obs_dim: int, act_dim: int) -> Actor:
    """An SB3 SAC actor whose mean and log-std are affine in the observation (no hidden layer)."""
    obs_space = spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    return Actor(obs_space, spaces.Box(-1, 1, (act_dim,), np.float32), [], FlattenExtractor(obs_space), obs_dim)


def set_affine(actor: Actor, mean_weight, mean_bias, log_std_weight, log_std_bias) -> None:
    with th.no_grad():
        for layer, weight, bias in ((actor.mu, mean_weight, mean_bias), (actor.log_std, log_std_weight, log_std_bias)):
            layer.weight.copy_(th.as_tensor(weight, dtype=th.float32))
            layer.bias.copy_(th.as_tensor(bias, dtype=th.float32))


def test_gaussian_kl_matches_hand_computation():
    # KL(N(1, 0.5²) || N(0, 1)) = log(1 / 0.5) + (0.5² + 1²) / 2 − 1/2, and a second dimension with p = q adds 0.
    kl = gaussian_kl(th.tensor([[1.0, 3.0]]), th.tensor([[math.log(0.5), 0.2]]), th.tensor([[0.0, 3.0]]), th.tensor([[0.0, 0.2]]))
    assert kl.item() == pytest.approx(math.log(2.0) + 0.625 - 0.5, rel=1e-6)


def test_policy_kl_is_the_kl_of_the_squashed_policies():
    """tanh is invertible, so the KL of the squashed policies equals the closed form of the Gaussians."""
    th.manual_seed(0)
    pi, pi_d = linear_actor(1, 2), linear_actor(1, 2)
    set_affine(pi, [[0.5], [-1.0]], [0.2, 0.0], [[0.0], [0.0]], [-0.5, 0.1])
    set_affine(pi_d, [[0.0], [-1.0]], [0.0, 0.4], [[0.0], [0.0]], [0.0, -0.3])
    obs = th.tensor([[1.0]])
    closed_form = policy_kl(pi, pi_d, obs)

    mean_p, log_std_p, _ = pi.get_action_dist_params(obs)
    mean_q, log_std_q, _ = pi_d.get_action_dist_params(obs)
    p, q = SquashedDiagGaussianDistribution(2), SquashedDiagGaussianDistribution(2)
    p.proba_distribution(mean_p.expand(200_000, -1), log_std_p.expand(200_000, -1))
    q.proba_distribution(mean_q.expand(200_000, -1), log_std_q.expand(200_000, -1))
    gaussian_actions = p.distribution.sample()
    actions = th.tanh(gaussian_actions)
    monte_carlo = (p.log_prob(actions, gaussian_actions) - q.log_prob(actions, gaussian_actions)).mean().item()
    assert closed_form == pytest.approx(monte_carlo, abs=0.02)
    assert policy_kl(pi, pi, obs) == pytest.approx(0.0, abs=1e-7)


def test_behaviour_policy_fit_recovers_linear_gaussian_data_policy():
    """Actions a = tanh(W s + b + σ ε): the maximum-likelihood π_D recovers W, b and σ."""
    rng, th_rng = np.random.default_rng(0), th.Generator().manual_seed(0)
    weight, bias, std = np.array([[0.8, -0.5, 0.0], [0.3, 0.2, -1.0]]), np.array([0.1, -0.4]), 0.3
    obs = rng.standard_normal((20_000, 3)).astype(np.float32)
    actions = np.tanh(obs @ weight.T + bias + std * rng.standard_normal((20_000, 2))).astype(np.float32)
    th.manual_seed(0)
    actor = linear_actor(3, 2)
    optimizer = th.optim.Adam(actor.parameters(), lr=1e-2)
    nll = fit_behaviour_policy(actor, th.as_tensor(obs), th.as_tensor(actions), optimizer, 1500, 512, th_rng)
    np.testing.assert_allclose(actor.mu.weight.detach().numpy(), weight, atol=0.03)
    np.testing.assert_allclose(actor.mu.bias.detach().numpy(), bias, atol=0.03)
    np.testing.assert_allclose(actor.log_std.bias.detach().numpy(), np.log(std), atol=0.05)
    # The Gaussian NLL of atanh(a) per dimension at the optimum: log σ + log(2π)/2 + 1/2.
    assert nll == pytest.approx(2 * (math.log(std) + 0.5 * math.log(2 * math.pi) + 0.5), abs=0.1)


def test_soft_td_target_and_error_by_hand():
    rewards, dones = th.tensor([[1.0], [2.0]]), th.tensor([[0.0], [1.0]])
    next_q = th.tensor([[5.0, 4.0], [7.0, 9.0]])
    next_log_prob = th.tensor([[-1.0], [3.0]])
    target = soft_td_target(rewards, dones, next_q, next_log_prob, gamma=0.5, ent_coef=0.2)
    # Row 0: 1 + 0.5 * (min(5, 4) − 0.2 * (−1)) = 3.1; row 1 is terminal: 2.
    np.testing.assert_allclose(target.numpy(), [[3.1], [2.0]], rtol=1e-6)
    q1, q2 = th.tensor([[3.0], [2.5]]), th.tensor([[4.1], [0.0]])
    assert td_error([q1, q2], target) == pytest.approx((0.1 + 0.5 + 1.0 + 2.0) / 4, rel=1e-6)


def test_sac_td_error_with_constant_critics():
    """Critics fixed to constants and α = 0: the TD error is |c_i − (r + γ (1 − d) min_j c'_j)|, by hand."""
    model = SAC("MlpPolicy", "Pendulum-v1", ent_coef=0.0, gamma=0.9, policy_kwargs=dict(net_arch=[8]), seed=0)
    with th.no_grad():
        for critic, constants in ((model.critic, (1.0, 2.0)), (model.critic_target, (10.0, 6.0))):
            for q_net, constant in zip(critic.q_networks, constants):
                for layer in q_net:
                    if isinstance(layer, th.nn.Linear):
                        layer.weight.zero_()
                        layer.bias.zero_()
                q_net[-1].bias.fill_(constant)
    obs = th.zeros(2, 3)
    batch = ReplayBufferSamples(obs, th.zeros(2, 1), obs, th.tensor([[0.0], [1.0]]), th.tensor([[0.5], [-1.0]]))
    # Targets: 0.5 + 0.9 * 6 = 5.9 and −1 (terminal); errors |1 − y|, |2 − y| over both rows.
    expected = (abs(1 - 5.9) + abs(2 - 5.9) + abs(1 + 1) + abs(2 + 1)) / 4
    assert sac_td_error(model, batch) == pytest.approx(expected, rel=1e-6)


def test_model_nll_with_fixed_outputs_matches_hand_computation():
    """ε_m is the model's Gaussian NLL; a model with constant outputs (mean μ, log-variance v) has it in closed form."""
    layout = HistoryLayout(obs_dim=1, act_dim=1, history_length=2)
    model = DynamicsModel(layout, ensemble_size=2, hidden_units=4, device="cpu")
    mean, logvar = np.array([0.5, -1.0]), np.array([0.0, math.log(4.0)])  # for (Δo, r)
    with th.no_grad():
        for layer in model.ensemble:
            if isinstance(layer, EnsembleLinear):
                layer.weight.zero_()
                layer.bias.zero_()
        model.ensemble[-1].bias.copy_(th.as_tensor(np.concatenate([mean, logvar]), dtype=th.float32))
        model.max_logvar.fill_(30.0)  # the soft clamp is then the identity to float precision
        model.min_logvar.fill_(-30.0)
    rng = np.random.default_rng(0)
    histories = rng.standard_normal((5, layout.size)).astype(np.float32)
    actions, next_obs, rewards = rng.uniform(-1, 1, (5, 1)), rng.standard_normal((5, 1)), rng.standard_normal(5)
    targets = np.stack([next_obs[:, 0] - layout.split(histories)[0][:, 0], rewards], axis=1)
    by_hand = 0.5 * ((targets - mean) ** 2 / np.exp(logvar) + logvar + math.log(2 * math.pi))
    assert model.nll(histories, actions, next_obs, rewards) == pytest.approx(by_hand.mean(), rel=1e-5)
    assert model.nll(histories, actions, next_obs, rewards, per_output=True) == pytest.approx(by_hand.mean(axis=0), rel=1e-5)


def test_newest_rows_follow_the_ring_buffer():
    class Ring:
        buffer_size, pos = 5, 2

        def __init__(self, full: bool):
            self.full = full

        def size(self) -> int:
            return self.buffer_size if self.full else self.pos

    np.testing.assert_array_equal(newest_rows(Ring(full=True), 4), [1, 0, 4, 3])
    np.testing.assert_array_equal(newest_rows(Ring(full=False), 4), [1, 0])


TINY_M3PO = dict(
    epoch_length=40,
    rollouts_per_step=4,
    rollout_every=10,
    gradient_steps=1,
    batch_size=32,
    model_kwargs=dict(hidden_units=16),
    model_fit_kwargs=dict(max_epochs=2),
    history_length=2,
)


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_callback_on_m3po_logs_all_three_and_measures_eps_m_on_unseen_rows(tmp_path):
    model = M3PO("MlpPolicy", "Pendulum-v1", seed=0, **TINY_M3PO)
    seen = []
    nll = model.dynamics_model.nll
    model.dynamics_model.nll = lambda *data: seen.append(len(data[0])) or nll(*data)  # type: ignore[method-assign]
    callback = DiagnosticsCallback(csv_path=str(tmp_path / "diag.csv"), n_samples=64, behaviour_steps=5)
    model.learn(120, callback=callback)
    # Epoch boundaries after learning_starts = 40: steps 80 and 120; the model was fitted at 40 and 80.
    assert [record["timesteps"] for record in callback.records] == [80, 120]
    assert seen == [39, 39]  # the real steps 41..79 (81..119), stored since the last fit, not the current one
    for record in callback.records:
        assert set(record) == {"timesteps", "eps_m", "eps_pi", "td_error"}
        assert all(math.isfinite(value) for value in record.values())
        assert record["eps_pi"] >= 0 and record["td_error"] >= 0
    assert [float(row["eps_pi"]) for row in read_csv(tmp_path / "diag.csv")] == pytest.approx([r["eps_pi"] for r in callback.records])
    assert {"diagnostics/eps_m", "diagnostics/eps_pi", "diagnostics/td_error"} <= set(model.logger.name_to_value)


def test_callback_on_history_sac_has_no_eps_m(tmp_path):
    env = HistoryObservation(gym.make("Pendulum-v1"), history_length=2)
    policy_kwargs = history_policy_kwargs(env.history_layout, net_arch=(16,))
    model = SAC("MlpPolicy", env, learning_starts=30, batch_size=32, policy_kwargs=policy_kwargs, seed=0)
    callback = DiagnosticsCallback(epoch_length=30, csv_path=str(tmp_path / "diag.csv"), n_samples=64, behaviour_steps=5)
    model.learn(90, callback=callback)
    assert [sorted(record) for record in callback.records] == [["eps_pi", "td_error", "timesteps"]] * 2
    assert [row["eps_m"] for row in read_csv(tmp_path / "diag.csv")] == ["", ""]
    assert isinstance(callback.behaviour_policy, Actor) and callback.behaviour_policy is not model.actor


def test_callback_raises_on_non_finite_values():
    model = SAC("MlpPolicy", "Pendulum-v1", learning_starts=10, gradient_steps=0, policy_kwargs=dict(net_arch=[8]), seed=0)
    with th.no_grad():
        model.critic.q_networks[0][-1].bias.fill_(math.nan)
    with pytest.raises(FloatingPointError, match="TD error"):
        model.learn(20, callback=DiagnosticsCallback(epoch_length=10, behaviour_steps=2))


def test_seed_aggregation_and_diagnostics_plot(tmp_path):
    """mean ± std over seeds at the common timesteps; a diagnostic an agent lacks (empty cells) is skipped."""
    for seed, rows in enumerate([[(10, "", 1.0, 2.0), (20, "", 3.0, 4.0)], [(10, "", 3.0, 2.0), (30, "", 0.0, 0.0)]]):
        with open(tmp_path / f"diag{seed}.csv", "w", newline="") as file:
            csv.writer(file).writerows([("timesteps", "eps_m", "eps_pi", "td_error"), *rows])
    paths = [tmp_path / "diag0.csv", tmp_path / "diag1.csv"]
    timesteps, mean, std = mean_over_seeds(paths, "eps_pi")
    np.testing.assert_array_equal(timesteps, [10])
    np.testing.assert_allclose(mean, [2.0])
    np.testing.assert_allclose(std, [1.0])
    image = plot_seed_curves({"sac": paths}, tmp_path / "diag.png", columns=("eps_m", "eps_pi", "td_error"))
    assert image.stat().st_size > 0
