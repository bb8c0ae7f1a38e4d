"""M3PO (Hiraoka et al., ACML 2021) as a stable-baselines3 ``SAC`` subclass, and its variants M2PO and M3PO-h.

Algorithm 2 of the paper and where each line lives::

    for epoch in 1..N:                                  # every E = epoch_length env steps
        train meta-model p_θ on D_env                   # ModelRolloutCallback -> M3PO.train_dynamics
        for each of E env steps:
            act with π_φ(a | h), store it in D_env      # SAC.collect_rollouts -> M3PO._store_transition
            M branched rollouts of k steps -> D_model   # ModelRolloutCallback -> M3PO.rollout_dynamics
            G SAC updates on D_model                    # M3PO.train (M3PO-h: on β·D_model + (1−β)·D_env)

``D_model`` is SAC's own ``replay_buffer``; ``D_env`` is ``env_buffer``. The model side runs in
:class:`ModelRolloutCallback` at ``on_rollout_end``, i.e. after SB3 stored the step's real transition and
right before it calls ``train``.
"""

import io
import pathlib
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback, ConvertCallback
from stable_baselines3.common.save_util import load_from_pkl, load_from_zip_file, save_to_pkl
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.sac.policies import SACPolicy

from m3po_sb3.agents.buffers import HistoryReplayBuffer, HybridReplayBuffer, ModelReplayBuffer
from m3po_sb3.agents.common import check_conditions, check_finite_losses, check_integers, env_functions, history_env
from m3po_sb3.agents.history_sac import HistorySAC
from m3po_sb3.history.encoder import history_policy_kwargs
from m3po_sb3.history.layout import HistoryLayout
from m3po_sb3.models.networks import MBPO_MODEL_KWARGS, DynamicsModel, MetaDynamicsModel
from m3po_sb3.models.training import MBPO_FIT_KWARGS, ModelTrainer
from m3po_sb3.models.rollouts import ActionRewardFn, RolloutBatch, TerminationFn, branched_rollouts, known_action_rewards

SelfM3PO = TypeVar("SelfM3PO", bound="M3PO")

ENV_BUFFER_FILE = "env_buffer.pkl"  # D_env in a checkpoint folder
MBPO_EPOCH_LENGTH = 1000  # env steps of MBPO's epoch, whose rollouts its D_model keeps

def hybrid_beta(epoch: float, start: float, end: float) -> float:
    """
    M3PO-h's mixture ratio (Table 3): 1 until epoch ``start``, then linearly down to 0 at epoch ``end``.
    The seed prints ``min(max(·, 1), 0)``, which is always 0; the intent is this clip to ``[0, 1]``.

    :param epoch: the epoch ``e``
    :param start: ``a``, the last epoch with ``β = 1``
    :param end: ``b``, the first epoch with ``β = 0``
    :return: ``clip(1 − (e − a) / (b − a), 0, 1)``
    """
    return float(np.clip(1.0 - (epoch - start) / (end - start), 0.0, 1.0))


class ModelRolloutCallback(BaseCallback):
    """
    The model side of Algorithm 2, run after each real step is stored in ``D_env`` and before SAC's ``G``
    updates: from ``learning_starts`` on, the model is trained on ``D_env`` every ``epoch_length`` steps, and
    every ``rollout_every`` steps ``rollouts_per_step * rollout_every`` branched rollouts fill ``D_model``
    (MBPO batches the rollouts of many steps; ``rollout_every = 1`` is the paper's M per step). The schedule
    is a function of ``num_timesteps`` alone, so a loaded agent resumes it.
    """

    model: "M3PO"

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        algo = self.model
        steps = algo.num_timesteps - algo.learning_starts
        if steps < 0:
            return
        if steps % algo.epoch_length == 0:
            algo.train_dynamics()
        # An empty D_model (a loaded agent's, whose buffers were not saved) is filled before SAC samples it.
        if steps % algo.rollout_every == 0 or algo.replay_buffer.size() == 0:  # type: ignore[union-attr]
            algo.rollout_dynamics(algo.rollouts_per_step * algo.rollout_every)


