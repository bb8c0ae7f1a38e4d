"""PEARL's context encoder (Rakelly et al., ICML 2019; katerakelly/oyster): a posterior over a latent task variable
``z`` from a set of transitions, the product of one Gaussian factor per transition. PEARL's agent and GHP-MDP's
latent-variable model both infer their latent with it.
"""

import torch as th
from stable_baselines3.common.torch_layers import create_mlp

from m3po_sb3.history.layout import HistoryLayout

MIN_VARIANCE = 1e-7  # oyster's floor on each factor's variance


def gaussian_product(means: th.Tensor, variances: th.Tensor, mask: th.Tensor | None = None) -> tuple[th.Tensor, th.Tensor]:
    """
    Normalised product of diagonal Gaussian factors: precisions add, and the mean is the precision-weighted
    mean of the factors' means. Rows without any factor get the prior ``N(0, I)``.

    :param means: factor means, shape ``(..., K, d)``
    :param variances: factor variances, shape ``(..., K, d)`` (floored at ``MIN_VARIANCE``)
    :param mask: ``(..., K)``, 1 for a factor that takes part, 0 for one that does not (``None``: all do)
    :return: the product's mean and variance, each of shape ``(..., d)``
    """
    precisions = 1.0 / variances.clamp_min(MIN_VARIANCE)
    if mask is not None:
        precisions = precisions * mask.unsqueeze(-1)
    total = precisions.sum(dim=-2)
    empty = total == 0
    safe_total = th.where(empty, th.ones_like(total), total)  # no 0/0 in the rows that take the prior
    mean = th.where(empty, th.zeros_like(total), (precisions * means).sum(dim=-2) / safe_total)
    return mean, th.where(empty, th.ones_like(total), 1.0 / safe_total)


def kl_to_standard_normal(mean: th.Tensor, variance: th.Tensor) -> th.Tensor:
    """
    ``KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ_j (σ²_j + μ²_j − 1 − log σ²_j)``.

    :param mean: ``(..., d)``
    :param variance: ``(..., d)``
    :return: the divergence of each row, shape ``(...)``
    """
    return 0.5 * (variance + mean**2 - 1.0 - th.log(variance)).sum(dim=-1)


class ContextEncoder(th.nn.Module):
    """
    PEARL's permutation-invariant context encoder on the transitions of a history: an MLP maps each
    transition ``(o_k, a_k, r_k, o_{k+1})`` to a Gaussian factor over ``z``, and the posterior is the product of
    the factors of the real (unpadded) transitions.

    :param history_layout: layout of the flat histories
    :param latent_dim: dimension of ``z``
    :param net_arch: hidden layer sizes of the MLP
    :param activation_fn: activation of the hidden layers
    """

    def __init__(
        self,
        history_layout: HistoryLayout,
        latent_dim: int = 5,
        net_arch: tuple[int, ...] = (200, 200, 200),
        activation_fn: type[th.nn.Module] = th.nn.ReLU,
    ):
        super().__init__()
        self.history_layout = history_layout
        self.latent_dim = latent_dim
        transition_dim = 2 * history_layout.obs_dim + history_layout.act_dim + 1
        self.net = th.nn.Sequential(*create_mlp(transition_dim, 2 * latent_dim, list(net_arch), activation_fn))

    def transitions(self, histories: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """
        :param histories: flat histories, shape ``(..., size)``
        :return: the transitions ``[o_k, a_k, r_k, o_{k+1}]`` of the window, shape ``(..., L, 2·obs + act + 1)``,
            oldest first, and their mask ``(..., L)``
        """
        current_obs, past_obs, past_act, past_rew, mask = self.history_layout.split(histories)
        next_obs = th.cat([past_obs[..., 1:, :], current_obs.unsqueeze(-2)], dim=-2)
        return th.cat([past_obs, past_act, past_rew.unsqueeze(-1), next_obs], dim=-1), mask

    def factors(self, transitions: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """
        :param transitions: shape ``(..., 2·obs + act + 1)``
        :return: each transition's factor mean and variance, shape ``(..., latent_dim)`` each
        """
        out = self.net(transitions)
        return out[..., : self.latent_dim], th.nn.functional.softplus(out[..., self.latent_dim :])

    def forward(self, histories: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """
        :param histories: flat histories, shape ``(..., size)``
        :return: mean and variance of the posterior ``q(z | c)`` of each history's window, ``(..., latent_dim)``
        """
        transitions, mask = self.transitions(histories)
        return gaussian_product(*self.factors(transitions), mask)
