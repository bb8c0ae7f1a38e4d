"""Learned dynamics for M3PO (history-conditioned meta-model) and M2PO (non-adaptive model, seed A.9).

Both are MBPO-style ensembles of ``B`` Gaussian MLPs predicting ``(o_{t+1} - o_t, r_t)``; they differ only in
:meth:`DynamicsModel._encode`, the features of the history the ensemble conditions on besides ``a_t``.

The networks follow MBPO (jannerm/mbpo ``bnn.py``) and mbrl-lib (``GaussianMLP``): ``B`` members with
soft-clamped log-variances; sampling draws from a random elite member per row. Where they differ from MBPO:

- The meta-model's GRU is shared by the members: the paper specifies one GRU of five units, a history is
  then encoded once per row (not ``B`` times) for the batched rollouts, and ``nn.GRU`` is reused as is.
- Inputs and targets are standardised (statistics set by the trainer, :mod:`m3po_sb3.models.training`, which
  fits the networks).
- Sampled observations are clipped into the range of the real ones seen in training (:meth:`DynamicsModel.sample`).
- The meta-model feeds its GRU the observation changes in units of its ``Δo`` targets (see
  :class:`~m3po_sb3.history.HistoryEncoder`), as CaDM-style context encoders see normalised transitions.

Ensemble weights are one tensor per layer (``(B, in, out)``, one ``baddbmm`` for all members). Normalisers
and the elites are registered buffers, so ``state_dict`` carries them.
"""

import math
from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np
import torch as th
from stable_baselines3.common.utils import get_device
from torch import nn
from torch.nn import functional as F

from m3po_sb3.history.encoder import HistoryEncoder, stacked_gru_final_state
from m3po_sb3.history.layout import HistoryLayout

# MBPO's (and PETS's) initial soft bounds of the (normalised) log-variance and the weight of their penalty in the loss.
INITIAL_MAX_LOGVAR = 0.5
INITIAL_MIN_LOGVAR = -10.0
LOGVAR_BOUND_PENALTY = 0.01
# MBPO's per-layer L2 penalties of its four hidden layers of 200 units and output layer (M2PO's model).
MBPO_WEIGHT_DECAY = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)
# MBPO's model besides its 7 members (seed A.9's M2PO), ``DynamicsModel`` arguments: 5 elites of four hidden layers
# of 200 units, MBPO's weight decays, the plain Gaussian NLL of the raw targets.
MBPO_MODEL_KWARGS: dict[str, Any] = dict(
    num_elites=5, hidden_units=200, num_hidden_layers=4, weight_decay=MBPO_WEIGHT_DECAY, nll_beta=0.0, standardise_targets=False
)


def soft_clamp_logvar(logvar: th.Tensor, min_logvar: th.Tensor, max_logvar: th.Tensor) -> th.Tensor:
    """MBPO's soft clamp of a predicted log-variance into learned bounds: smooth, so the bounds get gradients."""
    logvar = max_logvar - F.softplus(max_logvar - logvar)
    return min_logvar + F.softplus(logvar - min_logvar)


