"""The history encoder: a GRU over the past transitions of a flat history (with a hand-written backward pass of
its recurrence), and the stable-baselines3 features extractor that puts it in front of a policy or critic."""

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from m3po_sb3.history.layout import HistoryLayout, check_last_dim

def _gru_steps(gi: th.Tensor, w_hh: th.Tensor, b_hh: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
    """
    The GRU recurrence from a zero state (PyTorch's equations and gate order r, z, n) over precomputed input
    projections, for ``G`` GRUs at once (batched matrix products). Feature-major (the batch is the last
    dimension), so that every gate is a contiguous block whose element-wise operations run vectorised over
    the batch; batch-major, each operation would run over rows of 5 values at several times the cost. Each
    step is 5 operations writing into preallocated tensors: one ``baddbmm`` gives the r and z gates'
    pre-activations and ``W_hn h + b_hn`` at once, their input parts having been added for all steps up front.

    :param gi: ``W_ih x_k + b_ih`` of every step, shape ``(L, G, 3H, B)``
    :param w_hh: hidden-to-hidden weights, shape ``(G, 3H, H)``
    :param b_hh: hidden-to-hidden biases, shape ``(G, 3H)``
    :return: the states ``h_{-1} = 0, h_0, ..., h_{L-1}`` ``(L + 1, G, H, B)``, the gates ``[r; z]`` ``(L, G, 2H, B)``,
        the candidates ``n`` ``(L, G, H, B)`` and ``[r, z pre-activations; W_hn h_{k-1} + b_hn]`` ``(L, G, 3H, B)``
    """
    units, (length, groups, _, batch) = w_hh.shape[-1], gi.shape
    rz_n = 2 * units
    hidden = th.cat([gi[:, :, :rz_n] + b_hh[:, :rz_n, None], b_hh[:, rz_n:, None].expand(length, groups, units, batch)], dim=2)
    states = gi.new_zeros(length + 1, groups, units, batch)
    rz, n = gi.new_empty(length, groups, rz_n, batch), gi.new_empty(length, groups, units, batch)
    for k in range(length):
        if k > 0:  # h_{-1} = 0: nothing to add at the first step
            hidden[k].baddbmm_(w_hh, states[k])
        th.sigmoid(hidden[k, :, :rz_n], out=rz[k])
        th.addcmul(gi[k, :, rz_n:], rz[k, :, :units], hidden[k, :, rz_n:], out=n[k]).tanh_()
        th.lerp(n[k], states[k], rz[k, :, units:], out=states[k + 1])  # (1 - z) n + z h
    return states, rz, n, hidden


class _GRURecurrence(th.autograd.Function):
    """
    :func:`_gru_steps` with a hand-written backward pass. Why by hand: with 5 units the GRU does almost no
    arithmetic, and its cost is the number of operations per step. ``nn.GRU``'s and autograd's backward
    take ~20 per step; here the step's local derivatives are precomputed for all steps in a few whole-tensor
    operations, and the backward loop carries the state's gradient with 3 per step.
    """

    @staticmethod
    def forward(ctx: Any, gi: th.Tensor, w_hh: th.Tensor, b_hh: th.Tensor) -> th.Tensor:  # type: ignore[override]
        states, rz, n, hidden = _gru_steps(gi, w_hh, b_hh)
        units = w_hh.shape[-1]
        r, z, h_prev = rz[:, :, :units], rz[:, :, units:], states[:-1]
        # dL/d(pre-activations) = dL/dh_k times these factors (h_k = (1 - z) n + z h_{k-1}, n = tanh(.), r, z = σ(.))
        d_n = (1 - z) * (1 - n * n)
        d_r = d_n * hidden[:, :, 2 * units :] * r * (1 - r)
        d_z = (h_prev - n) * z * (1 - z)
        to_hidden = th.cat([d_r, d_z, d_n * r], dim=2)  # (L, G, 3H, B), gate order r, z, n: to W_hh h + b_hh
        ctx.save_for_backward(w_hh, h_prev, z, to_hidden, d_n)
        return states[-1]

    @staticmethod
    def backward(ctx: Any, d_h: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:  # type: ignore[override]
        w_hh, h_prev, z, to_hidden, d_n = ctx.saved_tensors
        length, groups, gates, batch = to_hidden.shape
        w_hh_t = w_hh.transpose(1, 2)
        d_states = th.empty_like(h_prev)  # dL/dh_k
        d_states[-1] = d_h
        d_hidden = th.empty_like(to_hidden)  # dL/d(W_hh h_{k-1} + b_hh)
        for k in range(length - 1, -1, -1):
            th.mul(to_hidden[k].view(groups, 3, -1, batch), d_states[k].unsqueeze(1), out=d_hidden[k].view(groups, 3, -1, batch))
            if k > 0:
                th.baddbmm(d_states[k] * z[k], w_hh_t, d_hidden[k], out=d_states[k - 1])
        d_w_hh = th.matmul(d_hidden, h_prev.transpose(-1, -2)).sum(0)
        d_b_hh = d_hidden.sum(dim=(0, 3))
        d_hidden[:, :, 2 * gates // 3 :] = d_states * d_n  # the input's n part enters n's pre-activation directly, not through r
        return d_hidden, d_w_hh, d_b_hh


GRUWeights = tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]


def stacked_gru_final_state(weights: list[GRUWeights], inputs: list[th.Tensor]) -> th.Tensor:
    """
    Final states of one-layer GRUs started from zero, GRU ``i`` over sequence batch ``inputs[i]``, computed as one
    recurrence: the maths of ``nn.GRU`` within float rounding, with a fraction of its operations
    (:class:`_GRURecurrence`).

    :param weights: ``(weight_ih, bias_ih, weight_hh, bias_hh)`` of each GRU, of equal sizes (a GRU may appear
        several times)
    :param inputs: sequence batches of equal shape ``(B, L, input_size)``
    :return: final states, shape ``(len(weights), B, hidden_size)``
    """
    batch, length, _ = inputs[0].shape
    gi = th.stack(  # (L, G, 3H, B): time-major and feature-major (see _gru_steps); W x^T is ~2x as fast as x W^T here
        [th.addmm(b_ih[:, None], w_ih, x.flatten(0, 1).t()).view(-1, batch, length).permute(2, 0, 1) for (w_ih, b_ih, _, _), x in zip(weights, inputs)],
        dim=1,
    )
    w_hh, b_hh = (th.stack(column) for column in list(zip(*weights))[2:])
    if th.is_grad_enabled() and any(t.requires_grad for t in (gi, w_hh, b_hh)):
        final_state = _GRURecurrence.apply(gi, w_hh, b_hh)
    else:
        final_state = _gru_steps(gi, w_hh, b_hh)[0][-1]
    return final_state.transpose(1, 2)


class HistoryEncoder(th.nn.Module):
    """
    ``concat(o_t, final GRU state)`` over the ``L`` past steps of a history. Each GRU step sees a whole
    transition ``[o_k, a_k, r_k, o_{k+1} - o_k, 1]``, so inferring the task (which shows in how ``a_k`` moved
    the observation, or in the reward it earned) is one step's work rather than a comparison across steps
    the GRU must learn to remember.
    Padded steps are multiplied by the mask, so the values stored in padded slots cannot change the output.

    The GRU's weights live in an ``nn.GRU`` (its input columns in the order above); the encoding runs as
    :meth:`transitions`, a gather of ``[o_k, a_k, r_k, o_{k+1}, mask_k]`` from the flat history, and
    :meth:`gru_weights`, the input weights rewritten for those columns (``W_o o + W_Δ (o' − o) = (W_o − W_Δ) o
    + W_Δ o'``), so that no ``o_{k+1} − o_k`` or concatenation is built: with 5 GRU units, building the
    inputs cost more than the GRU.

    :param history_layout: layout of the flat histories
    :param gru_units: size of the GRU state (5 in the paper)
    """

    def __init__(self, history_layout: HistoryLayout, gru_units: int = 5):
        super().__init__()
        self.history_layout = history_layout
        self.features_dim = history_layout.obs_dim + gru_units
        self.gru = th.nn.GRU(2 * history_layout.obs_dim + history_layout.act_dim + 2, gru_units, batch_first=True)
        n_obs, n_act, length = history_layout.obs_dim, history_layout.act_dim, history_layout.history_length
        past_obs = n_obs + np.arange(length + 1)[:, None] * n_obs + np.arange(n_obs)  # row L: the current observation
        past_obs[length] = np.arange(n_obs)
        past_act = n_obs + length * n_obs + np.arange(length)[:, None] * n_act + np.arange(n_act)
        past_rew = n_obs + length * (n_obs + n_act) + np.arange(length)[:, None]
        mask = past_rew + length
        columns = np.concatenate([past_obs[:-1], past_act, past_rew, past_obs[1:], mask], axis=1)  # (L, 2 obs + act + 2)
        self.register_buffer("_columns", th.as_tensor(columns.reshape(-1)), persistent=False)

    def transitions(self, histories: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """
        The parameter-free part of :meth:`forward`, which encoders of the same layout can share.

        :param histories: flat histories, shape ``(..., size)``
        :return: the current observations ``(..., obs_dim)`` and the steps ``[o_k, a_k, r_k, o_{k+1}, 1] · mask_k``,
            shape ``(N, L, 2 obs_dim + act_dim + 2)`` with ``N`` the number of histories
        """
        check_last_dim(histories, self.history_layout.size, "history")
        flat = histories.reshape(-1, histories.shape[-1])
        steps = flat.index_select(1, self._columns).view(flat.shape[0], self.history_layout.history_length, -1)
        return histories[..., : self.history_layout.obs_dim], steps * steps[..., -1:]  # the mask is 0 or 1: mask² = mask

    def gru_weights(self, delta_scale: th.Tensor | None = None, detach: bool = False) -> GRUWeights:
        """
        :param delta_scale: see :meth:`forward`
        :param detach: weights without gradient (a target network's)
        :return: the GRU's ``(weight_ih, bias_ih, weight_hh, bias_hh)``, ``weight_ih`` acting on :meth:`transitions`' steps
        """
        n_obs, n_act = self.history_layout.obs_dim, self.history_layout.act_dim
        gru = self.gru
        w_obs, w_act_rew, w_delta, w_one = gru.weight_ih_l0.split([n_obs, n_act + 1, n_obs, 1], dim=1)
        if delta_scale is not None:
            w_delta = w_delta / delta_scale
        weights = (th.cat([w_obs - w_delta, w_act_rew, w_delta, w_one], dim=1), gru.bias_ih_l0, gru.weight_hh_l0, gru.bias_hh_l0)
        return tuple(w.detach() for w in weights) if detach else weights  # type: ignore[return-value]

    def forward(self, histories: th.Tensor, delta_scale: th.Tensor | None = None) -> th.Tensor:
        """
        :param histories: flat histories, shape ``(..., size)``
        :param delta_scale: divides the observation changes ``o_{k+1} - o_k`` fed to the GRU, shape
            ``(obs_dim,)``; ``None``: 1. The meta-model passes the scale of its ``Δo`` targets, so that the
            changes an action causes reach the GRU at unit scale (in units of the observations' spread they
            are often a few hundredths, too faint for the GRU to pick up through the model's loss)
        :return: ``concat(o_t, final GRU state)``, shape ``(..., features_dim)``
        """
        current_obs, steps = self.transitions(histories)
        final_state = stacked_gru_final_state([self.gru_weights(delta_scale)], [steps])[0]
        return self.features(current_obs, final_state.reshape(*histories.shape[:-1], -1))

    @staticmethod
    def features(current_obs: th.Tensor, final_state: th.Tensor) -> th.Tensor:
        """:return: the encoder's output from :meth:`transitions`' current observations and the GRU's final states"""
        return th.cat([current_obs, final_state], dim=-1)


class HistoryFeaturesExtractor(BaseFeaturesExtractor):
    """
    SB3 features extractor for :class:`HistoryObservation` observations (see :class:`HistoryEncoder`).

    :param observation_space: the flat history space
    :param history_layout: layout of the flat histories
    :param gru_units: size of the GRU state (5 in the paper)
    """

    def __init__(self, observation_space: spaces.Box, history_layout: HistoryLayout, gru_units: int = 5):
        if observation_space.shape != (history_layout.size,):
            raise ValueError(
                f"observation space shape {observation_space.shape} does not match the history layout ({history_layout.size},)"
            )
        encoder = HistoryEncoder(history_layout, gru_units)
        super().__init__(observation_space, encoder.features_dim)
        self.encoder = encoder

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.encoder(observations)


def history_policy_kwargs(layout: HistoryLayout, gru_units: int = 5, net_arch: tuple[int, ...] = (400, 400)) -> dict[str, Any]:
    """
    ``policy_kwargs`` for SAC, TD3, PPO, ... on a :class:`HistoryObservation` env: GRU features and swish MLPs
    of the paper (seed A.7), and Adam in its fused form (``fused=True``: the same update in one kernel for all
    tensors instead of ~10 operations per tensor, which on CPU was ~10 % of a small SAC update).

    :param layout: the env's ``history_layout``
    :param gru_units: size of the GRU state
    :param net_arch: hidden layer sizes of the actor and critic MLPs
    :return: the keyword arguments
    """
    return dict(
        features_extractor_class=HistoryFeaturesExtractor,
        features_extractor_kwargs=dict(history_layout=layout, gru_units=gru_units),
        net_arch=list(net_arch),
        activation_fn=th.nn.SiLU,
        optimizer_kwargs=dict(fused=True),
    )
