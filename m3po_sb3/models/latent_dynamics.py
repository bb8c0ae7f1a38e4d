"""GHP-MDP's model (Perez, Such and Karaletsos, AAAI 2020): dynamics and reward conditioned on latent task variables.

A generalised hidden-parameter MDP lets hidden parameters change both the dynamics and the reward. The model
makes them latent variables ``z`` with the prior ``N(0, I)``:

- transition ``p(Δo | o_t, a_t, z_d)`` and reward ``p(r_t | o_t, a_t, Δo, z_r)``, each an ensemble of Gaussian
  MLPs (PETS's probabilistic ensemble, Chua et al. 2018), trained on the bootstrap of each member;
- flat (``reward_latent_dim=None``): one latent ``z`` that both networks see (``z_d = z_r = z``); structured
  (``reward_latent_dim=k``): ``z = [z_d, z_r]``, the dynamics latent ``z_d`` (agent and environment
  properties: a crippled leg, a mass, a friction) seen by the transition alone and the reward latent ``z_r``
  (the goal: a direction) seen by the reward alone, the paper's latent structure for dynamics and reward;
- ``latent_dim=0``: no latent, the plain PETS model (the comparison the latent is judged against).

Inference. The paper fits a Gaussian variational posterior ``q(z_i)`` per training task jointly with the
networks (ELBO: expected log-likelihood minus ``KL(q ‖ prior)``) and, at test time, fits a new task's
``q(z)`` to the transitions seen so far in the episode with the networks fixed. Here the tasks switch inside
an episode every 15 s, unannounced, and training data carries no task label, so the posterior is
**amortised on the recent window**: ``q(z | c)`` for the context ``c`` of the last ``L`` transitions that the
history observation holds (:class:`~m3po_sb3.history.HistoryObservation`), the product of one Gaussian factor
per transition (PEARL's permutation-invariant encoder, :class:`~m3po_sb3.models.context.ContextEncoder`; a product of
Gaussian factors is what a Gaussian per-task posterior becomes when each transition contributes evidence).
Each training row ``(h_t, a_t, o_{t+1}, r_t)`` maximises

    E_{z ~ q(z | window of h_t)} [log p(Δo, r | o_t, a_t, z)] − kl_weight · KL(q(z | window) ‖ N(0, I))

with ``z`` drawn by reparameterisation; the window holds the steps *before* ``t``, so the latent is trained to
predict transitions it has not seen, as test-time inference must. At test time ``z`` is re-inferred from the
window at every step, so the model follows a switch once the window holds transitions of the new task (all of
them after ``L`` steps); at an episode start the window is empty and ``q`` is the prior.

Choices the paper leaves open, taken from PETS or this package, and why:

- ensemble of ``B = 5`` Gaussian MLPs with swish units and soft-clamped, learned log-variance bounds (PETS);
  each member trains on its own bootstrap (PETS); one encoder shared by the members (the latent is a property
  of the task, not of a member);
- a fixed number of epochs per fit, starting from the current weights (PETS trains 5 epochs per iteration;
  no holdout), and the input statistics refitted at every fit (PETS);
- targets standardised with the statistics of the first fit, kept afterwards, as this package's
  :class:`~m3po_sb3.models.networks.DynamicsModel` does (refitting them would rescale what the previous weights mean);
- the reward network also sees the observation change (``r`` depends on where the step ends, e.g. a velocity);
  in training the true change, when imagining the sampled one;
- ``kl_weight`` 0.01 per row. Each row carries its own posterior, so a weight of 1 would count the prior once
  per row instead of once per task. PEARL's 0.1 for the same encoder was measured too strong here: on the
  pendulum with a hidden action gain (``tests/test_latent_dynamics.py``'s setting, 30 epochs), the latent stayed
  uninformative on 1 of 3 seeds (nearest-centroid task accuracy 0.57, no better prediction than without a
  latent), while 0.01 learned it on all three (accuracy 0.87-0.92, ``Δo`` error 0.015-0.023 against 0.085-0.097
  without a latent).
"""