def logvar_bound_penalty(min_logvar: th.Tensor, max_logvar: th.Tensor) -> th.Tensor:
    """MBPO's loss term that keeps the learned log-variance bounds tight."""
    return LOGVAR_BOUND_PENALTY * (max_logvar.sum() - min_logvar.sum())


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
    :param standardise_targets: learn the targets ``(Δo, r)`` standardised by their statistics at the first fit
        (kept afterwards, :mod:`m3po_sb3.models.training`); ``False``: in their own units, as MBPO
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
        standardise_targets: bool = True,
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
        self.standardise_targets = standardise_targets
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
        self.max_logvar = nn.Parameter(th.full((self.target_dim,), INITIAL_MAX_LOGVAR))
        self.min_logvar = nn.Parameter(th.full((self.target_dim,), INITIAL_MIN_LOGVAR))

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
        return mean, soft_clamp_logvar(logvar, self.min_logvar, self.max_logvar) + self.logvar_offset

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
        per_output_nll = self.elite_nll(*self.as_tensors(histories, actions, next_obs, rewards))
        return per_output_nll.cpu().numpy() if per_output else per_output_nll.mean().item()

    def as_tensors(
        self, histories: np.ndarray, actions: np.ndarray, next_obs: np.ndarray, rewards: np.ndarray
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """Check real transitions and turn them into ``(histories, actions, raw targets (Δo, r))`` tensors."""
        h, a, o_next, r = transition_tensors(self.history_layout, histories, actions, next_obs, rewards, self.device)
        targets = th.cat([o_next - self.history_layout.split(h)[0], r[:, None]], dim=-1)
        return h, a, targets

    @th.no_grad()
    def evaluate(self, histories: th.Tensor, actions: th.Tensor, targets: th.Tensor, chunk_size: int = 8192) -> tuple[th.Tensor, th.Tensor]:
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
            nll += gaussian_nll(mean, logvar, normalised).sum(dim=1)
        # The density of the raw targets is the normalised one divided by the scale.
        score = (squared_error / len(targets)).log().mean(dim=1)
        return score, nll / len(targets) + self.target_std.log()

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # Models saved before ``logvar_offset`` existed had no calibration.
        state_dict.setdefault(prefix + "logvar_offset", th.zeros_like(self.logvar_offset))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def elite_nll(self, histories: th.Tensor, actions: th.Tensor, targets: th.Tensor) -> th.Tensor:
        """The elite members' mean NLL of each output (:meth:`nll`), shape ``(target_dim,)``."""
        return self.evaluate(histories, actions, targets)[1][self.elites].mean(dim=0)


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


def gaussian_nll(mean: th.Tensor, logvar: th.Tensor, targets: th.Tensor) -> th.Tensor:
    """Elementwise Gaussian negative log-likelihood."""
    return 0.5 * ((targets - mean) ** 2 * th.exp(-logvar) + logvar + math.log(2 * math.pi))


class MetaDynamicsModel(DynamicsModel):
    """
    M3PO's meta-model: the ensemble also conditions on a GRU encoding of the history, which lets it infer
    the current (hidden, possibly switching) task. The GRU is shared by the members (module docstring).

    :param history_layout: layout of the flat histories
    :param gru_units: size of the GRU state (5 in the paper)
    :param action_effect_inputs: also feed the GRU, at each past step, the products of each action component
        with each observation change and with the reward, ``a_k ⊗ [Δo_k, r_k]`` (in the units the GRU sees them).
        A departure from the paper, off by default. Why: where the task multiplies the action (a gain whose
        sign flips, a failed actuator) and actions are symmetric, no linear function of a step reveals it, and
        the GRU has to learn the product through the model's loss; on a Pendulum-v1 whose torque gain switches
        among ±0.5, ±1, ±2, the fits stopped before it did (0 of 3 seeds used the history at 2 x 200 units,
        3 of 3 with these inputs, ``benchmarks/README.md``)
    :param kwargs: further arguments of :class:`DynamicsModel`
    """

    def __init__(self, history_layout: HistoryLayout, gru_units: int = 5, action_effect_inputs: bool = False, **kwargs: Any):
        super().__init__(history_layout, history_encoder=HistoryEncoder(history_layout, gru_units), **kwargs)
        self.effect_weight: Optional[nn.Parameter] = None
        if action_effect_inputs:
            products = history_layout.act_dim * (history_layout.obs_dim + 1)
            bound = 1.0 / math.sqrt(gru_units)  # nn.GRU's initialisation
            self.effect_weight = nn.Parameter(th.empty(3 * gru_units, products, device=self.device).uniform_(-bound, bound))
            self.optimizer.add_param_group(dict(params=[self.effect_weight], weight_decay=0.0))  # as the GRU's own weights

    def _encode(self, histories: th.Tensor) -> th.Tensor:
        """
        :return: ``concat(o_t, final GRU state)`` of the normalised histories; the GRU sees the observation
            changes in units of the ``Δo`` targets' spread
        """
        delta_scale = self.target_std[:-1] / self.obs_std
        if self.effect_weight is None:
            return self.history_encoder(histories, delta_scale=delta_scale)
        layout = self.history_layout
        current_obs, steps = self.history_encoder.transitions(histories)
        obs, actions, rewards, next_obs, _ = steps.split([layout.obs_dim, layout.act_dim, 1, layout.obs_dim, 1], dim=-1)
        effects = th.cat([(next_obs - obs) / delta_scale, rewards], dim=-1)  # padded steps are zero: so are their products
        products = (actions.unsqueeze(-1) * effects.unsqueeze(-2)).flatten(-2)
        weight_ih, *others = self.history_encoder.gru_weights(delta_scale)
        weights = (th.cat([weight_ih, self.effect_weight], dim=1), *others)
        final_state = stacked_gru_final_state([weights], [th.cat([steps, products], dim=-1)])[0]  # type: ignore[list-item]
        return self.history_encoder.features(current_obs, final_state.reshape(*histories.shape[:-1], -1))
