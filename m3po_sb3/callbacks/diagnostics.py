"""The paper's training diagnostics (seed A.6 and A.9, Figures 11, 12 and 17), logged through SB3's logger.

- ``diagnostics/eps_m`` (Fig. 11): the meta-model's negative log-likelihood of real transitions it was not
  trained on. The callback measures it at each epoch boundary, just before the model is refitted, on the
  real transitions collected since its last fit (the model has not seen them, not even for early stopping).
- ``diagnostics/eps_pi`` (Fig. 12): the empirical KL divergence ``KL(π || π_D)`` averaged over real
  observations, where ``π_D`` has the actor's architecture and is fitted by maximum likelihood to the real
  actions. SAC's actions are ``tanh`` of a diagonal Gaussian; the same invertible ``tanh`` applied to both
  policies leaves the KL unchanged, so the closed form of the pre-squash Gaussians is exact (no sampling).
- ``diagnostics/td_error`` (Fig. 17): mean ``|Q_i(s, a) − y|`` over the critics and a batch of real
  transitions, with SAC's soft target ``y = r + γ (1 − d) (min_j Q'_j(s', a') − α log π(a' | s'))``.

The real data is M3PO's ``env_buffer`` (``D_env``), or the replay buffer of a model-free SAC.
"""

import csv
import math
import os
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.sac.policies import Actor

from m3po_sb3.models.networks import DynamicsModel

CSV_COLUMNS = ("timesteps", "eps_m", "eps_pi", "td_error")

# Stored actions are clipped this far inside (-1, 1) so that their pre-squash value atanh(a) stays finite.
ACTION_CLIP = 1.0 - 1e-6


def gaussian_kl(mean_p: th.Tensor, log_std_p: th.Tensor, mean_q: th.Tensor, log_std_q: th.Tensor) -> th.Tensor:
    """
    KL divergence of two diagonal Gaussians, in closed form.

    :param mean_p: means of ``p``, shape ``(N, d)``
    :param log_std_p: log standard deviations of ``p``
    :param mean_q: means of ``q``
    :param log_std_q: log standard deviations of ``q``
    :return: ``KL(p || q)`` of each row, shape ``(N,)``
    """
    var_ratio = th.exp(2.0 * (log_std_p - log_std_q))
    mahalanobis = ((mean_p - mean_q) * th.exp(-log_std_q)) ** 2
    return (log_std_q - log_std_p + 0.5 * (var_ratio + mahalanobis - 1.0)).sum(dim=-1)


@th.no_grad()
def policy_kl(actor: Actor, reference: Actor, observations: th.Tensor) -> float:
    """
    ε_π estimate: ``KL(π || π_D)`` of two squashed-Gaussian actors, averaged over observations (exact per
    observation: the closed form of the pre-squash Gaussians, see the module docstring).

    :param actor: the policy ``π``
    :param reference: the data policy ``π_D``
    :param observations: observations to average over, shape ``(N, ...)``
    :return: the mean KL
    """
    mean_p, log_std_p, _ = actor.get_action_dist_params(observations)
    mean_q, log_std_q, _ = reference.get_action_dist_params(observations)
    return _finite(gaussian_kl(mean_p, log_std_p, mean_q, log_std_q).mean().item(), "KL(π || π_D)")


def behaviour_log_likelihood(actor: Actor, observations: th.Tensor, actions: th.Tensor) -> th.Tensor:
    """
    Log-likelihood of stored actions under a squashed-Gaussian actor, without the ``tanh`` Jacobian
    ``−Σ log(1 − a²)``: it does not depend on the actor, so maximising this maximises the actions' density.

    :param actor: the actor
    :param observations: observations, shape ``(N, ...)``
    :param actions: actions in SB3's ``[-1, 1]`` units (as replay buffers store them), shape ``(N, d)``
    :return: per-row log-likelihood of the pre-squash values ``atanh(a)``, shape ``(N,)``
    """
    mean, log_std, _ = actor.get_action_dist_params(observations)
    gaussian_actions = th.atanh(actions.clamp(-ACTION_CLIP, ACTION_CLIP))
    return th.distributions.Normal(mean, log_std.exp()).log_prob(gaussian_actions).sum(dim=-1)


