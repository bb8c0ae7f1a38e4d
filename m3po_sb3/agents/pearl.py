"""PEARL (Rakelly et al., ICML 2019), the paper's model-free meta-RL baseline, as a stable-baselines3 ``SAC`` subclass.

What PEARL is here, as in the authors' code (katerakelly/oyster):

- a **context encoder** (an MLP of 3 × 200 ReLU units) maps each transition ``(o, a, r, o')`` to a Gaussian
  factor ``N(μ_k, σ²_k)`` over a latent task variable ``z`` (5 dimensions; ``σ²_k`` through a softplus);
- the **posterior** ``q(z | c)`` is the product of the factors of the context ``c`` (:func:`gaussian_product`);
- in the updates ``z`` is drawn from it by **reparameterisation**, and the actor and the twin critics
  (3 × 300 ReLU units each) see ``(o, z)``;
- the encoder is trained **through the critic loss only**, plus ``kl_weight · KL(q(z | c) ‖ N(0, I))`` with
  oyster's weight 0.1 (:func:`kl_to_standard_normal`); the actor sees ``z`` detached;
- oyster's other defaults: learning rate 3e-4 for all networks, batch 256, γ = 0.99, τ = 0.005, 2000 steps
  before the first update, and its ``reward_scale = 5`` with entropy weight 1, which is the same objective as
  reward scale 1 with a fixed entropy coefficient ``ent_coef = 0.2``.

The SAC update is SB3's own, unchanged: the posterior lives in the features extractors
(:class:`LatentFeaturesExtractor`) that turn a history into ``[o_t, z]`` for the actor and the critics. One
encoder, owned by the policy, is used by all three; it is in the critic's optimizer alone. Within a
gradient step each batch of histories (``o`` and ``o'``) is encoded once and the actor, the critic and the
target critic see the same draw of ``z``, as oyster's one ``task_z`` per step (:class:`SharedPosterior`);
the critic's loss is the one use that reaches the encoder, the actor's and the target's see ``z`` detached.
The KL term joins the critic loss as its gradient: SB3's ``SAC.train`` forms the critic loss itself, so the
critic's ``z`` passes through an identity whose backward adds ``∂(kl_weight · KL)/∂μ`` and
``∂(kl_weight · KL)/∂σ²`` (:class:`_AddKLGradient`).

**Decision: how the context is gathered** (the one place where oyster cannot be followed). Oyster keeps one
replay buffer per task and draws a context of 64 transitions from the current task's buffer, because its
tasks change only between episodes and it knows which task each episode ran. Here the task switches inside
an episode every 15 s and the agent is never told when. So the context of a step is **the sliding window of
the last ``L`` transitions the history carries** (:class:`~m3po_sb3.history.HistoryObservation`, ``L = 10``
as for M3PO and history-SAC), at test time and in training alike: a replay row's context is exactly the
context the agent had when it acted, so the encoder and critics are trained on the context distribution
they meet at test time, windows that straddle a task switch included (for the ``L − 1`` steps after a
switch the window still holds transitions of the old task, and the critic learns what they are worth).
``info["task"]`` and ``info["task_switched"]`` are not used: a training context cleaned by them would be a
context the agent never sees when it acts. Further consequences:

- at an episode start the window is empty and the posterior is the prior ``N(0, I)`` (oyster's
  ``clear_z``); padded history slots contribute no factor;
- each replay row has its own posterior (oyster: one per task of the meta-batch of 16 tasks), so the KL
  term is averaged over the rows like the critic loss; the target critic conditions on a draw from the
  posterior of the next history, which holds the row's own transition (oyster reuses the task's ``z``);
- when acting (SB3's ``predict``, rollouts and evaluation, where the policy is in eval mode) ``z`` is the
  posterior **mean**: re-sampling a sliding window's posterior at every step would not be oyster's
  per-episode posterior sampling but step-wise noise; exploration is SAC's stochastic policy. A
  deterministic ``predict`` is therefore a function of the history alone;
- one env (like M3PO), and oyster's context of 64 transitions becomes ``L``: every replay row stores its
  history, so a long window multiplies the buffer's memory.

Not carried over: oyster's V-network (SB3's SAC uses target critics), its small actor-mean and log-std
penalties (1e-3), and its split of data into encoder-only and policy-only collection phases.
"""

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, create_mlp
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from stable_baselines3.sac.policies import Actor, ContinuousCritic, SACPolicy