class M3PO(HistorySAC):
    """
    Meta-Model-Based Meta-Policy Optimization (Hiraoka et al., ACML 2021): SAC whose history-conditioned
    meta-policy learns from short branched rollouts of a history-conditioned meta-model trained on real data.
    Variants: :class:`M2PO` (non-adaptive model) and M3PO-h (``hybrid_schedule=(a, b)``: SAC samples
    ``β·D_model + (1−β)·D_env`` with β going from 1 to 0 between epochs ``a`` and ``b``).

    :param policy: SAC policy (``"MlpPolicy"``: history features from ``policy_kwargs``)
    :param env: an env whose observations are histories (:class:`HistoryObservation`), or an env id, which is
        made and wrapped; one env only (the epoch schedule counts single env steps)
    :param learning_rate: learning rate of the actor, critics and entropy coefficient
    :param buffer_size: size of ``D_model``; default one epoch of rollouts, ``M · E · k`` (MBPO's retention)
    :param env_buffer_size: size of ``D_env``, the real transitions (default ``N · E`` of Table 2)
    :param learning_starts: real steps of uniformly random actions before the model is first trained (and
        rolled out); SAC's updates start one step later. Default: one epoch, ``E``
    :param batch_size: SAC minibatch size
    :param tau: soft update coefficient of the target critics
    :param gamma: discount factor
    :param gradient_steps: ``G``, SAC updates per env step
    :param epoch_length: ``E``, env steps between two model trainings
    :param rollouts_per_step: ``M``, branched rollouts per env step
    :param rollout_length: ``k``, steps of each branched rollout
    :param rollout_every: make the rollouts of this many env steps at once (``M · rollout_every`` rows)
    :param ensemble_size: ``B``, members of the model ensemble
    :param model_kwargs: further arguments of the model class (``hidden_units``, ``learning_rate``, ...)
    :param model_fit_kwargs: arguments of the model's ``fit`` (``holdout_ratio``, ``max_epochs``, ...)
    :param hybrid_schedule: M3PO-h's ``(a, b)`` of Table 3 (epochs count ``E`` real steps each, from 0);
        ``None``: plain M3PO (β = 1)
    :param real_ratio: MBPO's share of real transitions (from ``D_env``) in every SAC minibatch, i.e. β is at
        most ``1 − real_ratio``. ``0``: the paper's M3PO, whose policy learns from ``D_model`` only; MBPO uses
        0.05. Why: with ``k = 1`` the next histories SAC bootstraps from are fictitious ones that are never
        themselves a training input, so nothing ties the critic's level to real returns (benchmarks/README.md)
    :param known_action_reward: take the env's task-independent reward term of the action (its
        ``action_reward_fn``, the control cost of the six envs but the crippled Ant) as known: the model
        learns the rest of the reward, and fictitious rewards add the term back. ``False``: the model learns
        the whole reward, as in the paper and MBPO (a deviation when ``True``, as mbrl-lib's
        ``learned_rewards=False``, but for one term). Why: on fwd-bwd the learned reward misses most of the
        control cost, which is small next to the reward's task-dependent part (benchmarks/README.md)
    :param history_length: ``L`` when ``env`` is an id; for a given env, if set, it must match the env's
    :param actor_loss_before_critic_step: SAC's update order (:class:`~m3po_sb3.HistorySAC`): ``False``, SB3's
        (the actor's loss on the stepped critic); ``True``, the actor's loss on the critic before its step, as
        softlearning's SAC (MBPO, M3PO's code) and rlkit's (PEARL) order it: faster, learning effect not settled
    :param ent_coef: SAC's entropy coefficient (``"auto"`` learns it)
    :param target_update_interval: gradient steps between target critic updates
    :param target_entropy: target entropy when learning ``ent_coef``
    :param stats_window_size: episodes averaged for the rollout logs
    :param tensorboard_log: TensorBoard folder (``None``: none)
    :param policy_kwargs: policy arguments; default :func:`history_policy_kwargs` of the env's layout
    :param verbose: verbosity level
    :param seed: seed of all random generators
    :param device: torch device of the networks and the model
    :param _init_setup_model: build the networks and buffers now
    """

    dynamics_model_class: ClassVar[type[DynamicsModel]] = MetaDynamicsModel
    replay_buffer: ModelReplayBuffer  # D_model
    env_buffer: HistoryReplayBuffer  # D_env
    dynamics_model: DynamicsModel

    def __init__(
        self,
        policy: str | type[SACPolicy],
        env: GymEnv | str | None,
        learning_rate: float | Schedule = 3e-4,
        buffer_size: int | None = None,
        env_buffer_size: int = 200_000,
        learning_starts: int | None = None,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        gradient_steps: int = 20,
        epoch_length: int = 1000,
        rollouts_per_step: int = 1000,
        rollout_length: int = 1,
        rollout_every: int = 1,
        ensemble_size: int = 3,
        model_kwargs: dict[str, Any] | None = None,
        model_fit_kwargs: dict[str, Any] | None = None,
        hybrid_schedule: tuple[int, int] | None = None,
        real_ratio: float = 0.0,
        known_action_reward: bool = False,
        history_length: int | None = None,
        actor_loss_before_critic_step: bool = False,
        ent_coef: str | float = "auto",
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
        if env is not None:  # None when ``load`` rebuilds the agent; the layout then comes from the file
            env, self.history_layout = history_env(env, history_length, verbose)
            if policy_kwargs is None:
                policy_kwargs = history_policy_kwargs(self.history_layout)
        super().__init__(
            policy,
            env,  # type: ignore[arg-type]
            learning_rate=learning_rate,
            buffer_size=rollouts_per_step * epoch_length * rollout_length if buffer_size is None else buffer_size,
            learning_starts=epoch_length if learning_starts is None else learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=1,
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
            actor_loss_before_critic_step=actor_loss_before_critic_step,
            _init_setup_model=False,
        )
        self.env_buffer_size = env_buffer_size
        self.epoch_length = epoch_length
        self.rollouts_per_step = rollouts_per_step
        self.rollout_length = rollout_length
        self.rollout_every = rollout_every
        self.ensemble_size = ensemble_size
        self.model_kwargs = {} if model_kwargs is None else model_kwargs
        self.model_fit_kwargs = {} if model_fit_kwargs is None else model_fit_kwargs
        self.hybrid_schedule = hybrid_schedule
        self.real_ratio = real_ratio
        self.known_action_reward = known_action_reward
        self.dynamics_model_name = self.dynamics_model_class.__name__  # saved, so that ``load`` can check the class
        # Hooks for diagnostics: the statistics of the last model fit and of the last rollout batch.
        self.last_model_fit_stats: dict[str, Any] = {}
        self.last_rollout_stats: dict[str, float] = {}
        self.termination_fn: TerminationFn | None = None
        self.action_reward_fn: ActionRewardFn | None = None
        self._validate_hyperparameters()
        if _init_setup_model:
            self._setup_model()

    def _validate_hyperparameters(self) -> None:
        integers = dict(  # the defaults of buffer_size and learning_starts derive from M, E, k: checked last
            gradient_steps=self.gradient_steps,
            epoch_length=self.epoch_length,
            rollouts_per_step=self.rollouts_per_step,
            rollout_length=self.rollout_length,
            rollout_every=self.rollout_every,
            ensemble_size=self.ensemble_size,
            batch_size=self.batch_size,
            env_buffer_size=self.env_buffer_size,
            buffer_size=self.buffer_size,
            learning_starts=self.learning_starts,
        )
        check_integers("M3PO", integers)
        epoch_of_rollouts = self.rollouts_per_step * self.epoch_length * self.rollout_length
        checks = [
            (self.rollout_length >= 1, f"rollout_length (k) must be >= 1, got {self.rollout_length}"),
            (self.rollouts_per_step >= 1, f"rollouts_per_step (M) must be >= 1, got {self.rollouts_per_step}"),
            (self.gradient_steps >= 0, f"gradient_steps (G) must be >= 0, got {self.gradient_steps}"),
            (self.epoch_length >= 1, f"epoch_length (E) must be >= 1, got {self.epoch_length}"),
            (
                1 <= self.rollout_every <= self.epoch_length,
                f"rollout_every must lie in [1, epoch_length={self.epoch_length}] (each model makes its rollouts), got {self.rollout_every}",
            ),
            (self.ensemble_size >= 1, f"ensemble_size (B) must be >= 1, got {self.ensemble_size}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (
                self.learning_starts >= 1,
                f"learning_starts must be >= 1 (the model is first trained on the real data collected by then), got {self.learning_starts}",
            ),
            (
                self.buffer_size >= epoch_of_rollouts,
                f"buffer_size={self.buffer_size} is too small to hold one epoch of rollouts, M·E·k = {epoch_of_rollouts}",
            ),
            (
                self.env_buffer_size >= self.learning_starts,
                f"env_buffer_size={self.env_buffer_size} cannot hold the learning_starts={self.learning_starts} real steps the model is first trained on",
            ),
        ]
        checks.append((0.0 <= self.real_ratio <= 1.0, f"real_ratio must lie in [0, 1], got {self.real_ratio}"))
        if self.hybrid_schedule is not None:
            start, end = self.hybrid_schedule
            checks.append((0 <= start < end, f"hybrid_schedule (a, b) needs 0 <= a < b, got {self.hybrid_schedule}"))
        if self.env is not None:
            checks.append((self.n_envs == 1, f"M3PO trains on one env (its epochs count single steps), got {self.n_envs}"))
        check_conditions("M3PO", checks)

    def _setup_model(self) -> None:
        assert self.history_layout is not None, "M3PO needs an env (or a saved agent) to know its history layout"
        self.env_buffer = HistoryReplayBuffer(
            self.env_buffer_size, self.observation_space, self.action_space, self.history_layout, self.device, n_envs=self.n_envs
        )
        # D_model is SAC's replay buffer: the policy learns from the model's transitions (Algorithm 2, line 11).
        self.replay_buffer = ModelReplayBuffer(
            self.buffer_size, self.observation_space, self.action_space, self.env_buffer, self.rollout_length, self.device
        )
        super()._setup_model()
        # Built after SAC's ``set_random_seed``, so the model's initial weights follow the seed.
        self.dynamics_model = self.dynamics_model_class(
            self.history_layout, ensemble_size=self.ensemble_size, device=self.device, **self.model_kwargs
        )
        # Here rather than in ``__init__``: ``load`` restores ``known_action_reward`` after ``__init__``, before this.
        if self.env is not None:
            self.termination_fn, self.action_reward_fn = self._env_functions(self.env)

    def set_env(self, env: GymEnv, force_reset: bool = True) -> None:
        functions = self._env_functions(env)  # an env that lacks the known term is refused before it replaces this one
        super().set_env(env, force_reset)
        self.termination_fn, self.action_reward_fn = functions

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, BaseCallback]:
        total_timesteps, callback = super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)
        self._check_env_buffer()
        return total_timesteps, callback

    def _init_callback(self, callback: MaybeCallback, progress_bar: bool = False) -> BaseCallback:
        """Run the model side of Algorithm 2 (:class:`ModelRolloutCallback`) ahead of the user's callbacks."""
        if not isinstance(callback, list):
            callback = [callback if isinstance(callback, BaseCallback) else ConvertCallback(callback)]
        return super()._init_callback([ModelRolloutCallback(), *callback], progress_bar)

    def _env_functions(self, env: GymEnv) -> tuple[TerminationFn | None, ActionRewardFn | None]:
        """The env's batched functions for fictitious steps (:func:`~m3po_sb3.agents.common.env_functions`)."""
        return env_functions(env, self.known_action_reward, type(self).__name__)

    # ------------------------------------------------------------------ the steps of Algorithm 2
    def _store_transition(
        self,
        replay_buffer: ReplayBuffer,
        buffer_action: np.ndarray,
        new_obs: np.ndarray | dict[str, np.ndarray],
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Real transitions go to ``D_env`` (SB3 hands over its replay buffer, which is ``D_model`` here)."""
        super()._store_transition(self.env_buffer, buffer_action, new_obs, reward, dones, infos)

    def env_transitions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """
        All real transitions of ``D_env`` in the model's terms.

        :return: histories ``h_t``, actions ``a_t`` in the env's units (as the histories record them),
            observations ``o_{t+1}``, rewards ``r_t`` (less the known action term if ``known_action_reward``:
            the part the model learns)
        """
        size, layout = self.env_buffer.size(), self.history_layout
        assert layout is not None
        # One rebuild of both windows (the buffer's ``observations`` and ``next_observations`` would each rebuild both).
        histories, next_histories = self.env_buffer.histories(np.arange(size))
        next_obs, _, past_actions, _, _ = layout.split(next_histories)
        actions, rewards = past_actions[:, -1], self.env_buffer.rewards[:size].reshape(-1)
        if self.action_reward_fn is not None:
            rewards = rewards - known_action_rewards(self.action_reward_fn, actions)
        return histories, actions, next_obs, rewards

    def train_dynamics(self) -> dict[str, Any]:
        """
        Train the model on all of ``D_env`` (Algorithm 2, line 3) and log its fit statistics.

        :return: the statistics of the model's ``fit``
        """
        self._check_env_buffer()
        stats = ModelTrainer(self.dynamics_model).fit(
            *self.env_transitions(), rng=np.random.default_rng(np.random.randint(2**31)), **self.model_fit_kwargs
        )
        if not np.isfinite(stats["holdout_nll"]):
            raise FloatingPointError(f"M3PO: the model's held-out NLL is {stats['holdout_nll']}")
        for key in ("holdout_nll", "train_nll", "epochs"):
            self.logger.record(f"model/{key}", stats[key])
        self.last_model_fit_stats = stats
        return stats

    def _check_env_buffer(self) -> None:
        """
        ``D_env`` must hold every real step taken (up to its size): the model is fit on it and rollouts start
        from it. A loaded agent whose ``D_env`` was not loaded would otherwise refit on the few steps seen
        since and roll out from them.
        """
        expected = min(self.num_timesteps, self.env_buffer_size)
        if self.env_buffer.size() < expected:
            raise ValueError(
                f"M3PO: D_env holds {self.env_buffer.size()} real transitions but the agent has taken {self.num_timesteps} "
                f"steps (expected {expected}): a loaded agent needs its D_env, saved with agent.save_env_buffer(path) and "
                "restored with agent.load_env_buffer(path) before learn(); or learn(..., reset_num_timesteps=True) starts "
                "the schedule over, the model then refit once learning_starts new real steps are collected"
            )

    def rollout_dynamics(self, n_rollouts: int) -> RolloutBatch:
        """
        Branched rollouts of ``k`` steps from ``n_rollouts`` histories sampled from ``D_env``, with the current
        policy and model, into ``D_model`` (Algorithm 2, lines 7-9).

        :param n_rollouts: number of rollouts
        :return: the fictitious transitions stored, with the counts of what was not stored
        """
        start_rows = self.env_buffer.sample_rows(n_rollouts)
        start_histories = self.env_buffer.to_torch(self.env_buffer.histories(start_rows)[0])
        batch = branched_rollouts(
            start_histories,
            self.actor,  # type: ignore[arg-type]
            self.dynamics_model,
            self.action_space,  # type: ignore[arg-type]
            self.rollout_length,
            self.termination_fn,
            self.action_reward_fn,
        )
        self.replay_buffer.extend(batch, start_rows)
        self.last_rollout_stats = dict(
            model_transitions=len(batch), dropped_nonfinite=batch.n_dropped_nonfinite, terminated_fraction=batch.terminated_fraction
        )
        for key, value in self.last_rollout_stats.items():
            self.logger.record(f"rollout/{key}", value)
        return batch

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """``G`` SAC updates on ``D_model`` (Algorithm 2, line 11); M3PO-h's (and ``real_ratio > 0``) sample ``D_hyb``."""
        beta = self.hybrid_beta()
        self.logger.record("train/beta", beta)
        model_buffer = self.replay_buffer
        if beta < 1.0:  # SAC.train samples ``self.replay_buffer``: lend it the hybrid view for these updates
            self.replay_buffer = HybridReplayBuffer(model_buffer, self.env_buffer, beta)  # type: ignore[assignment]
        try:
            super().train(gradient_steps, batch_size)
        finally:
            self.replay_buffer = model_buffer
        check_finite_losses(self, "M3PO", ("train/actor_loss", "train/critic_loss"))


    def hybrid_beta(self, epoch: float | None = None) -> float:
        """
        :param epoch: the epoch (default: the current one, ``num_timesteps // epoch_length``)
        :return: the share of model transitions in SAC's minibatches: M3PO-h's β (:func:`hybrid_beta`), 1 for
            plain M3PO, at most ``1 − real_ratio``
        """
        beta = 1.0
        if self.hybrid_schedule is not None:
            beta = hybrid_beta(self.num_timesteps // self.epoch_length if epoch is None else epoch, *self.hybrid_schedule)
        return min(beta, 1.0 - self.real_ratio)

    def learn(
        self: SelfM3PO,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfM3PO:
        """SAC's ``learn``; the TensorBoard run is named after the class (``M3PO_1``, ``M2PO_1``), not ``SAC_1``."""
        tb_log_name = type(self).__name__ if tb_log_name is None else tb_log_name
        return super().learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)

    # ------------------------------------------------------------------ persistence
    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfM3PO],
        path: str | pathlib.Path | io.BufferedIOBase,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> SelfM3PO:
        """
        SB3's ``load``, which first checks that the file holds an agent of this class: a zip of another
        algorithm (PPO, a history-SAC) or of the other model (M2PO for M3PO) raises a ``TypeError`` naming it.
        An env id is made and wrapped with the saved agent's ``HistoryObservation``, as the constructor does.
        Arguments as :meth:`stable_baselines3.SAC.load`.
        """
        data, _, _ = load_from_zip_file(path, device="cpu", custom_objects=custom_objects, load_data=True)
        data = data or {}
        if "epoch_length" not in data:  # none of M3PO's hyper-parameters
            policy = data.get("policy_class")
            raise TypeError(
                f"{path} was not saved by M3PO or M2PO (its policy is {getattr(policy, '__name__', policy)} and it has no "
                "dynamics model): load it with the class that saved it, e.g. stable_baselines3.SAC.load or PPO.load"
            )
        saved = data.get("dynamics_model_name", cls.dynamics_model_class.__name__)  # absent from files of 0.1.0
        if saved != cls.dynamics_model_class.__name__:
            algo = {"MetaDynamicsModel": "M3PO", "DynamicsModel": "M2PO"}.get(saved, saved)
            raise TypeError(f"{path} holds an agent with a {saved}, not {cls.__name__}'s {cls.dynamics_model_class.__name__}: use {algo}.load")
        if env is not None:
            env, _ = history_env(env, data["history_layout"].history_length, data.get("verbose", 0))
        return super().load(path, env, device, custom_objects, print_system_info, force_reset, **kwargs)

    def _excluded_save_params(self) -> list[str]:
        # D_env is kept with ``save_env_buffer``, like D_model with ``save_replay_buffer``; the health rule
        # is a method of the env.
        return [*super()._excluded_save_params(), "env_buffer", "termination_fn", "action_reward_fn"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, variables = super()._get_torch_save_params()
        # The model's state dict carries its normalisers (registered buffers).
        return [*state_dicts, "dynamics_model", "dynamics_model.optimizer"], variables

    def save_env_buffer(self, path: str | pathlib.Path | io.BufferedIOBase) -> None:
        """
        Save ``D_env`` (the real transitions) as a pickle file; ``save_replay_buffer`` saves ``D_model``.

        :param path: file to write (folders are created)
        """
        save_to_pkl(path, self.env_buffer, self.verbose)

    def load_env_buffer(self, path: str | pathlib.Path | io.BufferedIOBase) -> None:
        """
        Load ``D_env`` saved by :meth:`save_env_buffer`.

        :param path: the pickle file
        """
        env_buffer = load_from_pkl(path, self.verbose)
        if not isinstance(env_buffer, HistoryReplayBuffer):
            raise TypeError(f"{path} does not hold a HistoryReplayBuffer but a {type(env_buffer).__name__} (saved by an older version?)")
        env_buffer.device = self.device
        self.env_buffer = env_buffer
        self.replay_buffer.env_buffer = env_buffer  # D_model's rows start from D_env's steps

    def save_extra_buffers(self, folder: pathlib.Path) -> None:
        """
        A checkpoint's buffers besides SB3's replay buffer (``D_model``): ``D_env``, as ``env_buffer.pkl``.

        :param folder: the checkpoint folder
        """
        self.save_env_buffer(pathlib.Path(folder) / ENV_BUFFER_FILE)

    def load_extra_buffers(self, folder: pathlib.Path) -> None:
        """
        Load ``D_env`` saved by :meth:`save_extra_buffers`.

        :param folder: the checkpoint folder
        """
        self.load_env_buffer(pathlib.Path(folder) / ENV_BUFFER_FILE)

    def load_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase, truncate_last_traj: bool = True) -> None:
        """
        Load ``D_model`` saved by ``save_replay_buffer``; its rows start from the steps of the ``D_env`` saved
        with it (:meth:`load_env_buffer`), which it can sample once that is loaded too.

        :param path: the pickle file
        :param truncate_last_traj: unused (SB3's option for HER buffers)
        """
        previous = self.replay_buffer
        super().load_replay_buffer(path, truncate_last_traj)
        if not isinstance(self.replay_buffer, ModelReplayBuffer):
            loaded, self.replay_buffer = self.replay_buffer, previous
            raise TypeError(f"{path} does not hold a ModelReplayBuffer but a {type(loaded).__name__} (saved by an older version?)")
        self.replay_buffer.env_buffer = self.env_buffer


class M2PO(M3PO):
    """
    M2PO (seed A.9): M3PO with a non-adaptive model, i.e. MBPO (Janner et al., NeurIPS 2019) with a
    history-conditioned policy and critics. By default it is MBPO as its code runs it (jannerm/mbpo: the
    HalfCheetah config, ``bnn.py``, ``mbpo.py``): an ensemble of 7 Gaussian networks on ``(o_t, a_t)``, 5 elites,
    four hidden layers of 200, the plain NLL of the raw targets (:data:`MBPO_MODEL_KWARGS`), each member restored
    to its best epoch, MBPO's patience (:data:`MBPO_FIT_KWARGS`); a model fit every 250 env steps
    (``model_train_freq``), each followed by its ``M · E = 100 000`` one-step rollouts at once
    (``rollout_batch_size``), so that SAC starts on a full batch of them; ``D_model`` keeps the rollouts of the
    last 1 000 env steps (``model_retain_epochs = 1``); 5 % real transitions in every SAC minibatch (``real_ratio``).

    Where it still departs from MBPO: the warm-up of random actions is one model period (``learning_starts``,
    MBPO 5 000 steps, which its curves do not count); SAC's target entropy is SB3's ``"auto"`` (``-dim(A)``;
    MBPO sets one per env, e.g. −3 on HalfCheetah); the held-out error that stops a fit is the geometric mean over
    outputs (:mod:`m3po_sb3.models.training`). Arguments as :class:`M3PO`; the presets of Table 2, ``cpu`` and
    ``demo`` set M2PO's ``E`` and ``M`` to M3PO's (the paper's comparison).
    """

    dynamics_model_class = DynamicsModel

    def __init__(
        self,
        policy: str | type[SACPolicy],
        env: GymEnv | str | None,
        *,
        ensemble_size: int = 7,
        model_kwargs: dict[str, Any] | None = None,
        model_fit_kwargs: dict[str, Any] | None = None,
        epoch_length: int = 250,
        rollouts_per_step: int = 400,
        rollout_every: int | None = None,
        rollout_length: int = 1,
        buffer_size: int | None = None,
        real_ratio: float = 0.05,
        **kwargs: Any,
    ):
        """
        :param ensemble_size: ``B``, MBPO's 7 members
        :param model_kwargs: default MBPO's model (:data:`MBPO_MODEL_KWARGS`)
        :param model_fit_kwargs: arguments of the model's ``fit``, over MBPO's patience (:data:`MBPO_FIT_KWARGS`)
        :param epoch_length: ``E``, env steps between two model fits (MBPO's ``model_train_freq``)
        :param rollouts_per_step: ``M`` (MBPO's 100 000 rollouts per fit over 250 steps)
        :param rollout_every: make the rollouts of this many env steps at once; default ``E``: all of a
            period's right after its fit, as MBPO
        :param rollout_length: ``k``
        :param buffer_size: size of ``D_model``; default the rollouts of 1 000 env steps, ``M · max(E, 1000) · k``
            (MBPO's retention of one 1 000-step epoch)
        :param real_ratio: share of real transitions in SAC's minibatches (MBPO's 0.05)
        :param kwargs: the other arguments of :class:`M3PO`
        """
        model_kwargs = dict(MBPO_MODEL_KWARGS) if model_kwargs is None else model_kwargs
        if buffer_size is None:
            buffer_size = rollouts_per_step * max(epoch_length, MBPO_EPOCH_LENGTH) * rollout_length
        super().__init__(
            policy,
            env,
            ensemble_size=ensemble_size,
            model_kwargs=model_kwargs,
            model_fit_kwargs={**MBPO_FIT_KWARGS, **(model_fit_kwargs or {})},
            epoch_length=epoch_length,
            rollouts_per_step=rollouts_per_step,
            rollout_every=epoch_length if rollout_every is None else rollout_every,
            rollout_length=rollout_length,
            buffer_size=buffer_size,
            real_ratio=real_ratio,
            **kwargs,
        )