def fit_behaviour_policy(
    actor: Actor,
    observations: th.Tensor,
    actions: th.Tensor,
    optimizer: th.optim.Optimizer,
    n_steps: int,
    batch_size: int = 256,
    generator: th.Generator | None = None,
) -> float:
    """
    Fit ``π_D`` by maximum likelihood of the stored actions, with minibatch gradient steps.

    :param actor: the actor to train in place (e.g. ``SACPolicy.make_actor()``, the policy's architecture)
    :param observations: real observations, shape ``(N, ...)``
    :param actions: the actions taken there, in ``[-1, 1]``, shape ``(N, d)``
    :param optimizer: optimizer of the actor's parameters
    :param n_steps: gradient steps
    :param batch_size: minibatch size
    :param generator: random generator of the minibatches (on the actor's device)
    :return: the mean negative log-likelihood of the last minibatch
    """
    loss = th.full((), math.nan)
    for _ in range(n_steps):
        rows = th.randint(len(observations), (batch_size,), generator=generator, device=observations.device)
        loss = -behaviour_log_likelihood(actor, observations[rows], actions[rows]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return _finite(loss.item(), "π_D's negative log-likelihood")


def soft_td_target(
    rewards: th.Tensor, dones: th.Tensor, next_q_values: th.Tensor, next_log_prob: th.Tensor, gamma: float, ent_coef: float
) -> th.Tensor:
    """
    SAC's target ``y = r + γ (1 − d) (min_j Q'_j(s', a') − α log π(a' | s'))``.

    :param rewards: ``r``, shape ``(N, 1)``
    :param dones: ``d``, shape ``(N, 1)``
    :param next_q_values: target critics' values ``Q'_j(s', a')``, shape ``(N, n_critics)``
    :param next_log_prob: ``log π(a' | s')``, shape ``(N, 1)``
    :param gamma: discount ``γ``
    :param ent_coef: entropy coefficient ``α``
    :return: ``y``, shape ``(N, 1)``
    """
    soft_value = next_q_values.min(dim=1, keepdim=True).values - ent_coef * next_log_prob
    return rewards + gamma * (1.0 - dones) * soft_value


def td_error(q_values: Sequence[th.Tensor], target: th.Tensor) -> float:
    """
    :param q_values: each critic's ``Q_i(s, a)``, each of shape ``(N, 1)``
    :param target: the TD target ``y``, shape ``(N, 1)``
    :return: mean absolute TD error over critics and rows
    """
    return _finite(th.cat([q - target for q in q_values], dim=1).abs().mean().item(), "TD error")


@th.no_grad()
def sac_td_error(model: SAC, batch: ReplayBufferSamples) -> float:
    """
    TD error of a SAC agent's critics on a batch (Fig. 17), with the target SAC's ``train`` regresses on.

    :param model: the agent (SAC, history-SAC, M3PO)
    :param batch: transitions, e.g. real ones from :func:`real_data`
    :return: :func:`td_error`
    """
    next_actions, next_log_prob = model.actor.action_log_prob(batch.next_observations)
    next_q_values = th.cat(model.critic_target(batch.next_observations, next_actions), dim=1)
    target = soft_td_target(batch.rewards, batch.dones, next_q_values, next_log_prob.reshape(-1, 1), model.gamma, entropy_coefficient(model))
    return td_error(model.critic(batch.observations, batch.actions), target)


def entropy_coefficient(model: SAC) -> float:
    """:return: SAC's current ``α`` (learned or fixed)"""
    if model.log_ent_coef is not None:
        return float(th.exp(model.log_ent_coef.detach()).item())
    return float(model.ent_coef_tensor.item())


@runtime_checkable
class ModelBasedAgent(Protocol):
    """What the diagnostics read from a model-based agent (the M3PO family) besides SAC's own attributes."""

    env_buffer: ReplayBuffer  # D_env, the real transitions
    dynamics_model: DynamicsModel
    epoch_length: int  # env steps between two model fits
    last_model_fit_stats: dict[str, Any]  # the statistics of the last fit, empty before the first

    def env_transitions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:return: ``D_env``'s histories, actions, next observations and rewards, in storage order"""


def real_data(model: SAC) -> ReplayBuffer:
    """:return: the agent's real transitions: M3PO's ``D_env``, or a model-free agent's replay buffer"""
    return model.env_buffer if isinstance(model, ModelBasedAgent) else model.replay_buffer


def newest_rows(buffer: ReplayBuffer, n: int) -> np.ndarray:
    """
    :param buffer: a replay buffer with one env
    :param n: number of rows (at most the buffer's size)
    :return: the buffer indices of its ``n`` most recently stored rows, newest first
    """
    return (buffer.pos - 1 - np.arange(min(n, buffer.size()))) % buffer.buffer_size


def _finite(value: float, name: str) -> float:
    if not math.isfinite(value):
        raise FloatingPointError(f"diagnostics: {name} is {value}")
    return value


class DiagnosticsCallback(BaseCallback):
    """
    Every ``epoch_length`` env steps (at M3PO's epoch boundaries, right before its model is refitted),
    record the paper's three diagnostics (module docstring) under ``diagnostics/`` with SB3's logger, keep
    them in :attr:`records` and append them to ``csv_path``. ``eps_m`` needs an agent with a
    ``dynamics_model`` (M3PO, M2PO) that has been fitted; a model-free agent gets ``eps_pi`` and ``td_error``.

    ``π_D`` is built with the policy's ``make_actor`` (the actor's architecture, fresh weights) and fitted
    on all the real data; it is warm-started from the previous epoch's fit, as the data only grows.

    :param epoch_length: env steps between two diagnostics (default: the agent's ``epoch_length``)
    :param csv_path: CSV file to append to (``None``: none); columns ``timesteps, eps_m, eps_pi, td_error``
    :param n_samples: real transitions used for ``eps_pi`` and ``td_error``
    :param behaviour_steps: gradient steps of ``π_D``'s fit per epoch (the first fit gets four times more)
    :param batch_size: minibatch size of ``π_D``'s fit
    :param learning_rate: Adam learning rate of ``π_D``'s fit
    :param verbose: verbosity level
    """

    def __init__(
        self,
        epoch_length: int | None = None,
        csv_path: str | None = None,
        n_samples: int = 2048,
        behaviour_steps: int = 100,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        verbose: int = 0,
    ):
        super().__init__(verbose)
        self.epoch_length = epoch_length
        self.csv_path = csv_path
        self.n_samples = n_samples
        self.behaviour_steps = behaviour_steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.records: list[dict[str, float]] = []
        self.behaviour_policy: Actor | None = None
        self._behaviour_optimizer: th.optim.Optimizer | None = None
        self._fit_stats: object = None  # the agent's last model fit statistics we have seen
        self._rows_at_fit = 0  # real transitions stored when the model was last fitted

    def _init_callback(self) -> None:
        if self.epoch_length is None:
            if not isinstance(self.model, ModelBasedAgent):
                raise ValueError("DiagnosticsCallback: pass epoch_length for an agent without one")
            self.epoch_length = self.model.epoch_length
        self._generator = th.Generator(device=self.model.device).manual_seed(int(np.random.randint(2**31)))
        if self.csv_path is not None and not os.path.exists(self.csv_path):
            os.makedirs(os.path.dirname(os.path.abspath(self.csv_path)), exist_ok=True)
            with open(self.csv_path, "w", newline="") as file:
                csv.writer(file).writerow(CSV_COLUMNS)

    def _on_step(self) -> bool:
        # At this point SB3 has not stored the current step yet, and M3PO refits its model at rollout end.
        steps = self.num_timesteps - self.model.learning_starts
        if steps > 0 and steps % self.epoch_length == 0:  # type: ignore[operator]
            self.record()
        return True

    def _on_rollout_end(self) -> None:
        # Runs after M3PO's ModelRolloutCallback: notice a new fit and how much real data it saw.
        stats = self.model.last_model_fit_stats if isinstance(self.model, ModelBasedAgent) else None
        if stats and stats is not self._fit_stats:
            self._fit_stats, self._rows_at_fit = stats, self.model.num_timesteps

    def record(self) -> dict[str, float]:
        """
        Compute the diagnostics now and log them.

        :return: the values recorded, by name (``eps_m`` absent when there is no fitted model)
        """
        values = dict(eps_pi=self.eps_pi(), td_error=sac_td_error(self.model, real_data(self.model).sample(self.n_samples)))  # type: ignore[arg-type]
        eps_m = self.eps_m()
        if eps_m is not None:
            values["eps_m"] = eps_m
        for name, value in values.items():
            self.logger.record(f"diagnostics/{name}", value)
        self.records.append(dict(timesteps=self.num_timesteps, **values))
        if self.csv_path is not None:
            with open(self.csv_path, "a", newline="") as file:
                csv.DictWriter(file, CSV_COLUMNS).writerow(self.records[-1])
        return values

    def eps_m(self) -> float | None:
        """:return: the model's NLL of the real transitions stored since its last fit (``None``: no fit yet)"""
        agent = self.model
        n_unseen = agent.num_timesteps - 1 - self._rows_at_fit  # the current step is not stored yet
        if not isinstance(agent, ModelBasedAgent) or self._fit_stats is None or n_unseen < 1:
            return None
        rows = newest_rows(agent.env_buffer, n_unseen)
        histories, actions, next_obs, rewards = (x[rows] for x in agent.env_transitions())
        return _finite(agent.dynamics_model.nll(histories, actions, next_obs, rewards), "the model's held-out NLL")

    def eps_pi(self) -> float:
        """:return: ``KL(π || π_D)`` on real observations, after refitting ``π_D`` to all real actions"""
        buffer = real_data(self.model)  # type: ignore[arg-type]
        size = buffer.size() * buffer.n_envs
        observations = th.as_tensor(buffer.observations[: buffer.size()].reshape(size, -1), device=self.model.device)
        actions = th.as_tensor(buffer.actions[: buffer.size()].reshape(size, -1), device=self.model.device)
        n_steps = self.behaviour_steps
        if self.behaviour_policy is None:
            self.behaviour_policy, n_steps = self.model.policy.make_actor(), 4 * self.behaviour_steps  # type: ignore[operator]
            self._behaviour_optimizer = th.optim.Adam(self.behaviour_policy.parameters(), lr=self.learning_rate)
        assert self._behaviour_optimizer is not None
        fit_behaviour_policy(
            self.behaviour_policy, observations, actions, self._behaviour_optimizer, n_steps, self.batch_size, self._generator
        )
        rows = th.randint(size, (min(self.n_samples, size),), generator=self._generator, device=self.model.device)
        return policy_kl(self.model.actor, self.behaviour_policy, observations[rows])  # type: ignore[arg-type]
