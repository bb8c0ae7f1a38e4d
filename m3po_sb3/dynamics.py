"""Learned dynamics for M3PO (history-conditioned meta-model) and M2PO (non-adaptive model, seed A.9).

Both are MBPO-style ensembles of ``B`` Gaussian MLPs predicting ``(o_{t+1} - o_t, r_t)``; they differ only in
:meth:`DynamicsModel._encode`, the features of the history the ensemble conditions on besides ``a_t``.

Training follows MBPO (jannerm/mbpo ``bnn.py``) and mbrl-lib (``GaussianMLP``, ``ModelTrainer``) wherever the
seed is silent:

- each member trains on its own bootstrap of the training split; the holdout is at most 5 000 rows;
- no epoch cap: training stops once no member's held-out error has improved by 1 % (relative) for 5 epochs,
  and the ``E`` members with the lowest held-out error are the *elites* that rollouts sample from.

Where this differs from MBPO, and why:

- The meta-model's GRU is shared by the members: the paper specifies one GRU of five units, a history is
  then encoded once per row (not ``B`` times) for the batched rollouts, and ``nn.GRU`` is reused as is.
  MBPO restores each member's best epoch separately, which would pair heads with a GRU from another epoch;
  the best *whole model* (the last epoch at which some member improved) is restored instead, as mbrl-lib's
  trainer does.
- Targets are standardised (the reward and ``Δo`` have very different scales; MBPO leaves them raw) with the
  statistics of the first fit, kept afterwards: refitting them rescales what every output unit means, and
  the previous weights, which the next fit starts from, become much worse (issue 9 measured their held-out
  NLL jump to 10–213 on Pendulum). Inputs are refitted every fit,
  as MBPO and mbrl-lib do (their statistics move slowly as ``D_env`` grows).
- The held-out error is the geometric mean over output dimensions of the mean squared error, not MBPO's
  arithmetic mean: with targets as unequally predictable as a noisy reward and near-deterministic
  observation changes, a 1 % gain of the arithmetic mean is in effect a gain on the least predictable
  output alone, and fits can stop while the other errors still fall. For one output the rules are the same.
- An epoch is one pass over each member's bootstrap, as MBPO's, but at least ``min_epoch_rows`` and at most
  ``epoch_rows`` rows of it. The cap (a fresh random window of a large ``D_env``) stops a fit's cost from
  growing with ``D_env`` (issue 8; MBPO bounds it with a time cap). An epoch capped to a fraction ``f`` of a
  pass must gain ``f`` of the 1 % asked of a pass (the threshold's log scaled by ``f``): asking 1 % per
  20 000-row window of 160 000 training rows is asking 8 % per pass, and fits stopped while the held-out error
  still fell (issue 8 measured warm refits plateau at a test NLL 0.17 nats above the uncapped fit's). The floor keeps the patience meaningful
  on a small ``D_env``: MBPO first fits on 5 000 real steps, 16 minibatches per epoch, but an agent with
  ``E = 250`` first fits on 200 training rows, one minibatch, and 5 epochs without a 1 % gain are then 5
  updates: measured on ``Pendulum-v1``, fits stopped after 6 epochs at held-out NLL 24.8 and 0.8 (−3.5 once
  the data had grown), and the policy learned nothing until then. With 10 minibatches per epoch the
  same agents' fits ended at −3.3 to −4.1 from the first on.
- Sampled observations are clipped into the range of the real ones seen in training (:meth:`sample`).
- The meta-model feeds its GRU the observation changes in units of its ``Δo`` targets (see
  :class:`~m3po_sb3.history.HistoryEncoder`), as CaDM-style context encoders see normalised transitions.
- Optional, off by default (MBPO has none): ``fit(calibrate=True)`` rescales each member's variance of each
  output so that its mean squared standardised error on the holdout is 1 (temperature scaling, Kuleshov et
  al., ICML 2018). The stopping rule watches the mean's error only, so the variances go on shrinking on the
  training rows: on random-action ``AntCrippledLeg-v0`` data both models' held-out variances were too small by
  e^0.5 to e^1.6, the meta-model's most (it trains longest), which made its NLL the worse one although its mean
  was the better (benchmarks/README.md). Off by default because it also changes the rollouts' noise (wider on
  the Ant's random-action data, narrower on most outputs of HalfCheetah agent data), which learning runs
  have judged in one setting only.

Ensemble weights are one tensor per layer (``(B, in, out)``, one ``baddbmm`` for all members). Normalisers
and the elites are registered buffers, so ``state_dict`` carries them.
"""

