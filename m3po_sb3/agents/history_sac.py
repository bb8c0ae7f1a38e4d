"""History-SAC: stable-baselines3's SAC on histories, with an update that runs the history encoders once.

The model-free meta-RL baseline of the paper (a SAC whose policy and critics read a history through a GRU)
and the base class of :class:`~m3po_sb3.M3PO`. SB3's ``SAC.train`` runs a GRU encoder five times per
gradient step (the actor on ``h`` and on ``h'``, the target critic on ``h'``, the critic on ``h`` before and
after its step) and backpropagates through three of them, twice; with a 5-unit GRU whose cost is the number
of operations per step, not arithmetic, that made the history cost more than the networks it feeds. Here,
per step:

1. the parameter-free part of the encoding is done once for ``h`` and once for ``h'``, and the four GRU
   passes of the actor (``h``, ``h'``), critic (``h``) and target critic (``h'``) run as one batched
   recurrence (:func:`~m3po_sb3.history.stacked_gru_final_state`) with a hand-written backward pass;
2. the critic's loss backpropagates through the recurrence, the critic steps, the stepped critic encodes
   ``h`` once more (without gradient, its weights frozen in the actor's loss) and the actor's loss
   backpropagates through the same recurrence: SB3's order and losses, with fewer operations.

Option ``actor_loss_before_critic_step=True`` changes the algorithm: the actor's loss on the critic *before*
its step, so that one backward pass serves both losses and the critic encodes ``h`` once (5-20 % faster). It
is the order of the implementations the paper's methods come from: softlearning's SAC (MBPO, and M3PO's code
built on it) runs the critic's and the policy's training operations in one session call, and rlkit's SAC
(PEARL) computes every loss before any optimizer steps. The two orders differ only in which critic the actor
follows, the one before or after the current step; the option's effect on learning is not settled
(benchmarks/README.md), hence not the default. Tests check each order against an update written with SB3's
own modules (``SAC.train`` itself for SB3's order).
"""

from typing import Any

import numpy as np
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.policies import ContinuousCritic
from stable_baselines3.common.utils import polyak_update
from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN
from torch.nn import functional as F

from m3po_sb3.history.encoder import HistoryEncoder, HistoryFeaturesExtractor, stacked_gru_final_state