from m3po_sb3.history.layout import HistoryLayout
from m3po_sb3.agents.common import check_conditions, check_finite_losses, check_integers, history_env

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


@dataclass
class EncodedBatch:
    """
    A batch of histories with its posterior and draw of ``z``.

    :param histories: the batch (the very tensor that was encoded)
    :param version: the tensor's version counter then (a changed tensor is a new batch)
    :param mean: posterior means
    :param variance: posterior variances
    :param z: the draw (the mean outside training)
    :param trainable: whether ``z`` carries a graph to the encoder that no critic has used yet
    """

    histories: th.Tensor
    version: int
    mean: th.Tensor
    variance: th.Tensor
    z: th.Tensor
    trainable: bool


class SharedPosterior:
    """
    The policy's context encoder, with a memory of the last batches it encoded in training mode, shared by
    the actor's and the critics' features extractors. Within one gradient step SB3's ``SAC.train`` hands the
    same tensors of histories ``o`` and ``o'`` to the actor, the critic and the target critic: each batch is
    encoded once and all of them see the same draw of ``z`` (as in oyster, where one ``task_z`` per step
    serves the policy, the Q-functions and the target). The first critic to use a batch encoded with
    gradient trains the encoder through it; every other use is detached. Not a module: the encoder's
    parameters belong to the policy.

    :param encoder: the context encoder
    :param capacity: batches remembered (``o`` and ``o'`` of one gradient step)
    """

    def __init__(self, encoder: ContextEncoder, capacity: int = 2):
        self.encoder = encoder
        self.capacity = capacity
        self._batches: list[EncodedBatch] = []

    def encode(self, histories: th.Tensor, sample: bool, remember: bool) -> EncodedBatch:
        """
        :param histories: flat histories, shape ``(..., size)``
        :param sample: draw ``z`` by reparameterisation (otherwise ``z`` is the posterior mean)
        :param remember: keep the result for the next uses of the same tensor
        :return: the remembered batch of this very tensor, or a new one (with gradient where it is enabled)
        """
        for batch in self._batches:
            if batch.histories is histories and batch.version == histories._version:
                return batch
        mean, variance = self.encoder(histories)
        z = mean + variance.sqrt() * th.randn_like(mean) if sample else mean
        batch = EncodedBatch(histories, histories._version, mean, variance, z, trainable=z.requires_grad)
        if remember:
            self._batches = [*self._batches[1 - self.capacity :], batch]
        return batch

    def __getstate__(self) -> dict[str, Any]:
        # Copies and pickles never carry the remembered batches (tensors with graphs).
        return {**self.__dict__, "_batches": []}