import copy
import math
from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np
import torch as th
from stable_baselines3.common.utils import get_device
from torch import nn
from torch.nn import functional as F

from m3po_sb3.history import HistoryEncoder, HistoryLayout

# MBPO's initial soft bounds of the (normalised) log-variance and the weight of their penalty in the loss.
_INITIAL_MAX_LOGVAR = 0.5
_INITIAL_MIN_LOGVAR = -10.0
_LOGVAR_BOUND_PENALTY = 0.01
# MBPO's per-layer L2 penalties of its four hidden layers of 200 units and output layer (M2PO's model).
MBPO_WEIGHT_DECAY = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)
# MBPO's model besides its 7 members (seed A.9's M2PO): ``DynamicsModel`` arguments.
MBPO_MODEL_KWARGS: dict[str, Any] = dict(num_elites=5, hidden_units=200, num_hidden_layers=4, weight_decay=MBPO_WEIGHT_DECAY)


class EnsembleLinear(nn.Module):
    """
    ``B`` independent affine layers applied with one batched matmul.

    :param ensemble_size: number ``B`` of members
    :param in_features: input size
    :param out_features: output size
    """

    def __init__(self, ensemble_size: int, in_features: int, out_features: int):
        super().__init__()
        std = 1.0 / (2.0 * math.sqrt(in_features))  # MBPO's truncated-normal initialisation
        self.weight = nn.Parameter(nn.init.trunc_normal_(th.empty(ensemble_size, in_features, out_features), std=std, a=-2 * std, b=2 * std))
        self.bias = nn.Parameter(th.zeros(ensemble_size, 1, out_features))

    def forward(self, x: th.Tensor) -> th.Tensor:
        """
        :param x: shape ``(B, N, in_features)``
        :return: shape ``(B, N, out_features)``
        """
        return th.baddbmm(self.bias, x, self.weight)


