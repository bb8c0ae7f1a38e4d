"""PEARL (Rakelly et al., ICML 2019), the paper's model-free meta-RL baseline, as a stable-baselines3 ``SAC`` subclass.

What PEARL is here, as in the authors' code (katerakelly/oyster):

- a **context encoder** (an MLP of 3 × 200 ReLU units) maps each transition ``(o, a, r, o')`` to a Gaussian
  factor ``N(μ_k, σ²_k)`` over a latent task variable ``z`` (5 dimensions; ``σ²_k`` through a softplus);
- the **posterior** ``q(z | c)`` is the product of the factors of the context ``c`` (:func:`~m3po_sb3.models.context.gaussian_product`);
- in the updates ``z`` is drawn from it by **reparameterisation**, and the actor and the twin critics
  (3 × 300 ReLU units each) see ``(o, z)``;
- the encoder is trained **through the critic loss only**, plus ``kl_weight · KL(q(z | c) ‖ N(0, I))``
  averaged over the rows (:func:`kl_to_standard_normal`), at oyster's pressure relative to the critic loss
  (``kl_weight = 0.032``, derived below); the actor sees ``z`` detached;
- **exploration by posterior sampling**: the rollouts act on a sample of the posterior that stays one sample
  along the episode (below);
- oyster's other defaults: learning rate 3e-4 for all networks, γ = 0.99, τ = 0.005, 2000 steps before the
  first update, and its ``reward_scale = 5`` with entropy weight 1, which is the same objective as reward
  scale 1 with a fixed entropy coefficient ``ent_coef = 0.2`` (divide its Bellman equations by 5: its Q and V
  are 5 times those of reward scale 1 with ``ent_coef = 0.2``, and its policy loss is 5 times that one's).

The SAC update is SB3's own, unchanged: the posterior lives in the features extractors
(:class:`LatentFeaturesExtractor`) that turn a history into ``[o_t, z]`` for the actor and the critics. One
encoder, owned by the policy, is used by all three; it is in the critic's optimizer alone. Within a
gradient step each batch of histories (``o`` and ``o'``) is encoded once and the actor, the critic and the
target critic see the same draw of ``z``, as oyster's one ``task_z`` per step (:class:`SharedPosterior`);
the critic's loss is the one use that reaches the encoder, the actor's and the target's see ``z`` detached.
The KL term joins the critic loss as its gradient: SB3's ``SAC.train`` forms the critic loss itself, so the
critic's ``z`` passes through an identity whose backward adds ``∂(kl_weight · mean_rows KL)/∂μ`` and
``∂(kl_weight · mean_rows KL)/∂σ²`` (:class:`_AddKLGradient`).

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
- each replay row has its own posterior (oyster: one per task of the meta-batch); the target critic
  conditions on a draw from the posterior of the next history, which holds the row's own transition (oyster
  reuses the task's ``z``);
- one env (like M3PO), and oyster's context of 64 transitions becomes ``L``: every replay row stores its
  history, so a long window multiplies the buffer's memory.

**Decision: the KL weight.** Oyster (``rlkit/torch/sac/sac.py``, ``PEARLSoftActorCritic._take_step``) steps
the encoder on ``kl_lambda · Σ_t KL(q(z | c_t) ‖ N(0, I)) + qf_loss``: ``PEARLAgent.compute_kl_div``
(``agent.py``) sums the KL over the ``T = meta_batch`` tasks of the step, while ``qf_loss = mean (Q₁ − y)² +
mean (Q₂ − y)²`` averages over their rows, with ``y = 5 r + γ (1 − d) V̄(o')``. Its Q-values are 5 times
ours (above), so its ``qf_loss`` is 5² · 2 = 50 times SB3's critic loss ``½ Σ_i mean (Q_i − y)²``. Divided by
50 (Adam's steps do not change when a loss is multiplied by a constant), oyster's encoder loss reads
``critic loss + (kl_lambda · T / 50) · mean_t KL_t``, and a row's posterior here stands for a task's there,
so the mean over the tasks becomes the mean over the rows::

    kl_weight = kl_lambda · meta_batch / (2 · reward_scale²) = 0.1 · 16 / (2 · 5²) = 0.032

with ``configs/default.py``'s values (:func:`oyster_kl_weight` converts others: oyster's per-env configs
with ``meta_batch`` 4 or 10 give 0.008 or 0.02). The ratio is per posterior, so it holds at any batch size.
``kl_weight`` stays the weight in the loss this agent optimises, as ``ent_coef`` stands for oyster's reward
scale: an SB3 user reads a coefficient as one of the agent's own loss, and ``meta_batch`` and
``reward_scale`` have no meaning here (there is no meta-batch, and the reward is not scaled).

**Decision: rows per gradient step.** Oyster's RL batch is ``batch_size = 256`` rows from each of the
``meta_batch = 16`` tasks, 4096 rows per gradient step. Here rows do not come in tasks, and the analogue is a
batch of 4096 rows, ``batch_size=4096``. The default stays 256 for its cost: every row encodes the ``L``
transitions of both its histories, so an update costs about the number of rows (on one CPU thread, on
``HalfCheetahFwdBwd-v0`` with ``L = 10`` and oyster's networks, 87 ms per update at 256 rows and 1.45 s at
4096, 16.6 times; a ratio from one interleaved measurement taken while other jobs ran, not a committed
benchmark), and at one update per env step a run of 10⁶ steps would spend about 17 days in its
updates instead of one. Whether the smaller batch changes what PEARL learns here is not measured.

**Decision: exploration.** Oyster acts on one draw ``z`` of the posterior for a whole trajectory
(``PEARLAgent.sample_z`` after ``clear_z`` or ``infer_posterior``; ``InPlacePathSampler.obtain_samples``
draws again after each trajectory, ``update_post_train = 1``), with stochastic actions; its posterior changes
only between trajectories. Here the window's posterior changes at every step, so a ``z`` fixed for the
episode would keep the first step's (the prior's) and a fresh draw at every step would be step-wise noise.
The rollouts (SB3's ``_sample_action``) draw a standard-normal ``ε`` once per episode and act on
``z = μ + σ ⊙ ε`` of the current window's posterior: at every step a sample of that posterior, and one sample
along the episode (the same quantile of each posterior, so ``z`` moves only as the posterior moves, and
settles on the mean as the window becomes certain). ``ε`` is drawn anew where an episode starts (SB3's
``_last_episode_starts``: at a reset in ``learn``, and after a ``done``); it is runtime state, not saved.
Everywhere else (``predict``, evaluation, the policy in eval mode) ``z`` is the posterior **mean**, so a
deterministic ``predict`` is a function of the history alone.

Not carried over: oyster's V-network (SB3's SAC uses target critics), its small actor-mean and log-std
penalties (1e-3), its split of data into encoder-only and policy-only collection phases, and its evaluation
with a sampled ``z`` (``collect_paths``: the first trajectory on a draw from the prior, then draws from the
posterior of the trajectories so far, with deterministic actions). That sampling explores across the
trajectories of one task; here an evaluation is one episode whose task switches unannounced, adapted to
within the episode by the window, and every agent of this package is evaluated by its deterministic
``predict``.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from stable_baselines3.sac.policies import Actor, ContinuousCritic, SACPolicy

from m3po_sb3.agents.common import check_conditions, check_finite_losses, check_integers, history_env
from m3po_sb3.history.layout import HistoryLayout
from m3po_sb3.models.context import ContextEncoder, kl_to_standard_normal


def oyster_kl_weight(kl_lambda: float = 0.1, meta_batch: int = 16, reward_scale: float = 5.0) -> float:
    """
    The ``kl_weight`` that puts oyster's KL pressure on the encoder, relative to the critic loss (module
    docstring): oyster sums ``kl_lambda · KL`` over the ``meta_batch`` tasks of a step against a critic loss
    at ``reward_scale``, 2 · ``reward_scale²`` times SB3's at reward scale 1. Defaults: ``configs/default.py``.
    Use it with ``ent_coef = 1 / reward_scale``.

    :param kl_lambda: oyster's ``kl_lambda``
    :param meta_batch: oyster's ``meta_batch``
    :param reward_scale: oyster's ``reward_scale``
    :return: ``kl_lambda · meta_batch / (2 · reward_scale²)``
    """
    if not (kl_lambda >= 0 and meta_batch >= 1 and reward_scale > 0):
        raise ValueError(f"need kl_lambda >= 0, meta_batch >= 1 and reward_scale > 0, got {kl_lambda}, {meta_batch}, {reward_scale}")
    return kl_lambda * meta_batch / (2.0 * reward_scale**2)


OYSTER_KL_WEIGHT = oyster_kl_weight()  # 0.032


@dataclass
class EncodedBatch:
    """
    A batch of histories with its posterior and draw of ``z``.

    :param histories: the batch (the very tensor that was encoded)
    :param version: the tensor's version counter then (a changed tensor is a new batch)
    :param mean: posterior means
    :param variance: posterior variances
    :param z: the draw (outside training: the mean, or the rollout's sample :attr:`SharedPosterior.noise`)
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
        # Standard-normal noise of the rollouts' posterior sampling (PEARLPolicy.posterior_noise sets it while
        # the rollout acts): ``z = μ + σ ⊙ noise`` instead of the mean where ``z`` is not drawn afresh.
        self.noise: th.Tensor | None = None

    def encode(self, histories: th.Tensor, sample: bool, remember: bool) -> EncodedBatch:
        """
        :param histories: flat histories, shape ``(..., size)``
        :param sample: draw ``z`` by reparameterisation with fresh noise (otherwise with :attr:`noise`, or
            ``z`` is the posterior mean where that is ``None``)
        :param remember: keep the result for the next uses of the same tensor
        :return: the remembered batch of this very tensor, or a new one (with gradient where it is enabled)
        """
        for batch in self._batches:
            if batch.histories is histories and batch.version == histories._version:
                return batch
        mean, variance = self.encoder(histories)
        noise = th.randn_like(mean) if sample else self.noise
        z = mean if noise is None else mean + variance.sqrt() * noise
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
    drawn by reparameterisation in training mode, the posterior mean in eval mode (in a rollout, the sample
    of :meth:`PEARLPolicy.posterior_noise`).

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
    :param kl_weight: weight of ``KL(q(z | c) ‖ N(0, I))``, averaged over the rows, in the encoder's loss
        beside the critic loss (oyster's pressure: :data:`OYSTER_KL_WEIGHT`, see the module docstring)
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
        kl_weight: float = OYSTER_KL_WEIGHT,
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

    @contextmanager
    def posterior_noise(self, noise: th.Tensor) -> Iterator[None]:
        """
        Within the block, eval-mode forward passes act on ``z = μ + σ ⊙ noise`` of each history's posterior
        instead of its mean (PEARL's rollouts, with one ``noise`` per episode); training-mode passes still draw
        their own.

        :param noise: standard-normal noise, shape ``(n_histories, latent_dim)``
        """
        if noise.ndim != 2 or noise.shape[1] != self.latent_dim:
            raise ValueError(f"posterior noise must have shape (n_histories, {self.latent_dim}), got {tuple(noise.shape)}")
        self.shared_posterior.noise = noise
        try:
            yield
        finally:
            self.shared_posterior.noise = None

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
    cannot). Defaults are oyster's (``configs/default.py``), in this formulation; the batch is smaller.
    The rollouts explore by posterior sampling: one standard-normal ``ε`` per episode, ``z = μ + σ ⊙ ε`` of
    the current window's posterior; ``predict`` and evaluation act on the posterior mean.

    :param policy: ``"MlpPolicy"`` (:class:`PEARLPolicy`) or a subclass of it
    :param env: an env whose observations are histories (:class:`~m3po_sb3.history.HistoryObservation`), or
        an env id, which is made and wrapped; one env only
    :param learning_rate: learning rate of the actor, the critics, the encoder and the entropy coefficient
    :param buffer_size: replay buffer size (oyster: 10⁶)
    :param learning_starts: steps of uniformly random actions before the first update (oyster's 2000
        initial steps)
    :param batch_size: rows per gradient step. Oyster's are 256 from each of 16 tasks, 4096 (pass
        ``batch_size=4096``); 256 by default, for the cost of an update (module docstring)
    :param tau: soft update coefficient of the target critics
    :param gamma: discount factor
    :param train_freq: env steps between two rounds of updates
    :param gradient_steps: updates per round
    :param latent_dim: dimension of ``z``
    :param kl_weight: weight of the KL term, averaged over the rows, in the encoder's loss beside SB3's critic
        loss. The default, :data:`OYSTER_KL_WEIGHT` = 0.032, is oyster's ``kl_lambda = 0.1`` over its 16 tasks
        against its critic loss at reward scale 5; :func:`oyster_kl_weight` converts other settings of oyster
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
        kl_weight: float = OYSTER_KL_WEIGHT,
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
        # The rollouts' standard-normal noise of each env's episode (runtime state, not saved; drawn at need).
        self._episode_noise: th.Tensor | None = None
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

    def _excluded_save_params(self) -> list[str]:
        """:return: SAC's, and the rollouts' noise (runtime state: a loaded agent draws its own)"""
        return [*super()._excluded_save_params(), "_episode_noise"]

    def _sample_action(self, learning_starts: int, action_noise: ActionNoise | None = None, n_envs: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """
        SB3's rollout action, acting on ``z = μ + σ ⊙ ε`` of the window's posterior, with ``ε`` drawn anew
        where an episode starts and kept along it (oyster's one posterior sample per trajectory).

        :param learning_starts: steps of uniformly random actions
        :param action_noise: added action noise (SB3's)
        :param n_envs: number of envs
        :return: the action for the env and the scaled action for the replay buffer
        """
        starts = th.as_tensor(self._last_episode_starts, device=self.device)
        if self._episode_noise is None or bool(starts.any()):
            fresh = th.randn(n_envs, self.latent_dim, device=self.device)
            self._episode_noise = fresh if self._episode_noise is None else th.where(starts[:, None], fresh, self._episode_noise)
        with self.policy.posterior_noise(self._episode_noise):
            return super()._sample_action(learning_starts, action_noise, n_envs)

    def _store_transition(
        self,
        replay_buffer: ReplayBuffer,
        buffer_action: np.ndarray,
        new_obs: np.ndarray | dict[str, np.ndarray],
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """
        SB3's, then the envs that are done are marked as starting an episode at the next action (the VecEnv
        has reset them) in ``_last_episode_starts``, as SB3's on-policy algorithms keep it (``_setup_learn``
        marks all at a reset).

        :param replay_buffer: the replay buffer
        :param buffer_action: the scaled action
        :param new_obs: the next observation (of the next episode where done)
        :param reward: the rewards
        :param dones: which envs ended their episode
        :param infos: the envs' infos
        """
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)
        self._last_episode_starts = dones

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