class LatentFeaturesExtractor(BaseFeaturesExtractor):
    """
    ``history ↦ [o_t, z]`` with ``z`` from the posterior of the history's window (:class:`SharedPosterior`):
    drawn by reparameterisation in training mode, the posterior mean in eval mode.

    The encoder is not a submodule: the policy owns it, so that the actor's optimizer and the target
    critic's Polyak update (which act on their networks' parameters) never touch it.

    :param observation_space: the flat history space
    :param posterior: the policy's shared posterior
    :param trains_encoder: whether this extractor trains the encoder (the critic's); the others always
        see ``z`` detached (the actor's, the target critic's)
    :param kl_weight: weight of the KL term added to the encoder's gradient (with ``trains_encoder``)
    """

    def __init__(self, observation_space: spaces.Box, posterior: SharedPosterior, trains_encoder: bool, kl_weight: float):
        layout = posterior.encoder.history_layout
        if observation_space.shape != (layout.size,):
            raise ValueError(f"observation space shape {observation_space.shape} does not match the history layout ({layout.size},)")
        super().__init__(observation_space, layout.obs_dim + posterior.encoder.latent_dim)
        self.posterior = posterior
        self.trains_encoder = trains_encoder
        self.kl_weight = kl_weight
        # Detached statistics of the last posterior the critic's extractor trained on, for the logger.
        self.last_kl = th.zeros(())
        self.last_posterior_std = th.zeros(())

    def forward(self, observations: th.Tensor) -> th.Tensor:
        batch = self.posterior.encode(observations, sample=self.training, remember=self.training)
        if self.trains_encoder and batch.trainable:
            batch.trainable = False
            z = self._with_kl_gradient(batch)
        else:
            z = batch.z.detach()
        return th.cat([observations[..., : self.posterior.encoder.history_layout.obs_dim], z], dim=-1)

    def _with_kl_gradient(self, batch: EncodedBatch) -> th.Tensor:
        """:return: ``z``, whose backward also adds the gradient of ``kl_weight · mean_rows KL``"""
        mean, variance = batch.mean, batch.variance
        self.last_kl = kl_to_standard_normal(mean.detach(), variance.detach()).mean()
        self.last_posterior_std = variance.detach().sqrt().mean()
        rows = mean.numel() // self.posterior.encoder.latent_dim
        return _AddKLGradient.apply(batch.z, mean, variance, self.kl_weight / rows)


class _AddKLGradient(th.autograd.Function):
    """
    Identity on ``z`` whose backward also adds the gradient of ``scale · Σ_rows KL(N(μ, σ²) ‖ N(0, I))`` to
    ``μ`` and ``σ²``: ``∂KL/∂μ = μ`` and ``∂KL/∂σ² = ½ (1 − 1/σ²)``. Written by hand because the loss it
    joins is formed inside SB3's ``SAC.train``; every backward through ``z`` gets the term exactly once.
    """

    @staticmethod
    def forward(ctx: Any, z: th.Tensor, mean: th.Tensor, variance: th.Tensor, scale: float) -> th.Tensor:
        ctx.save_for_backward(mean, variance)
        ctx.scale = scale
        return z.view_as(z)

    @staticmethod
    def backward(ctx: Any, grad_z: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor, None]:
        mean, variance = ctx.saved_tensors
        return grad_z, ctx.scale * mean, ctx.scale * 0.5 * (1.0 - 1.0 / variance), None


