"""Tests of the history encoder's GRU recurrence and of HistorySAC's update against one written with SB3's modules."""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.logger import configure
from stable_baselines3.common.utils import polyak_update
from torch.nn import functional as F

import meta_mujoco_envs  # noqa: F401
from m3po_sb3 import HistorySAC, history_policy_kwargs
from m3po_sb3.history import HistoryEncoder, HistoryLayout, HistoryObservation, stacked_gru_final_state


def reference_encoding(encoder: HistoryEncoder, histories: th.Tensor, delta_scale: th.Tensor | None = None) -> th.Tensor:
    """HistoryEncoder's definition: the GRU inputs ``[o_k, a_k, r_k, (o_{k+1} - o_k) / scale, 1] · mask_k`` built
    explicitly and run through ``nn.GRU`` itself."""
    current, past_obs, past_act, past_rew, mask = encoder.history_layout.split(histories)
    next_obs = th.cat([past_obs[:, 1:], current.unsqueeze(1)], dim=1)
    deltas = (next_obs - past_obs) / (1.0 if delta_scale is None else delta_scale)
    steps = th.cat([past_obs, past_act, past_rew.unsqueeze(-1), deltas, th.ones_like(mask).unsqueeze(-1)], dim=-1)
    return th.cat([current, encoder.gru(steps * mask.unsqueeze(-1))[1][0]], dim=1)


def random_histories(layout: HistoryLayout, n: int, seed: int) -> th.Tensor:
    generator = th.Generator().manual_seed(seed)
    histories = th.randn(n, layout.size, generator=generator) * 3
    padded = th.arange(layout.history_length) < th.randint(0, layout.history_length + 1, (n, 1), generator=generator)
    histories[:, -layout.history_length :] = (~padded).float()  # 0 to L padded (oldest) slots per row
    return histories


@pytest.mark.parametrize("scaled", [False, True], ids=["policy", "meta-model delta scale"])
def test_encoder_gives_nn_gru_features_and_gradients(scaled):
    th.manual_seed(0)
    layout = HistoryLayout(obs_dim=17, act_dim=6, history_length=10)  # HalfCheetah's
    encoder = HistoryEncoder(layout, gru_units=5)
    histories = random_histories(layout, 64, seed=1)
    delta_scale = th.rand(17) + 0.05 if scaled else None
    parameters = list(encoder.parameters())
    features = encoder(histories, delta_scale)
    reference = reference_encoding(encoder, histories, delta_scale)
    th.testing.assert_close(features, reference, rtol=1e-5, atol=1e-6)
    weights = th.randn_like(features)  # an arbitrary loss, so that every feature's gradient is checked
    for grad, expected in zip(th.autograd.grad((features * weights).sum(), parameters), th.autograd.grad((reference * weights).sum(), parameters)):
        th.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-5)


def test_stacked_recurrence_gradients_are_exact_in_double_precision():
    th.manual_seed(0)
    grus = [th.nn.GRU(4, 3, batch_first=True).double() for _ in range(2)]
    inputs = [th.randn(5, 6, 4, dtype=th.double, requires_grad=True) for _ in range(2)]
    weights = [(gru.weight_ih_l0, gru.bias_ih_l0, gru.weight_hh_l0, gru.bias_hh_l0) for gru in grus]
    flat = [w for ws in weights for w in ws]

    def stacked(x0: th.Tensor, x1: th.Tensor, *w: th.Tensor) -> th.Tensor:
        return stacked_gru_final_state([tuple(w[:4]), tuple(w[4:])], [x0, x1])  # type: ignore[list-item]

    assert th.autograd.gradcheck(stacked, (*inputs, *flat))
    # Each GRU of the stack is nn.GRU on its own input.
    states = stacked(*inputs, *flat)
    for i, gru in enumerate(grus):
        th.testing.assert_close(states[i], gru(inputs[i])[1][0])


class ActorLossBeforeCriticStepSAC(SAC):
    """The definition of HistorySAC's update, written with SB3's modules (whose extractors run one GRU pass at a
    time through autograd): ``SAC.train``'s losses, all at the parameters before the step, each network
    stepped on the gradient of its own loss (softlearning's and rlkit's order)."""

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        assert self.ent_coef_optimizer is not None and self.log_ent_coef is not None and isinstance(self.target_entropy, float)
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer, self.ent_coef_optimizer])
        logs: dict[str, list[float]] = dict(ent_coef=[], ent_coef_loss=[], actor_loss=[], critic_loss=[])
        for _ in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size)  # type: ignore[union-attr]
            actions_pi, log_prob = self.actor.action_log_prob(data.observations)
            log_prob = log_prob.reshape(-1, 1)
            ent_coef = th.exp(self.log_ent_coef.detach())
            ent_coef_loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()
            self.ent_coef_optimizer.zero_grad()
            ent_coef_loss.backward()
            self.ent_coef_optimizer.step()
            with th.no_grad():
                next_actions, next_log_prob = self.actor.action_log_prob(data.next_observations)
                next_q = th.cat(self.critic_target(data.next_observations, next_actions), dim=1).min(dim=1, keepdim=True).values
                target_q = data.rewards + (1 - data.dones) * self.gamma * (next_q - ent_coef * next_log_prob.reshape(-1, 1))
            critic_loss = 0.5 * sum(F.mse_loss(q, target_q) for q in self.critic(data.observations, data.actions))
            actor_loss = (ent_coef * log_prob - th.cat(self.critic(data.observations, actions_pi), dim=1).min(dim=1, keepdim=True).values).mean()
            networks = ((critic_loss, self.critic), (actor_loss, self.actor))
            for loss, network in networks:
                parameters = list(network.parameters())
                for parameter, grad in zip(parameters, th.autograd.grad(loss, parameters, retain_graph=True)):
                    parameter.grad = grad
            for _, network in networks:
                network.optimizer.step()
            polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
            for key, value in zip(logs, (ent_coef, ent_coef_loss, actor_loss, critic_loss)):
                logs[key].append(value.item())
        for key, values in logs.items():
            self.logger.record(f"train/{key}", np.mean(values))