import math
from typing import Optional, Union

import numpy as np
import torch as th
from stable_baselines3.common.utils import get_device
from torch import nn

from m3po_sb3.history.layout import HistoryLayout
from m3po_sb3.models.context import ContextEncoder, kl_to_standard_normal
from m3po_sb3.models.networks import (
    INITIAL_MAX_LOGVAR,
    INITIAL_MIN_LOGVAR,
    EnsembleLinear,
    fit_statistics,
    gaussian_nll,
    logvar_bound_penalty,
    soft_clamp_logvar,
    transition_tensors,
)


class GaussianEnsemble(nn.Module):
    """
    ``B`` Gaussian MLPs with swish units, applied to ``B`` row groups at once; the log-variance is soft-clamped
    into learned bounds (PETS).

    :param ensemble_size: number ``B`` of members
    :param in_features: input size
    :param out_features: size of the predicted variable
    :param hidden_units: width of the hidden layers
    :param num_hidden_layers: number of hidden layers
    """

    def __init__(self, ensemble_size: int, in_features: int, out_features: int, hidden_units: int, num_hidden_layers: int):
        super().__init__()
        widths = [in_features] + [hidden_units] * num_hidden_layers
        layers: list[nn.Module] = []
        for width_in, width_out in zip(widths[:-1], widths[1:]):
            layers += [EnsembleLinear(ensemble_size, width_in, width_out), nn.SiLU()]
        layers.append(EnsembleLinear(ensemble_size, widths[-1], 2 * out_features))
        self.net = nn.Sequential(*layers)
        self.max_logvar = nn.Parameter(th.full((out_features,), INITIAL_MAX_LOGVAR))
        self.min_logvar = nn.Parameter(th.full((out_features,), INITIAL_MIN_LOGVAR))

    def forward(self, x: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """
        :param x: shape ``(B, N, in_features)``, row group ``b`` for member ``b``
        :return: mean and soft-clamped log-variance, each ``(B, N, out_features)``
        """
        mean, logvar = self.net(x).chunk(2, dim=-1)
        return mean, soft_clamp_logvar(logvar, self.min_logvar, self.max_logvar)

    def bound_penalty(self) -> th.Tensor:
        """PETS's penalty that keeps the learned log-variance bounds tight."""
        return logvar_bound_penalty(self.min_logvar, self.max_logvar)


class LatentDynamicsModel(nn.Module):
    """
    GHP-MDP's latent-variable model of the next observation and the reward (module docstring).

    :param history_layout: layout of the flat histories the model receives (their window is the context)
    :param latent_dim: size of ``z``; 0: no latent (the plain PETS model)
    :param reward_latent_dim: ``None``: a flat latent seen by both networks; ``k`` (``0 < k < latent_dim``): the
        structured model, the last ``k`` dimensions are the reward latent ``z_r`` and the others the dynamics
        latent ``z_d``
    :param ensemble_size: number ``B`` of members (PETS: 5)
    :param hidden_units: width of the hidden swish layers of both networks (PETS: 200)
    :param num_hidden_layers: number of hidden layers of both networks (PETS: 3 or 4)
    :param encoder_arch: hidden layer sizes of the context encoder's MLP
    :param kl_weight: weight of ``KL(q(z | window) ‖ N(0, I))`` per row in the loss
    :param learning_rate: Adam learning rate (PETS: 1e-3)
    :param weight_decay: L2 penalty on all weights
    :param device: torch device, ``"auto"`` picks CUDA when available
    """

    def __init__(
        self,
        history_layout: HistoryLayout,
        latent_dim: int = 8,
        reward_latent_dim: Optional[int] = None,
        ensemble_size: int = 5,
        hidden_units: int = 200,
        num_hidden_layers: int = 3,
        encoder_arch: tuple[int, ...] = (200, 200),
        kl_weight: float = 0.01,
        learning_rate: float = 1e-3,
        weight_decay: float = 5e-5,
        device: Union[th.device, str] = "auto",
    ):
        super().__init__()
        for name, value, low in (("latent_dim", latent_dim, 0), ("ensemble_size", ensemble_size, 1), ("hidden_units", hidden_units, 1), ("num_hidden_layers", num_hidden_layers, 1)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if reward_latent_dim is not None and not (isinstance(reward_latent_dim, (int, np.integer)) and 0 < reward_latent_dim < latent_dim):
            raise ValueError(f"reward_latent_dim must be None (a flat latent) or an integer in (0, latent_dim={latent_dim}), got {reward_latent_dim!r}")
        for name, value in (("kl_weight", kl_weight), ("learning_rate", learning_rate), ("weight_decay", weight_decay)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        self.history_layout = history_layout
        self.latent_dim = latent_dim
        self.reward_latent_dim = reward_latent_dim
        self.ensemble_size = ensemble_size
        self.kl_weight = kl_weight
        obs_dim, act_dim = history_layout.obs_dim, history_layout.act_dim
        self.dynamics_latent_dim = latent_dim if reward_latent_dim is None else latent_dim - reward_latent_dim
        reward_sees = latent_dim if reward_latent_dim is None else reward_latent_dim
        self.encoder = ContextEncoder(history_layout, latent_dim, encoder_arch, nn.SiLU) if latent_dim > 0 else None
        self.transition = GaussianEnsemble(ensemble_size, obs_dim + act_dim + self.dynamics_latent_dim, obs_dim, hidden_units, num_hidden_layers)
        self.reward = GaussianEnsemble(ensemble_size, 2 * obs_dim + act_dim + reward_sees, 1, hidden_units, num_hidden_layers)
        for name, size in (("obs", obs_dim), ("act", act_dim), ("delta", obs_dim), ("rew", 1)):
            self.register_buffer(f"{name}_mean", th.zeros(size))
            self.register_buffer(f"{name}_std", th.ones(size))
        self.register_buffer("targets_standardised", th.tensor(False))
        self.to(get_device(device))
        self.optimizer = th.optim.Adam(self.parameters(), lr=learning_rate, weight_decay=weight_decay)

    @property
    def device(self) -> th.device:
        return self.obs_mean.device

    def posterior(self, histories: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """
        ``q(z | window)`` of each history's window of past transitions (the prior where the window is empty).

        :param histories: raw flat histories, shape ``(..., size)``
        :return: mean and variance, each ``(..., latent_dim)``
        """
        if self.encoder is None:
            empty = histories.new_zeros((*histories.shape[:-1], 0))
            return empty, empty
        current_obs, past_obs, past_act, past_rew, mask = self.history_layout.split(histories)
        # The encoder sees the window in the units the networks use: normalised observations and actions, and
        # the rewards scaled like the reward target.
        normalised = self.history_layout.join(
            self._normalise_obs(current_obs),
            self._normalise_obs(past_obs),
            (past_act - self.act_mean) / self.act_std,
            (past_rew - self.rew_mean) / self.rew_std,
            mask,
        )
        return self.encoder(normalised)

    def split_latent(self, z: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """:return: the latents the transition and the reward networks see (module docstring)"""
        if self.reward_latent_dim is None:
            return z, z
        return z[..., : self.dynamics_latent_dim], z[..., self.dynamics_latent_dim :]

    def _normalise_obs(self, obs: th.Tensor) -> th.Tensor:
        return (obs - self.obs_mean) / self.obs_std

    def predict(
        self, obs: th.Tensor, actions: th.Tensor, z: th.Tensor, delta: Optional[th.Tensor] = None, generator: Optional[th.Generator] = None
    ) -> dict[str, th.Tensor]:
        """
        Distributions of the normalised observation change and reward, member ``b`` on row group ``b``.

        :param obs: raw observations ``o_t``, shape ``(B, N, obs_dim)``
        :param actions: raw actions ``a_t``, shape ``(B, N, act_dim)``
        :param z: latents, shape ``(B, N, latent_dim)``
        :param delta: raw observation changes the reward network sees, shape ``(B, N, obs_dim)``; ``None``: a
            draw of the transition's prediction (imagination)
        :param generator: source of that draw's noise (``None``: PyTorch's global generator)
        :return: ``delta_mean``, ``delta_logvar`` (normalised), ``delta`` (raw, the one the reward saw),
            ``reward_mean``, ``reward_logvar`` (normalised, last dimension 1)
        """
        z_dynamics, z_reward = self.split_latent(z)
        obs_features, act_features = self._normalise_obs(obs), (actions - self.act_mean) / self.act_std
        delta_mean, delta_logvar = self.transition(th.cat([obs_features, act_features, z_dynamics], dim=-1))
        if delta is None:
            noise = th.randn(delta_mean.shape, generator=generator, device=delta_mean.device)
            normalised_delta = delta_mean + th.exp(0.5 * delta_logvar) * noise
            delta = normalised_delta * self.delta_std + self.delta_mean
        else:
            normalised_delta = (delta - self.delta_mean) / self.delta_std
        reward_mean, reward_logvar = self.reward(th.cat([obs_features, act_features, normalised_delta, z_reward], dim=-1))
        return dict(delta_mean=delta_mean, delta_logvar=delta_logvar, delta=delta, reward_mean=reward_mean, reward_logvar=reward_logvar)

    def loss(self, histories: th.Tensor, actions: th.Tensor, next_obs: th.Tensor, rewards: th.Tensor) -> tuple[th.Tensor, dict[str, float]]:
        """
        Negative ELBO per row, averaged (module docstring); each member sees its own draw of ``z``.

        :param histories: raw histories ``h_t``, shape ``(B, N, size)`` (row group ``b`` for member ``b``)
        :param actions: ``(B, N, act_dim)``
        :param next_obs: ``(B, N, obs_dim)``
        :param rewards: ``(B, N)``
        :return: the loss and its terms (``nll`` of the observation change and reward, ``kl``) as floats
        """
        mean, variance = self.posterior(histories)
        z = mean + variance.sqrt() * th.randn_like(mean)
        obs = self.history_layout.split(histories)[0]
        prediction = self.predict(obs, actions, z, delta=next_obs - obs)
        nll = gaussian_nll(prediction["delta_mean"], prediction["delta_logvar"], prediction["delta"].sub(self.delta_mean).div(self.delta_std)).sum(-1)
        nll = nll + gaussian_nll(prediction["reward_mean"], prediction["reward_logvar"], (rewards[..., None] - self.rew_mean) / self.rew_std).sum(-1)
        kl = kl_to_standard_normal(mean, variance) if self.encoder is not None else th.zeros_like(nll)
        loss = (nll + self.kl_weight * kl).mean() + self.transition.bound_penalty() + self.reward.bound_penalty()
        return loss, dict(nll=nll.mean().item(), kl=kl.mean().item())

    def fit(
        self,
        histories: np.ndarray,
        actions: np.ndarray,
        next_obs: np.ndarray,
        rewards: np.ndarray,
        *,
        epochs: int = 5,
        batch_size: int = 32,
        rng: np.random.Generator,
    ) -> dict[str, float]:
        """
        Maximise the ELBO for ``epochs`` passes, each member over its own bootstrap of the rows, starting from
        the current weights (PETS's training).

        :param histories: flat histories ``h_t``, shape ``(N, size)``
        :param actions: actions ``a_t``, shape ``(N, act_dim)``
        :param next_obs: observations ``o_{t+1}``, shape ``(N, obs_dim)``
        :param rewards: rewards ``r_t``, shape ``(N,)``
        :param epochs: passes over the data (PETS: 5 per iteration)
        :param batch_size: minibatch size per member (PETS: 32)
        :param rng: source of the bootstraps and the shuffling
        :return: the last epoch's mean ``loss``, ``nll`` and ``kl`` per row, the ``epochs`` and the gradient
            ``updates`` made
        """
        for name, value in (("epochs", epochs), ("batch_size", batch_size)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        h, a, o_next, r = self._as_tensors(histories, actions, next_obs, rewards)
        self._fit_normalisers(h, a, o_next, r)
        n = len(h)
        bootstrap = th.as_tensor(rng.integers(n, size=(self.ensemble_size, n)), device=self.device)
        self.train()
        totals: dict[str, float] = {}
        for _ in range(epochs):
            order = bootstrap[:, th.as_tensor(rng.permutation(n), device=self.device)]
            totals = dict(loss=0.0, nll=0.0, kl=0.0)
            for start in range(0, n, batch_size):
                rows = order[:, start : start + batch_size]
                loss, terms = self.loss(h[rows], a[rows], o_next[rows], r[rows])
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                if not math.isfinite(loss.item()):
                    raise ValueError("latent dynamics model training produced a non-finite loss")
                for key, value in (("loss", loss.item()), *terms.items()):
                    totals[key] += value * rows.shape[1] / n
        self.eval()
        return dict(**totals, epochs=float(epochs), updates=float(epochs * -(-n // batch_size)))

    @th.no_grad()
    def prediction_error(self, histories: np.ndarray, actions: np.ndarray, next_obs: np.ndarray, rewards: np.ndarray) -> dict[str, np.ndarray]:
        """
        Held-out errors of the members' mean prediction at the posterior mean of ``z``, per row.

        :return: ``delta_mse`` (mean squared error of the normalised observation change, averaged over its
            dimensions) and ``reward_mse`` (squared error of the normalised reward), each shape ``(N,)``
        """
        h, a, o_next, r = self._as_tensors(histories, actions, next_obs, rewards)
        mean, _ = self.posterior(h)
        obs = self.history_layout.split(h)[0]
        expand = lambda x: x.expand(self.ensemble_size, *x.shape)  # noqa: E731  (the same rows for every member)
        prediction = self.predict(expand(obs), expand(a), expand(mean), delta=expand(o_next - obs))
        delta_target = (prediction["delta"] - self.delta_mean) / self.delta_std
        delta_mse = (prediction["delta_mean"].mean(0) - delta_target[0]).pow(2).mean(-1)
        reward_mse = (prediction["reward_mean"].mean(0)[:, 0] - (r - self.rew_mean) / self.rew_std).pow(2)
        return dict(delta_mse=delta_mse.cpu().numpy(), reward_mse=reward_mse.cpu().numpy())

    def _as_tensors(self, histories: np.ndarray, actions: np.ndarray, next_obs: np.ndarray, rewards: np.ndarray) -> tuple[th.Tensor, ...]:
        """Check real transitions and turn them into tensors on the model's device."""
        if len(histories) == 0:
            raise ValueError("the latent dynamics model needs at least one transition")
        return transition_tensors(self.history_layout, histories, actions, next_obs, rewards, self.device)

    def _fit_normalisers(self, histories: th.Tensor, actions: th.Tensor, next_obs: th.Tensor, rewards: th.Tensor) -> None:
        """Refit the input statistics; the target statistics only at the first fit (module docstring)."""
        obs = self.history_layout.split(histories)[0]
        data = dict(obs=obs, act=actions)
        if not self.targets_standardised:
            data.update(delta=next_obs - obs, rew=rewards[:, None])
            self.targets_standardised.fill_(True)
        for name, values in data.items():
            fit_statistics(getattr(self, f"{name}_mean"), getattr(self, f"{name}_std"), values)