class PEARLPolicy(SACPolicy):
    """
    SAC policy whose actor and critics see ``[o_t, z]`` (:class:`LatentFeaturesExtractor`), ``z`` from the
    posterior of one :class:`ContextEncoder` that the critic's optimizer trains.

    :param observation_space: the flat history space
    :param action_space: Box action space
    :param lr_schedule: learning rate schedule (actor, critics and encoder)
    :param history_layout: layout of the histories
    :param latent_dim: dimension of ``z`` (oyster: 5)
    :param encoder_net_arch: hidden layers of the context encoder (oyster: 3 × 200)
    :param kl_weight: weight of ``KL(q(z | c) ‖ N(0, I))`` in the encoder's loss (oyster: 0.1)
    :param net_arch: hidden layers of the actor and critics (oyster: 3 × 300)
    :param activation_fn: activation of all networks (oyster: ReLU)
    :param kwargs: further :class:`~stable_baselines3.sac.policies.SACPolicy` arguments
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        history_layout: HistoryLayout,
        latent_dim: int = 5,
        encoder_net_arch: tuple[int, ...] = (200, 200, 200),
        kl_weight: float = 0.1,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[th.nn.Module] = th.nn.ReLU,
        **kwargs: Any,
    ):
        if kwargs.get("share_features_extractor"):
            raise ValueError("PEARLPolicy: the actor and critics always share the context encoder; leave share_features_extractor unset")
        # Plain attributes may be set before nn.Module.__init__; ``_build`` (called by SACPolicy) needs them.
        self.history_layout = history_layout
        self.latent_dim = latent_dim
        self.encoder_net_arch = tuple(encoder_net_arch)
        self.kl_weight = kl_weight
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=[300, 300, 300] if net_arch is None else net_arch,
            activation_fn=activation_fn,
            **kwargs,
        )

    def _build(self, lr_schedule: Schedule) -> None:
        self.context_encoder = ContextEncoder(self.history_layout, self.latent_dim, self.encoder_net_arch, self.activation_fn)
        self.shared_posterior = SharedPosterior(self.context_encoder)
        super()._build(lr_schedule)
        # The encoder learns from the critic loss (and the KL term), not from the actor's (oyster's sac.py).
        self.critic.optimizer.add_param_group({"params": list(self.context_encoder.parameters())})

    def _latent_features(self, trains_encoder: bool) -> LatentFeaturesExtractor:
        return LatentFeaturesExtractor(self.observation_space, self.shared_posterior, trains_encoder, self.kl_weight)  # type: ignore[arg-type]

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> Actor:
        return super().make_actor(self._latent_features(trains_encoder=False))

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> ContinuousCritic:
        # SACPolicy._build makes the critic first, then the target critic; only the critic trains the encoder.
        return super().make_critic(self._latent_features(trains_encoder=not hasattr(self, "critic")))

    def posterior(self, histories: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """
        :param histories: flat histories, shape ``(..., size)``
        :return: mean and variance of ``q(z | c)`` of each history's window
        """
        return self.context_encoder(histories)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            history_layout=self.history_layout,
            latent_dim=self.latent_dim,
            encoder_net_arch=self.encoder_net_arch,
            kl_weight=self.kl_weight,
        )
        return data


class PEARL(SAC):
    """
    PEARL (Rakelly et al., ICML 2019) on history observations: SAC conditioned on a latent task variable
    inferred from the last ``L`` transitions (see the module docstring for what follows oyster and what
    cannot). Defaults are oyster's (``configs/default.py``).

    :param policy: ``"MlpPolicy"`` (:class:`PEARLPolicy`) or a subclass of it
    :param env: an env whose observations are histories (:class:`~m3po_sb3.history.HistoryObservation`), or
        an env id, which is made and wrapped; one env only
    :param learning_rate: learning rate of the actor, the critics, the encoder and the entropy coefficient
    :param buffer_size: replay buffer size (oyster: 10⁶)
    :param learning_starts: steps of uniformly random actions before the first update (oyster's 2000
        initial steps)
    :param batch_size: minibatch size (oyster: 256)
    :param tau: soft update coefficient of the target critics
    :param gamma: discount factor
    :param train_freq: env steps between two rounds of updates
    :param gradient_steps: updates per round
    :param latent_dim: dimension of ``z``
    :param kl_weight: weight of the KL term in the encoder's loss
    :param encoder_net_arch: hidden layers of the context encoder
    :param history_length: ``L``, the context window, when ``env`` is an id; for a given env, if set, it must
        match the env's
    :param ent_coef: entropy coefficient; 0.2 is oyster's reward scale 5 (``"auto"`` learns it)
    :param target_update_interval: gradient steps between target critic updates
    :param target_entropy: target entropy when learning ``ent_coef``
    :param stats_window_size: episodes averaged for the rollout logs
    :param tensorboard_log: TensorBoard folder (``None``: none)
    :param policy_kwargs: further :class:`PEARLPolicy` arguments (``net_arch``, ...)
    :param verbose: verbosity level
    :param seed: seed of all random generators
    :param device: torch device
    :param _init_setup_model: build the networks and buffers now
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": PEARLPolicy}
    policy: PEARLPolicy

    def __init__(
        self,
        policy: str | type[PEARLPolicy],
        env: GymEnv | str | None,
        learning_rate: float | Schedule = 3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 2000,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int = 1,
        gradient_steps: int = 1,
        latent_dim: int = 5,
        kl_weight: float = 0.1,
        encoder_net_arch: tuple[int, ...] = (200, 200, 200),
        history_length: int | None = None,
        ent_coef: str | float = 0.2,
        target_update_interval: int = 1,
        target_entropy: str | float = "auto",
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        self.history_layout: HistoryLayout | None = None
        self.latent_dim = latent_dim
        self.kl_weight = kl_weight
        self.encoder_net_arch = tuple(encoder_net_arch)
        if env is not None:  # None when ``load`` rebuilds the agent; the layout then comes from the file
            env, self.history_layout = history_env(env, history_length, verbose, algo="PEARL")
            policy_kwargs = self._policy_kwargs(policy_kwargs)
        super().__init__(
            policy,
            env,  # type: ignore[arg-type]
            learning_rate=learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            ent_coef=ent_coef,
            target_update_interval=target_update_interval,
            target_entropy=target_entropy,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        self._validate_hyperparameters()
        if _init_setup_model:
            self._setup_model()

    def _policy_kwargs(self, policy_kwargs: dict[str, Any] | None) -> dict[str, Any]:
        """The user's policy arguments with the history layout and the encoder's hyper-parameters."""
        policy_kwargs = {} if policy_kwargs is None else dict(policy_kwargs)
        ours = dict(
            history_layout=self.history_layout, latent_dim=self.latent_dim, kl_weight=self.kl_weight, encoder_net_arch=self.encoder_net_arch
        )
        clash = sorted(set(ours) & set(policy_kwargs))
        if clash:
            raise ValueError(f"PEARL: pass {', '.join(clash)} to PEARL itself, not in policy_kwargs")
        return {**policy_kwargs, **ours}

    def _validate_hyperparameters(self) -> None:
        integers = dict(
            latent_dim=self.latent_dim,
            gradient_steps=self.gradient_steps,
            batch_size=self.batch_size,
            buffer_size=self.buffer_size,
            learning_starts=self.learning_starts,
        )
        check_integers("PEARL", integers)
        checks = [
            (self.latent_dim >= 1, f"latent_dim must be >= 1, got {self.latent_dim}"),
            (
                isinstance(self.kl_weight, (int, float)) and np.isfinite(self.kl_weight) and self.kl_weight >= 0,
                f"kl_weight must be a finite number >= 0, got {self.kl_weight!r}",
            ),
            (
                len(self.encoder_net_arch) > 0 and all(isinstance(n, (int, np.integer)) and n >= 1 for n in self.encoder_net_arch),
                f"encoder_net_arch must be a non-empty sequence of positive integers, got {self.encoder_net_arch}",
            ),
            (self.gradient_steps >= 1, f"gradient_steps must be >= 1, got {self.gradient_steps}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.buffer_size >= 1, f"buffer_size must be >= 1, got {self.buffer_size}"),
            (self.learning_starts >= 0, f"learning_starts must be >= 0, got {self.learning_starts}"),
        ]
        if self.env is not None:
            checks.append((self.n_envs == 1, f"PEARL trains on one env (like M3PO), got {self.n_envs}"))
        check_conditions("PEARL", checks)

    @property
    def context_encoder(self) -> ContextEncoder:
        """The context encoder (saved and loaded with the policy)."""
        return self.policy.context_encoder

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """SB3's SAC updates (the encoder learns with the critics), then the posterior's statistics are logged."""
        super().train(gradient_steps, batch_size)
        critic_features = self.critic.features_extractor
        assert isinstance(critic_features, LatentFeaturesExtractor)
        self.logger.record("train/kl_divergence", critic_features.last_kl.item())
        self.logger.record("train/posterior_std", critic_features.last_posterior_std.item())
        check_finite_losses(self, "PEARL", ("train/actor_loss", "train/critic_loss", "train/kl_divergence"))