class DynamicsModel(nn.Module):
    """
    M2PO's non-adaptive model: an ensemble of Gaussian MLPs on ``(o_t, a_t)`` predicting ``(Δo, r)``.

    :param history_layout: layout of the flat histories the model receives
    :param ensemble_size: number ``B`` of members
    :param num_elites: number ``E`` of members rollouts sample from, the best on held-out data after each fit
        (MBPO: 5 of 7); ``None``: all members
    :param hidden_units: width of the hidden swish layers
    :param num_hidden_layers: number of hidden layers
    :param learning_rate: Adam learning rate
    :param nll_beta: β of the β-NLL loss (Seitzer et al., ICLR 2022): each output's Gaussian NLL weighted by
        its predicted variance to the power β, without gradient through the weight (default 0.5, the paper's
        recommendation); 0: the plain NLL (MBPO).
        With the plain NLL a poorly predicted output (the reward of a hidden direction) is covered by a large
        variance and its mean stops learning; β > 0 keeps the mean learning there (module docstring)
    :param weight_decay: L2 penalty on the ensemble weights, one value for all layers or one per layer
        (``num_hidden_layers + 1`` values, e.g. :data:`MBPO_WEIGHT_DECAY`)
    :param device: torch device, ``"auto"`` picks CUDA when available
    :param history_encoder: encoder a subclass applies in :meth:`_encode`; its ``features_dim`` sizes the
        ensemble input. ``None``: the ensemble sees ``o_t`` alone.
    """

    def __init__(
        self,
        history_layout: HistoryLayout,
        ensemble_size: int = 3,
        num_elites: Optional[int] = None,
        hidden_units: int = 400,
        num_hidden_layers: int = 2,
        learning_rate: float = 1e-3,
        nll_beta: float = 0.5,
        weight_decay: Union[float, Sequence[float]] = 5e-5,
        device: Union[th.device, str] = "auto",
        history_encoder: Optional[HistoryEncoder] = None,
    ):
        super().__init__()
        num_elites = ensemble_size if num_elites is None else num_elites
        if not 1 <= num_elites <= ensemble_size:
            raise ValueError(f"num_elites must lie in [1, ensemble_size={ensemble_size}], got {num_elites}")
        decays = [weight_decay] * (num_hidden_layers + 1) if isinstance(weight_decay, (int, float)) else list(weight_decay)
        if len(decays) != num_hidden_layers + 1:
            raise ValueError(f"weight_decay needs one value per layer ({num_hidden_layers + 1}), got {len(decays)}")
        self.history_layout = history_layout
        self.ensemble_size = ensemble_size
        if not 0.0 <= nll_beta <= 1.0:
            raise ValueError(f"nll_beta must lie in [0, 1], got {nll_beta}")
        self.nll_beta = nll_beta
        self.history_encoder = history_encoder
        obs_dim, act_dim = history_layout.obs_dim, history_layout.act_dim
        self.target_dim = obs_dim + 1  # Δo and r
        encoding_dim = obs_dim if history_encoder is None else history_encoder.features_dim

        widths = [encoding_dim + act_dim] + [hidden_units] * num_hidden_layers
        layers: list[nn.Module] = []
        for in_features, out_features in zip(widths[:-1], widths[1:]):
            layers += [EnsembleLinear(ensemble_size, in_features, out_features), nn.SiLU()]
        layers.append(EnsembleLinear(ensemble_size, widths[-1], 2 * self.target_dim))
        self.ensemble = nn.Sequential(*layers)
        self.max_logvar = nn.Parameter(th.full((self.target_dim,), _INITIAL_MAX_LOGVAR))
        self.min_logvar = nn.Parameter(th.full((self.target_dim,), _INITIAL_MIN_LOGVAR))

        for name, size in (("obs", obs_dim), ("act", act_dim), ("target", self.target_dim)):
            self.register_buffer(f"{name}_mean", th.zeros(size))
            self.register_buffer(f"{name}_std", th.ones(size))
        self.register_buffer("targets_standardised", th.tensor(False))  # target statistics fitted (once)
        # Range of the real observations o_{t+1} seen in training: sampled observations are clipped into it.
        self.register_buffer("obs_low", th.full((obs_dim,), -th.inf))
        self.register_buffer("obs_high", th.full((obs_dim,), th.inf))
        self.register_buffer("elites", th.arange(num_elites))
        # Each member's shift of each output's log-variance from the last calibrated fit (0: none).
        self.register_buffer("logvar_offset", th.zeros(ensemble_size, 1, self.target_dim))

        self.to(get_device(device))
        weights = [module.weight for module in self.ensemble if isinstance(module, EnsembleLinear)]
        others = [param for param in self.parameters() if all(param is not weight for weight in weights)]
        groups = [dict(params=[weight], weight_decay=decay) for weight, decay in zip(weights, decays)]
        self.optimizer = th.optim.Adam([*groups, dict(params=others, weight_decay=0.0)], lr=learning_rate)

    @property
    def device(self) -> th.device:
        return self.max_logvar.device

    @property
    def num_elites(self) -> int:
        """Number ``E`` of elite members."""
        return len(self.elites)

    def _encode(self, histories: th.Tensor) -> th.Tensor:
        """
        Features of the (normalised) histories the ensemble conditions on; the one step subclasses override.

        :param histories: normalised flat histories, shape ``(..., history_layout.size)``
        :return: the current observation ``o_t``
        """
        return self.history_layout.split(histories)[0]

    def forward(self, histories: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """
        Predict the normalised target distribution of every member.

        :param histories: raw flat histories, shape ``(N, size)`` (same rows for all members) or ``(B, N, size)``
        :param actions: raw actions, shape ``(N, act_dim)`` or ``(B, N, act_dim)``
        :return: mean and log-variance of the normalised ``(Δo, r)``, each ``(B, N, obs_dim + 1)``; the
            log-variance is soft-clamped into ``[min_logvar, max_logvar]``
        """
        features = th.cat([self._encode(self._normalise_histories(histories)), (actions - self.act_mean) / self.act_std], dim=-1)
        mean, logvar = self.ensemble(features.expand(self.ensemble_size, -1, -1)).chunk(2, dim=-1)
        logvar = self.max_logvar - F.softplus(self.max_logvar - logvar)
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return mean, logvar + self.logvar_offset

    def _normalise_histories(self, histories: th.Tensor) -> th.Tensor:
        current_obs, past_obs, past_act, past_rew, mask = self.history_layout.split(histories)
        # Past rewards are scaled like the reward the model predicts (the last target).
        return self.history_layout.join(
            (current_obs - self.obs_mean) / self.obs_std,
            (past_obs - self.obs_mean) / self.obs_std,
            (past_act - self.act_mean) / self.act_std,
            (past_rew - self.target_mean[-1]) / self.target_std[-1],
            mask,
        )

    @th.no_grad()
    def sample(
        self,
        histories: th.Tensor,
        actions: th.Tensor,
        generator: Optional[th.Generator] = None,
        *,
        deterministic: bool = False,
    ) -> tuple[th.Tensor, th.Tensor]:
        """
        Sample one step from a random elite member per row (MBPO's rollout scheme). The observation is
        clipped into the range of the real ones seen in training: where the real dynamics clip (Pendulum's
        angular velocity at ±8), a Gaussian's tail would otherwise carry rollouts where no real state goes.
        Outputs are not checked for finiteness: the caller filters rows it cannot use (e.g. with
        ``th.isfinite``); a NaN stays NaN through the clipping.

        :param histories: raw flat histories ``h_t``, shape ``(N, size)``, on the model's device
        :param actions: actions ``a_t``, shape ``(N, act_dim)``
        :param generator: random generator on the model's device, for reproducible member choice and noise
        :param deterministic: use the chosen member's mean instead of ``mean + std * noise``
        :return: ``next_obs (N, obs_dim)`` and ``reward (N,)``
        """
        mean, logvar = self(histories, actions)
        rows = th.arange(mean.shape[1], device=self.device)
        members = self.elites[th.randint(self.num_elites, (mean.shape[1],), generator=generator, device=self.device)]
        prediction = mean[members, rows]
        if not deterministic:
            noise = th.randn(prediction.shape, generator=generator, device=self.device)
            prediction = prediction + th.exp(0.5 * logvar[members, rows]) * noise
        prediction = prediction * self.target_std + self.target_mean
        next_obs = th.clamp(self.history_layout.split(histories)[0] + prediction[:, :-1], self.obs_low, self.obs_high)
        return next_obs, prediction[:, -1]

    @th.no_grad()
    def nll(self, histories: np.ndarray, actions: np.ndarray, next_obs: np.ndarray, rewards: np.ndarray, per_output: bool = False) -> float | np.ndarray:
        """
        Gaussian negative log-likelihood of real transitions (the paper's ε_m estimate, Fig. 11), in the
        original units, averaged over transitions, output dimensions and elite members.

        :param histories: flat histories ``h_t``, shape ``(N, size)``
        :param actions: actions ``a_t``, shape ``(N, act_dim)``
        :param next_obs: observations ``o_{t+1}``, shape ``(N, obs_dim)``
        :param rewards: rewards ``r_t``, shape ``(N,)``
        :param per_output: return the NLL of each output (``Δo`` dimensions, then the reward) instead of their mean
        :return: the mean NLL per output dimension (a float), or each output's, shape ``(obs_dim + 1,)``
        """
        per_output_nll = self._nll(*self._as_tensors(histories, actions, next_obs, rewards))
        return per_output_nll.cpu().numpy() if per_output else per_output_nll.mean().item()

    def fit(
        self,
        histories: np.ndarray,
        actions: np.ndarray,
        next_obs: np.ndarray,
        rewards: np.ndarray,
        *,
        holdout_ratio: float = 0.2,
        max_holdout: int = 5000,
        batch_size: int = 256,
        max_epochs: Optional[int] = None,
        max_epochs_since_update: int = 5,
        improvement_threshold: float = 0.01,
        min_epoch_rows: int = 2_560,
        epoch_rows: Optional[int] = 20_000,
        first_epoch_counts: bool = True,
        calibrate: bool = False,
        rng: np.random.Generator,
    ) -> dict[str, Any]:
        """
        Maximum-likelihood training, MBPO's way (module docstring), starting from the current weights: a
        random holdout split; each member trains on its own bootstrap of the training split; after every
        epoch each member's held-out error (geometric mean over outputs of the mean squared error of the
        normalised targets) is measured, and training stops once no member has improved by
        ``improvement_threshold`` (relative) for ``max_epochs_since_update`` epochs; the first epoch always
        counts. The model of the last epoch at which some member improved is restored and its
        ``num_elites`` best members on the holdout become the elites.

        :param histories: flat histories ``h_t``, shape ``(N, size)``
        :param actions: actions ``a_t``, shape ``(N, act_dim)``
        :param next_obs: observations ``o_{t+1}``, shape ``(N, obs_dim)``
        :param rewards: rewards ``r_t``, shape ``(N,)``
        :param holdout_ratio: fraction of the transitions held out for early stopping and the elites
        :param max_holdout: cap on the held-out rows (MBPO's 5 000)
        :param batch_size: minibatch size per member
        :param max_epochs: cap on the epochs; ``None``: none, the patience rule alone stops (MBPO)
        :param max_epochs_since_update: patience of the early stopping, in epochs
        :param improvement_threshold: relative decrease of a member's held-out error that counts as progress
            in a pass over its training rows (in an epoch capped by ``epoch_rows`` to a fraction ``f`` of a pass,
            a decrease by a factor ``(1 - improvement_threshold) ** f``)
        :param min_epoch_rows: rows each member sees per epoch at least (several passes over a small training
            split; default 10 minibatches of 256), so that the patience counts more than a few updates
        :param epoch_rows: cap on the rows of its bootstrap each member sees per epoch (a random window of it);
            ``None``: no cap. It bounds the cost of a fit as ``D_env`` grows
        :param first_epoch_counts: count the first epoch as progress, so that the weights before this call are
            never restored (MBPO's ``bnn.py``, whose snapshots start each fit at a loss of 1e10). ``False``: they
            compete with the epochs' (mbrl-lib's rule), and a warm refit whose epochs do not beat them keeps them
            (0.012-0.016 nats worse test NLL after a run's refits to 200 000 rows, benchmarks/README.md)
        :param calibrate: after training, shift each member's log-variance of each output by the log of its
            mean squared standardised error on the holdout (module docstring; the returned ``holdout_nll`` is then
            the calibrated model's, on the rows it was calibrated on); otherwise any earlier shift is dropped
        :param rng: source of the split, bootstraps and shuffling
        :return: ``holdout_nll`` and ``train_nll`` (at most ``max_holdout`` training rows) of the returned
            model's elites, ``holdout_score`` of each member, ``elites``, ``epochs`` trained of ``rows_per_epoch``
            rows per member, ``best_epoch`` (0: the weights before this call, kept; only with ``first_epoch_counts=False``) and ``holdout_curve`` (each
            member's held-out score, the log of its error, after each epoch, from 0)
        """
        tensors = self._as_tensors(histories, actions, next_obs, rewards)
        n = len(tensors[0])
        n_holdout, rows_per_epoch = fit_sizes(n, holdout_ratio, max_holdout, min_epoch_rows, epoch_rows)
        permutation = th.as_tensor(rng.permutation(n), device=self.device)
        holdout = [x[permutation[:n_holdout]] for x in tensors]
        train = [x[permutation[n_holdout:]] for x in tensors]
        self._fit_normalisers(*train)
        self.logvar_offset.zero_()  # training and the stopping rule see the raw variances
        real_next_obs = self.history_layout.split(tensors[0])[0] + tensors[2][:, :-1]
        self.obs_low.copy_(real_next_obs.min(dim=0).values)
        self.obs_high.copy_(real_next_obs.max(dim=0).values)

        best_score, _ = self._evaluate(*holdout)
        curve = [best_score.tolist()]
        if first_epoch_counts:
            best_score = th.full_like(best_score, math.inf)
        best_state, best_epoch = copy.deepcopy(self.state_dict()), 0
        bootstrap = rng.integers(len(train[0]), size=(self.ensemble_size, len(train[0])))
        pass_fraction = min(1.0, rows_per_epoch / len(train[0]))
        min_gain = -math.log(1.0 - improvement_threshold) * pass_fraction
        epoch = 0
        while max_epochs is None or epoch < max_epochs:
            epoch += 1
            self._train_epoch(*train, th.as_tensor(_epoch_order(bootstrap, rows_per_epoch, rng), device=self.device), batch_size)
            score, _ = self._evaluate(*holdout)
            curve.append(score.tolist())
            improved = best_score - score > min_gain
            if improved.any():
                best_score = th.where(improved, score, best_score)
                best_state, best_epoch = copy.deepcopy(self.state_dict()), epoch
            elif epoch - best_epoch >= max_epochs_since_update:
                break
        self.load_state_dict(best_state)
        holdout_score, _ = self._evaluate(*holdout)
        self.elites.copy_(holdout_score.argsort()[: self.num_elites].sort().values)
        if calibrate:
            self._calibrate(*holdout)
        return dict(
            holdout_nll=self._nll(*holdout).mean().item(),
            train_nll=self._nll(*(x[:max_holdout] for x in train)).mean().item(),
            holdout_score=holdout_score.tolist(),
            elites=self.elites.tolist(),
            epochs=epoch,
            rows_per_epoch=rows_per_epoch,
            best_epoch=best_epoch,
            holdout_curve=curve,
        )

    def _as_tensors(
        self, histories: np.ndarray, actions: np.ndarray, next_obs: np.ndarray, rewards: np.ndarray
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """Check real transitions and turn them into ``(histories, actions, raw targets (Δo, r))`` tensors."""
        h, a, o_next, r = transition_tensors(self.history_layout, histories, actions, next_obs, rewards, self.device)
        targets = th.cat([o_next - self.history_layout.split(h)[0], r[:, None]], dim=-1)
        return h, a, targets

    def _fit_normalisers(self, histories: th.Tensor, actions: th.Tensor, targets: th.Tensor) -> None:
        """Refit the input statistics; the target statistics only at the first fit (module docstring)."""
        data = dict(obs=self.history_layout.split(histories)[0], act=actions)
        if not self.targets_standardised:
            data["target"] = targets
            self.targets_standardised.fill_(True)
        for name, values in data.items():
            fit_statistics(getattr(self, f"{name}_mean"), getattr(self, f"{name}_std"), values)

    def _train_epoch(self, histories: th.Tensor, actions: th.Tensor, targets: th.Tensor, member_indices: th.Tensor, batch_size: int) -> None:
        """One pass over ``member_indices (B, n)``, each member's rows of the training split in order."""
        targets = (targets - self.target_mean) / self.target_std
        epoch_loss = th.zeros((), device=self.device)
        for start in range(0, member_indices.shape[1], batch_size):
            batch = member_indices[:, start : start + batch_size]
            loss = self._loss(*self(histories[batch], actions[batch]), targets[batch])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            epoch_loss += loss.detach()
        # Checked once per epoch, not per step, to avoid a device synchronisation per minibatch.
        if not th.isfinite(epoch_loss):
            raise ValueError("dynamics model training produced a non-finite loss")

    def _loss(self, mean: th.Tensor, logvar: th.Tensor, targets: th.Tensor) -> th.Tensor:
        """Members' (β-)NLLs summed, plus MBPO's penalty that keeps the learned log-variance bounds tight."""
        nll = _gaussian_nll(mean, logvar, targets)
        if self.nll_beta > 0:
            nll = nll * th.exp(self.nll_beta * logvar.detach())
        nll = nll.mean(dim=(1, 2)).sum()
        return nll + _LOGVAR_BOUND_PENALTY * (self.max_logvar.sum() - self.min_logvar.sum())

    @th.no_grad()
    def _evaluate(self, histories: th.Tensor, actions: th.Tensor, targets: th.Tensor, chunk_size: int = 8192) -> tuple[th.Tensor, th.Tensor]:
        """
        :return: each member's held-out score, the mean over output dimensions of the log of its mean squared
            error (module docstring), shape ``(B,)``, and its mean Gaussian NLL of each output in the original
            units, shape ``(B, target_dim)``
        """
        squared_error = th.zeros(self.ensemble_size, self.target_dim, device=self.device)
        nll = th.zeros(self.ensemble_size, self.target_dim, device=self.device)
        for start in range(0, len(histories), chunk_size):
            mean, logvar = self(histories[start : start + chunk_size], actions[start : start + chunk_size])
            normalised = (targets[start : start + chunk_size] - self.target_mean) / self.target_std
            squared_error += ((mean - normalised) ** 2).sum(dim=1)
            nll += _gaussian_nll(mean, logvar, normalised).sum(dim=1)
        # The density of the raw targets is the normalised one divided by the scale.
        score = (squared_error / len(targets)).log().mean(dim=1)
        return score, nll / len(targets) + self.target_std.log()

    @th.no_grad()
    def _calibrate(self, histories: th.Tensor, actions: th.Tensor, targets: th.Tensor) -> None:
        """Set ``logvar_offset`` so that each member's mean squared standardised error of each output on these rows is 1."""
        self.logvar_offset.zero_()
        mean, logvar = self(histories, actions)
        standardised_error = ((mean - (targets - self.target_mean) / self.target_std) ** 2 / logvar.exp()).mean(dim=1, keepdim=True)
        self.logvar_offset.copy_(standardised_error.clamp_min(th.finfo(standardised_error.dtype).tiny).log())

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # Models saved before ``logvar_offset`` existed (agents saved before 2026-12-03) had no calibration.
        state_dict.setdefault(prefix + "logvar_offset", th.zeros_like(self.logvar_offset))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _nll(self, histories: th.Tensor, actions: th.Tensor, targets: th.Tensor) -> th.Tensor:
        """The elite members' mean NLL of each output (:meth:`nll`), shape ``(target_dim,)``."""
        return self._evaluate(histories, actions, targets)[1][self.elites].mean(dim=0)


def transition_tensors(
    layout: HistoryLayout, histories: np.ndarray, actions: np.ndarray, next_obs: np.ndarray, rewards: np.ndarray, device: th.device
) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
    """
    Check real transitions (shapes against ``layout``, finiteness) and turn them into float32 tensors.

    :return: ``histories (N, size)``, ``actions (N, act_dim)``, ``next_obs (N, obs_dim)``, ``rewards (N,)``
    """
    expected = dict(histories=(layout.size,), actions=(layout.act_dim,), next_obs=(layout.obs_dim,), rewards=())
    arrays = dict(histories=histories, actions=actions, next_obs=next_obs, rewards=rewards)
    n = len(histories)
    for name, array in arrays.items():
        array = arrays[name] = np.asarray(array, dtype=np.float32)
        if array.shape != (n, *expected[name]):
            raise ValueError(f"{name} must have shape {(n, *expected[name])}, got {array.shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} contains non-finite values")
    h, a, o_next, r = (th.as_tensor(array, device=device) for array in arrays.values())
    return h, a, o_next, r


def fit_statistics(mean: th.Tensor, std: th.Tensor, values: th.Tensor) -> None:
    """
    Set a normaliser's buffers in place to the per-column mean and standard deviation of ``values (N, d)``.
    A constant column (or a single row) keeps unit scale instead of blowing up.
    """
    mean.copy_(values.mean(dim=0))
    spread = values.std(dim=0) if len(values) > 1 else th.ones_like(values[0])
    std.copy_(th.where(spread < 1e-6, th.ones_like(spread), spread))


def fit_sizes(
    n: int, holdout_ratio: float, max_holdout: int, min_epoch_rows: int, epoch_rows: Optional[int]
) -> tuple[int, int]:
    """
    The held-out rows and the rows each member trains on per epoch of ``DynamicsModel.fit`` on ``n`` transitions
    (its parameters of the same names), so that a cost model of the fits (benchmarks/bench_wall_time.py) follows it.
    """
    n_holdout = min(int(n * holdout_ratio), max_holdout)
    if not 0 < n_holdout < n:
        raise ValueError(f"holdout_ratio={holdout_ratio} leaves no holdout or no training data for {n} transitions")
    rows_per_epoch = max(n - n_holdout, min_epoch_rows)
    return n_holdout, rows_per_epoch if epoch_rows is None else min(rows_per_epoch, epoch_rows)


def _epoch_order(bootstrap: np.ndarray, rows: int, rng: np.random.Generator) -> np.ndarray:
    """
    :param bootstrap: each member's bootstrap indices, shape ``(B, n)``
    :param rows: rows per member in the epoch
    :return: shape ``(B, rows)``: consecutive independent shuffles of each member's bootstrap, cut at ``rows``
    """
    passes = -(-rows // bootstrap.shape[1])
    return np.concatenate([rng.permuted(bootstrap, axis=1) for _ in range(passes)], axis=1)[:, :rows]


def _gaussian_nll(mean: th.Tensor, logvar: th.Tensor, targets: th.Tensor) -> th.Tensor:
    """Elementwise Gaussian negative log-likelihood."""
    return 0.5 * ((targets - mean) ** 2 * th.exp(-logvar) + logvar + math.log(2 * math.pi))


class MetaDynamicsModel(DynamicsModel):
    """
    M3PO's meta-model: the ensemble also conditions on a GRU encoding of the history, which lets it infer
    the current (hidden, possibly switching) task. The GRU is shared by the members (module docstring).

    :param history_layout: layout of the flat histories
    :param gru_units: size of the GRU state (5 in the paper)
    :param kwargs: further arguments of :class:`DynamicsModel`
    """

    def __init__(self, history_layout: HistoryLayout, gru_units: int = 5, **kwargs: Any):
        super().__init__(history_layout, history_encoder=HistoryEncoder(history_layout, gru_units), **kwargs)

    def _encode(self, histories: th.Tensor) -> th.Tensor:
        """
        :return: ``concat(o_t, final GRU state)`` of the normalised histories; the GRU sees the observation
            changes in units of the ``Δo`` targets' spread
        """
        return self.history_encoder(histories, delta_scale=self.target_std[:-1] / self.obs_std)