def filled_agents(reference_class: type[SAC], agent_class: type[SAC], env_id: str, policy_kwargs_of, seed: int = 0) -> tuple[SAC, SAC]:
    """``reference_class`` and ``agent_class``, built alike (so with identical initial weights), with identical replay
    buffers of 300 random steps and no update made yet."""
    env = HistoryObservation(gym.make(env_id), history_length=4)
    kwargs = dict(buffer_size=1_000, batch_size=64, learning_starts=300, seed=seed, device="cpu")
    agents = [cls("MlpPolicy", env, policy_kwargs=policy_kwargs_of(env), **kwargs) for cls in (reference_class, agent_class)]
    SAC.learn(agents[0], 300)  # learning_starts=300: random-action steps only
    agents[1].replay_buffer = copy.deepcopy(agents[0].replay_buffer)
    for expected, got in zip(agents[0].policy.state_dict().values(), agents[1].policy.state_dict().values()):
        assert th.equal(got, expected)
    for agent in agents:
        agent.set_logger(configure(None, []))
    return agents[0], agents[1]


def train_seeded(agent: SAC, gradient_steps: int) -> dict[str, float]:
    np.random.seed(7)  # SB3's buffer draws from numpy's global generator, the policy's noise from torch's
    th.manual_seed(7)
    agent.train(gradient_steps=gradient_steps, batch_size=64)
    return {key: agent.logger.name_to_value[f"train/{key}"] for key in ("actor_loss", "critic_loss", "ent_coef", "ent_coef_loss")}


def sgd_history_policy(env: HistoryObservation) -> dict:
    """The history policy with SGD: Adam's first steps are ≈ lr · sign(gradient), which turns the float rounding
    of near-zero gradient entries into differences of ~lr; with SGD the parameters differ as the gradients do."""
    return dict(history_policy_kwargs(env.history_layout, net_arch=(32, 32)), optimizer_class=th.optim.SGD, optimizer_kwargs=dict(momentum=0.9))


@pytest.mark.parametrize("env_id", ["HalfCheetahFwdBwd-v0", "Pendulum-v1"])
@pytest.mark.parametrize(
    "actor_loss_before_critic_step, reference_class",
    [(True, ActorLossBeforeCriticStepSAC), (False, SAC)],
    ids=["actor loss before the critic step", "SB3's order: SAC.train"],
)
def test_history_sac_update_is_the_reference_update(env_id, actor_loss_before_critic_step, reference_class):
    def history_sac(*args, **kwargs):
        return HistorySAC(*args, actor_loss_before_critic_step=actor_loss_before_critic_step, **kwargs)

    reference, ours = filled_agents(reference_class, history_sac, env_id, sgd_history_policy)
    assert ours._reads_histories()
    before = reference.actor.mu.weight.detach().clone()
    logs = [train_seeded(agent, gradient_steps=20) for agent in (reference, ours)]
    for key in logs[0]:
        assert logs[1][key] == pytest.approx(logs[0][key], rel=1e-4, abs=1e-6), key
    for (name, expected), got in zip(reference.policy.state_dict().items(), ours.policy.state_dict().values()):
        th.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")
    assert not th.allclose(reference.actor.mu.weight, before)  # the updates did move the weights


def test_the_update_order_is_saved_with_the_agent(tmp_path):
    env = HistoryObservation(gym.make("Pendulum-v1"), history_length=4)
    agent = HistorySAC("MlpPolicy", env, policy_kwargs=history_policy_kwargs(env.history_layout, net_arch=(8,)), actor_loss_before_critic_step=True)
    agent.save(tmp_path / "agent")
    assert HistorySAC.load(tmp_path / "agent").actor_loss_before_critic_step is True
    assert HistorySAC.load(tmp_path / "agent", actor_loss_before_critic_step=False).actor_loss_before_critic_step is False  # SB3's load kwargs


def test_other_policies_get_sb3_update_exactly():
    sb3, ours = filled_agents(SAC, HistorySAC, "Pendulum-v1", lambda env: dict(net_arch=[32, 32]))  # flatten extractor
    assert not ours._reads_histories()
    logs = [train_seeded(agent, gradient_steps=10) for agent in (sb3, ours)]
    assert logs[0] == logs[1]
    for expected, got in zip(sb3.policy.state_dict().values(), ours.policy.state_dict().values()):
        assert th.equal(got, expected)