class HistorySAC(SAC):
    """
    SB3 ``SAC`` for policies whose actor and critics read histories through their own
    :class:`~m3po_sb3.HistoryFeaturesExtractor` (``policy_kwargs=history_policy_kwargs(layout)`` on a
    :class:`~m3po_sb3.HistoryObservation` env). Constructor, arguments, saving and loading are ``SAC``'s,
    with one more argument, the update order. The update is ``SAC.train``'s with fewer operations (module
    docstring), or with the actor's loss on the critic before its step. Other policies (another features
    extractor, a shared one, gSDE) get ``SAC.train`` itself.
    """

    def __init__(self, *args: Any, actor_loss_before_critic_step: bool = False, **kwargs: Any):
        """
        :param actor_loss_before_critic_step: ``False``: SB3's order, the critic stepped first and the actor's
            loss on the stepped critic (``SAC.train``'s update, to float rounding). ``True``: the actor's loss on
            the critic before its step (softlearning's and rlkit's order), one encoding of ``h`` and one backward
            pass fewer per update (5-20 % faster, benchmarks/README.md); its effect on learning is not settled
        :param args: ``SAC``'s
        :param kwargs: ``SAC``'s
        """
        self.actor_loss_before_critic_step = actor_loss_before_critic_step
        super().__init__(*args, **kwargs)

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        if not self._reads_histories():
            return super().train(gradient_steps, batch_size)
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)
        logs: dict[str, list[float]] = dict(ent_coef=[], ent_coef_loss=[], actor_loss=[], critic_loss=[])
        critic_parameters, target_parameters = (list(critic.parameters()) for critic in (self.critic, self.critic_target))

        for gradient_step in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            discounts = data.discounts if data.discounts is not None else self.gamma
            encoder = _encoder(self.actor)
            obs, steps = encoder.transitions(data.observations.float())
            features, next_features, critic_features, target_features = self._encode(obs, steps, *encoder.transitions(data.next_observations.float()))
            actions_pi, log_prob = self._actor_action_log_prob(features)
            log_prob = log_prob.reshape(-1, 1)
            ent_coef = self._update_ent_coef(log_prob, logs)

            with th.no_grad():
                next_actions, next_log_prob = self._actor_action_log_prob(next_features)
                next_q_values, _ = th.min(th.cat(self._q_values(self.critic_target, target_features, next_actions), dim=1), dim=1, keepdim=True)
                next_q_values = next_q_values - ent_coef * next_log_prob.reshape(-1, 1)
                target_q_values = data.rewards + (1 - data.dones) * discounts * next_q_values

            current_q_values = self._q_values(self.critic, critic_features, data.actions)
            critic_loss = 0.5 * sum(F.mse_loss(current_q, target_q_values) for current_q in current_q_values)
            assert isinstance(critic_loss, th.Tensor)
            logs["critic_loss"].append(critic_loss.item())
            if self.actor_loss_before_critic_step:  # one backward pass serves both losses
                actor_loss = self._actor_loss(critic_features.detach(), actions_pi, log_prob, ent_coef)
                _step((self.critic, self.actor), critic_loss + actor_loss)
            else:  # SB3's order: the critic's features of h again, by the stepped critic
                # The actor's loss backpropagates through the same recurrence: one recurrence forward fewer than
                # giving the critic its own (faster at 64-64, equal at 256-256: benchmarks/README.md).
                _step((self.critic,), critic_loss, retain_graph=True)
                with th.no_grad():
                    stepped_critic_features = HistoryEncoder.features(obs, stacked_gru_final_state([_encoder(self.critic).gru_weights()], [steps])[0])
                actor_loss = self._actor_loss(stepped_critic_features, actions_pi, log_prob, ent_coef)
                _step((self.actor,), actor_loss)
            logs["actor_loss"].append(actor_loss.item())

            if gradient_step % self.target_update_interval == 0:
                with th.no_grad():  # SB3's polyak_update as one operation instead of two per tensor
                    th._foreach_lerp_(target_parameters, critic_parameters, self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for key, values in logs.items():
            if values:
                self.logger.record(f"train/{key}", np.mean(values))

    def _actor_loss(self, critic_features: th.Tensor, actions_pi: th.Tensor, log_prob: th.Tensor, ent_coef: th.Tensor) -> th.Tensor:
        """SAC's actor loss on the critic's (detached) features, the critic frozen: no gradient reaches its weights."""
        self.critic.requires_grad_(False)
        min_qf_pi, _ = th.min(th.cat(self._q_values(self.critic, critic_features, actions_pi), dim=1), dim=1, keepdim=True)
        self.critic.requires_grad_(True)
        return (ent_coef * log_prob - min_qf_pi).mean()

    def _reads_histories(self) -> bool:
        """Whether the actor, critic and target critic each have their own history features extractor."""
        extractors = [net.features_extractor for net in (self.actor, self.critic, self.critic_target)]
        return (
            all(isinstance(extractor, HistoryFeaturesExtractor) for extractor in extractors)
            and len({id(extractor) for extractor in extractors}) == 3
            and not self.use_sde
        )

    def _encode(self, obs: th.Tensor, steps: th.Tensor, next_obs: th.Tensor, next_steps: th.Tensor) -> tuple[th.Tensor, ...]:
        """
        :param obs: current observations of ``h`` (:meth:`~m3po_sb3.HistoryEncoder.transitions`)
        :param steps: the steps of ``h``
        :param next_obs: current observations of ``h'``
        :param next_steps: the steps of ``h'``
        :return: the actor's features of ``h`` and ``h'``, the critic's of ``h`` and the target critic's of ``h'``
            (those of ``h'`` without gradient)
        """
        actor, critic = _encoder(self.actor).gru_weights(), _encoder(self.critic).gru_weights()
        actor_next, target = _encoder(self.actor).gru_weights(detach=True), _encoder(self.critic_target).gru_weights(detach=True)  # used without gradients
        states = stacked_gru_final_state([actor, actor_next, critic, target], [steps, next_steps, steps, next_steps])
        return tuple(HistoryEncoder.features(current, state) for current, state in zip((obs, next_obs, obs, next_obs), states))

    def _actor_action_log_prob(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """SB3's ``Actor.action_log_prob`` from precomputed features."""
        latent_pi = self.actor.latent_pi(features)
        log_std = th.clamp(self.actor.log_std(latent_pi), LOG_STD_MIN, LOG_STD_MAX)  # type: ignore[operator]
        return self.actor.action_dist.log_prob_from_params(self.actor.mu(latent_pi), log_std)

    @staticmethod
    def _q_values(critic: ContinuousCritic, features: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, ...]:
        """SB3's ``ContinuousCritic.forward`` from precomputed features."""
        q_input = th.cat([features, actions], dim=1)
        return tuple(q_net(q_input) for q_net in critic.q_networks)

    def _update_ent_coef(self, log_prob: th.Tensor, logs: dict[str, list[float]]) -> th.Tensor:
        """SB3's entropy-coefficient step; returns the coefficient of this update (detached)."""
        if self.ent_coef_optimizer is None or self.log_ent_coef is None:
            ent_coef = self.ent_coef_tensor
        else:
            ent_coef = th.exp(self.log_ent_coef.detach())
            assert isinstance(self.target_entropy, float)
            ent_coef_loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()
            logs["ent_coef_loss"].append(ent_coef_loss.item())
            self.ent_coef_optimizer.zero_grad()
            ent_coef_loss.backward()
            self.ent_coef_optimizer.step()
        logs["ent_coef"].append(ent_coef.item())
        return ent_coef


def _encoder(network: Any) -> HistoryEncoder:
    return network.features_extractor.encoder


def _step(networks: tuple[Any, ...], loss: th.Tensor, retain_graph: bool = False) -> None:
    """One optimizer step of each of ``networks`` on the gradient of ``loss``."""
    for network in networks:
        network.optimizer.zero_grad()
    loss.backward(retain_graph=retain_graph)
    for network in networks:
        network.optimizer.step()
