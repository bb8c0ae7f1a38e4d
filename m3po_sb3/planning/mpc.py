"""Model-predictive control on stable-baselines3: the plumbing every planning agent (GrBAL, ReBAL, GHP-MDP) shares.

- :class:`PlanningModel`: a learned model of the env's dynamics **and reward** that adapts to a recent window of
  real transitions (:meth:`PlanningModel.adapt`) and predicts one step of many candidates at once
  (:meth:`PlanningModel.step`). An agent's model is a subclass; it is a submodule of the policy, so SB3's
  ``save``/``load`` keep its weights and normalisation statistics.
- :class:`MPCPolicy`: an SB3 ``BasePolicy`` whose ``predict`` plans: adapt the model to the history, score
  candidate action sequences by the model's predicted returns (:func:`predicted_returns`), execute the first
  action of the plan (:mod:`~m3po_sb3.planning.planners`).
- :class:`ModelPredictiveControl`: an SB3 ``OffPolicyAlgorithm`` whose rollouts collect real data with the
  planner (random actions for the first ``learning_starts`` steps: the random first iteration of Nagabandi,
  Clavera et al. 2019) and whose ``train`` refits the model on **all** the real data every ``train_freq`` steps
  (an iteration). ``learn``, ``predict``, ``save``/``load``, the logger, callbacks (``MetaEvalCallback``), the
  progress bar and Ctrl-C are SB3's.

Decisions where the papers' code does not fit the tasks here:

- **The recent window is the history observation.** The agent observes
  :class:`~m3po_sb3.history.HistoryObservation` histories, the last ``L`` (observation, action, reward) steps
  before ``t`` plus ``o_t``, and adapts to that window at every step (GrBAL: a gradient step on its transitions;
  ReBAL: the recurrent state run over it; GHP-MDP: the latent inferred from it). ``predict`` is then a function
  of the observation, so SB3's ``evaluate_policy`` and ``MetaEvalCallback`` work unchanged, and the task is
  re-inferred after a switch inside an episode as soon as the window holds transitions of the new task.
  ReBAL's original carries its hidden state over the whole episode; a window of ``L`` steps gives the same state
  whenever ``L`` is at least the number of steps since the last switch, and forgets the old task otherwise.
- **The reward is learned.** learning_to_adapt's planner scores sequences with a hand-written reward of the
  state, but in the direction envs the reward depends on the hidden task. The model predicts the reward with a
  head adapted together with the dynamics, which is consistent with any hidden task. The known reward is an
  option only where it cannot leak the task: ``known_action_reward=True`` takes the env's
  ``action_reward_fn`` (the v5 control cost, the same for every task) as known, the model learning the rest
  of the reward (as ``M3PO(known_action_reward=True)``); a known reward of the state is not offered, since in
  the direction envs it would be the hidden task's.
- **Termination.** The env's batched health rule ``termination_fn(next_obs)`` (Ant, Walker, Humanoid) ends a
  candidate's predicted rollout: no reward is counted after the step that terminates it.
- **Warm start.** The plan is returned as the recurrent ``state`` of SB3's ``predict`` (``evaluate_policy``
  passes it back), and the next step's planning starts from it shifted by one step; a history with an empty
  window (an episode start) starts from scratch. Called without a state, ``predict`` plans from scratch.
- **Before the first fit** (an evaluation during the random first iteration) the policy plans with the untrained
  model, as an untrained SAC acts with its initial actor; training plans only after the first fit.
- **Determinism.** ``predict(deterministic=True)`` reseeds the planner with ``planner_seed`` at every call, so
  the action is a function of the observation (and state) alone; ``deterministic=False`` draws fresh noise.
- **Actions** are planned in SB3's scaled space ``[-1, 1]`` (``squash_output``), in which the replay buffer
  stores them; the model sees actions in that space, from the buffer and from the histories alike.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule

from m3po_sb3.agents.common import check_conditions, check_integers, env_functions, history_env
from m3po_sb3.history.layout import HistoryLayout
from m3po_sb3.planning.planners import PLANNERS, Planner, check_positive_integers
from m3po_sb3.models.rollouts import ActionRewardFn, TerminationFn, _terminated, known_action_rewards

RELATIVE_STD_EPSILON = 1e-6


class Standardizer(th.nn.Module):
    """
    z-scoring of a feature vector with statistics of **all** the data it was last fitted to. A feature whose
    spread is below ``RELATIVE_STD_EPSILON`` of its magnitude (a constant) keeps scale 1 rather than being
    divided by a tiny number (learning_to_adapt's 1e-10 turned any later deviation of a constant into a huge
    input). The statistics are buffers, saved with the model.

    :param size: number of features
    """

    def __init__(self, size: int):
        super().__init__()
        self.register_buffer("mean", th.zeros(size))
        self.register_buffer("std", th.ones(size))

    def fit(self, x: th.Tensor) -> None:
        """:param x: all the data, shape ``(n, size)``"""
        mean, std = x.mean(0), x.std(0, unbiased=False)
        constant = std <= RELATIVE_STD_EPSILON * mean.abs().clamp_min(1.0)
        self.mean.copy_(mean)
        self.std.copy_(th.where(constant, th.ones_like(std), std))

    def forward(self, x: th.Tensor) -> th.Tensor:
        return (x - self.mean) / self.std

    def inverse(self, z: th.Tensor) -> th.Tensor:
        return z * self.std + self.mean


@dataclass
class TransitionData:
    """
    The real transitions, in time order, each tagged with its episode (windows and sequences never cross one).

    :param observations: ``(T, obs_dim)``
    :param actions: ``(T, act_dim)``, in the scaled space ``[-1, 1]``
    :param rewards: ``(T,)``
    :param next_observations: ``(T, obs_dim)``
    :param episodes: ``(T,)`` int64, non-decreasing episode index
    """

    observations: th.Tensor
    actions: th.Tensor
    rewards: th.Tensor
    next_observations: th.Tensor
    episodes: th.Tensor

    def __post_init__(self) -> None:
        n = len(self.observations)
        for name in ("actions", "rewards", "next_observations", "episodes"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"TransitionData.{name} has {len(getattr(self, name))} rows, observations {n}")
        for name in ("observations", "actions", "rewards", "next_observations"):
            if not th.isfinite(getattr(self, name)).all():
                raise ValueError(f"TransitionData.{name} holds non-finite values")

    def __len__(self) -> int:
        return len(self.observations)

    @classmethod
    def from_replay_buffer(cls, buffer: ReplayBuffer, layout: HistoryLayout) -> "TransitionData":
        """
        :param buffer: SB3's replay buffer of history observations (one env), never wrapped around
        :param layout: the histories' layout
        :return: its transitions; an episode ends at every stored ``done`` (termination or time limit)
        """
        if buffer.n_envs != 1:
            raise ValueError(f"model-predictive control keeps one env's data in time order, got a buffer of {buffer.n_envs} envs")
        rows = buffer.buffer_size if buffer.full else buffer.pos
        dones = th.as_tensor(buffer.dones[:rows, 0])
        episodes = th.cat([th.zeros(1), th.cumsum(dones, 0)[:-1]]).long()

        def tensor(array: np.ndarray) -> th.Tensor:
            return th.as_tensor(array[:rows, 0], dtype=th.float32, device=buffer.device)

        return cls(
            tensor(buffer.observations)[:, : layout.obs_dim],
            tensor(buffer.actions),
            tensor(buffer.rewards),
            tensor(buffer.next_observations)[:, : layout.obs_dim],
            episodes.to(buffer.device),
        )

    def window_starts(self, length: int, rows: th.Tensor | None = None) -> th.Tensor:
        """
        :param length: number of consecutive steps in a window
        :param rows: ``(T,)`` bool, the rows a window may use (``None``: all)
        :return: the first row of every window of ``length`` steps inside one episode (and inside ``rows``)
        """
        n = len(self) - length + 1
        if n < 1:
            return th.zeros(0, dtype=th.long, device=self.episodes.device)
        ok = self.episodes[:n] == self.episodes[length - 1 :]
        if rows is not None:
            outside = th.cat([th.zeros(1, device=rows.device), th.cumsum((~rows).float(), 0)])
            ok &= (outside[length:] - outside[:n]) == 0
        return th.nonzero(ok).squeeze(1)

    def windows(self, starts: th.Tensor, length: int) -> "Window":
        """:return: the windows of ``length`` steps from ``starts`` (all real steps)"""
        index = starts[:, None] + th.arange(length, device=starts.device)
        return Window(
            self.observations[index],
            self.actions[index],
            self.rewards[index],
            self.next_observations[index],
            th.ones(index.shape, device=index.device),
        )


@dataclass
class Window:
    """
    A batch of windows of consecutive transitions, oldest first; ``mask`` is 0 for padding (an episode's
    start), which :meth:`from_histories` puts before the real steps.

    :param observations: ``(B, L, obs_dim)``
    :param actions: ``(B, L, act_dim)``, scaled to ``[-1, 1]``
    :param rewards: ``(B, L)``
    :param next_observations: ``(B, L, obs_dim)``
    :param mask: ``(B, L)``
    """

    observations: th.Tensor
    actions: th.Tensor
    rewards: th.Tensor
    next_observations: th.Tensor
    mask: th.Tensor

    @classmethod
    def from_histories(cls, layout: HistoryLayout, histories: th.Tensor, action_space: spaces.Box) -> "Window":
        """:param histories: flat histories ``(B, size)``, with the env's (unscaled) actions"""
        current, past_obs, past_act, past_rew, mask = layout.split(histories)
        low, high = (th.as_tensor(bound, dtype=histories.dtype, device=histories.device) for bound in (action_space.low, action_space.high))
        scaled = (2.0 * (past_act - low) / (high - low) - 1.0) * mask[..., None]
        next_obs = th.cat([past_obs[:, 1:], current[:, None]], dim=1)
        return cls(past_obs, scaled, past_rew, next_obs, mask)


class PlanningModel(th.nn.Module, ABC):
    """
    A learned model of the env's dynamics and reward that adapts to a recent window. Subclasses define
    :meth:`fit`, :meth:`adapt` and :meth:`step`; ``context`` is whatever :meth:`adapt` returns (adapted weights,
    a recurrent state, a latent).

    :param history_layout: the layout of the agent's histories (its window is ``history_length`` steps)
    :param learning_rate: learning rate of the model's optimizer
    """

    def __init__(self, history_layout: HistoryLayout, learning_rate: float):
        super().__init__()
        if not (isinstance(learning_rate, (int, float)) and np.isfinite(learning_rate) and learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive finite number, got {learning_rate!r}")
        self.history_layout = history_layout
        self.learning_rate = float(learning_rate)
        self.register_buffer("fitted", th.tensor(False))

    @abstractmethod
    def fit(self, data: TransitionData) -> dict[str, float]:
        """
        Refit on all the real data (normalisation statistics included); set ``fitted``.

        :return: statistics for the logger (``name -> value``), logged under ``model/``
        """

    @abstractmethod
    def adapt(self, window: Window) -> Any:
        """:return: the context of the model adapted to one window (``B = 1``)"""

    @abstractmethod
    def step(self, context: Any, observations: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor, Any]:
        """
        One predicted step of ``n`` candidates from the same adapted context.

        :param observations: ``(n, obs_dim)``
        :param actions: ``(n, act_dim)``, scaled to ``[-1, 1]``
        :return: next observations ``(n, obs_dim)``, rewards ``(n,)`` and the context for the next step
        """


def predicted_returns(
    model: PlanningModel,
    context: Any,
    observation: th.Tensor,
    sequences: th.Tensor,
    termination_fn: TerminationFn | None,
    particles: int = 1,
    known_reward: Callable[[th.Tensor], th.Tensor] | None = None,
) -> th.Tensor:
    """
    Undiscounted sum of the model's rewards along each candidate sequence (as learning_to_adapt), a candidate's
    rollout ending at the first predicted state the env's health rule terminates.

    :param context: the model adapted to the current window
    :param observation: the current observation ``(obs_dim,)``
    :param sequences: candidate action sequences ``(n, horizon, act_dim)``, scaled to ``[-1, 1]``
    :param termination_fn: the env's batched health rule (``None``: never terminal)
    :param particles: rollouts per candidate, averaged (PETS's trajectory sampling for a stochastic model);
        particle ``j`` of candidate ``i`` is row ``i · particles + j`` of the model's steps
    :param known_reward: the known part of the reward, of the (scaled) actions ``(n, act_dim) -> (n,)``, added to
        the model's (``None``: the model predicts the whole reward)
    :return: ``(n,)``
    """
    n_candidates = len(sequences)
    sequences = sequences.repeat_interleave(particles, dim=0)
    n, horizon, _ = sequences.shape
    observations = observation.expand(n, -1)
    alive = th.ones(n, device=sequences.device)
    total = th.zeros(n, device=sequences.device)
    for t in range(horizon):
        observations, rewards, context = model.step(context, observations, sequences[:, t])
        if known_reward is not None:
            rewards = rewards + known_reward(sequences[:, t])
        total += alive * rewards
        alive = alive * th.as_tensor(~_terminated(termination_fn, observations), dtype=alive.dtype, device=alive.device)
    return total.view(n_candidates, particles).mean(dim=1)


class MPCPolicy(BasePolicy):
    """
    A policy that plans with a learned :class:`PlanningModel` (see the module docstring).

    :param observation_space: the history observation space
    :param action_space: the env's ``Box`` action space
    :param lr_schedule: learning rate schedule; its initial value is the model's learning rate
    :param history_layout: the histories' layout
    :param model_class: the agent's :class:`PlanningModel`
    :param model_kwargs: keyword arguments of ``model_class``
    :param planner: ``"mppi"``, ``"cem"`` or ``"random"`` (:data:`~m3po_sb3.planning.planners.PLANNERS`)
    :param planner_kwargs: keyword arguments of the planner (horizon, n_candidates, iterations, its own)
    :param planner_seed: seed of the planner's noise (reused at every deterministic call)
    :param particles: model rollouts per candidate sequence, their returns averaged (1 for a deterministic
        model; PETS: 20)
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        history_layout: HistoryLayout,
        model_class: type[PlanningModel],
        model_kwargs: dict[str, Any] | None = None,
        planner: str = "mppi",
        planner_kwargs: dict[str, Any] | None = None,
        planner_seed: int = 0,
        particles: int = 1,
    ):
        super().__init__(observation_space, action_space, squash_output=True)
        check_positive_integers(particles=particles)
        if planner not in PLANNERS:
            raise ValueError(f"unknown planner {planner!r}; choose one of {sorted(PLANNERS)}")
        if observation_space.shape != (history_layout.size,):
            raise ValueError(f"observation space {observation_space.shape} does not match the history layout ({history_layout.size},)")
        self.history_layout = history_layout
        self.model_class, self.model_kwargs = model_class, dict(model_kwargs or {})
        self.planner_name, self.planner_kwargs, self.planner_seed = planner, dict(planner_kwargs or {}), int(planner_seed)
        self.particles = int(particles)
        self.model = model_class(history_layout, learning_rate=lr_schedule(1.0), **self.model_kwargs)
        ones = np.ones(history_layout.act_dim, np.float32)
        self.planner: Planner = PLANNERS[planner](-ones, ones, seed=self.planner_seed, **self.planner_kwargs)
        # the env's functions, set by the algorithm (not saved)
        self.termination_fn: TerminationFn | None = None
        self.action_reward_fn: ActionRewardFn | None = None

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            history_layout=self.history_layout,
            model_class=self.model_class,
            model_kwargs=self.model_kwargs,
            planner=self.planner_name,
            planner_kwargs=self.planner_kwargs,
            planner_seed=self.planner_seed,
            particles=self.particles,
        )
        return data

    def get_extra_state(self) -> dict[str, Any]:
        """The planner's generator state, in the policy's ``state_dict``: a saved agent plans on with the same noise."""
        return dict(planner_generator=self.planner.generator.get_state())

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.planner.generator.set_state(state["planner_generator"])

    def plan(self, histories: th.Tensor, previous_plans: th.Tensor | None = None, deterministic: bool = False) -> th.Tensor:
        """
        :param histories: ``(B, size)``
        :param previous_plans: the plans of the previous step ``(B, horizon, act_dim)`` (``None``: none)
        :param deterministic: reseed the planner's noise (see the module docstring)
        :return: the plans ``(B, horizon, act_dim)`` in the scaled action space
        """
        windows = Window.from_histories(self.history_layout, histories, self.action_space)
        known_reward = None if self.action_reward_fn is None else self.known_reward
        if known_reward is not None:  # the model adapts to the rest of the reward, as it was trained on
            flat_actions = windows.actions.reshape(-1, windows.actions.shape[-1])
            windows.rewards = windows.rewards - known_reward(flat_actions).reshape(windows.rewards.shape) * windows.mask
        plans = []
        for b in range(len(histories)):
            if deterministic:
                self.planner.generator.manual_seed(self.planner_seed)
            window = Window(*(part[b : b + 1] for part in (windows.observations, windows.actions, windows.rewards, windows.next_observations, windows.mask)))
            context = self.model.adapt(window)
            observation = histories[b, : self.history_layout.obs_dim]
            warm_start = previous_plans[b] if previous_plans is not None and bool(window.mask.any()) else None
            plans.append(
                self.planner.plan(
                    lambda sequences: predicted_returns(
                        self.model, context, observation, sequences, self.termination_fn, self.particles, known_reward
                    ),
                    warm_start,
                )
            )
        return th.stack(plans)

    def known_reward(self, actions: th.Tensor) -> th.Tensor:
        """:return: the env's known reward of actions in the scaled space, ``(n, act_dim) -> (n,)``"""
        assert self.action_reward_fn is not None
        rewards = known_action_rewards(self.action_reward_fn, self.unscale_action(actions.cpu().numpy()))
        return th.as_tensor(rewards, device=actions.device)

    def _predict(self, observation: th.Tensor, deterministic: bool = False) -> th.Tensor:
        return self.plan(observation, deterministic=deterministic)[:, 0]

    def predict(
        self,
        observation: np.ndarray,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """
        SB3's ``predict``, the plan being the recurrent state: pass the returned ``state`` back at the next step
        to warm-start the planner (``evaluate_policy`` does). The window of the history tells an episode start.

        :return: the actions and ``(plans,)``, the plans of shape ``(n_envs, horizon, act_dim)``
        """
        self.set_training_mode(False)
        obs_tensor, vectorized = self.obs_to_tensor(observation)
        previous = None
        if state is not None:
            previous = th.as_tensor(state[0], dtype=th.float32, device=self.device)
            if episode_start is not None:
                previous = previous * th.as_tensor(1.0 - np.asarray(episode_start, np.float32), device=self.device)[:, None, None]
        with th.no_grad():
            plans = self.plan(obs_tensor, previous, deterministic)
        actions = self.unscale_action(plans[:, 0].cpu().numpy())
        if not vectorized:
            actions = actions.squeeze(axis=0)
        return actions, (plans.cpu().numpy(),)


class ModelPredictiveControl(OffPolicyAlgorithm):
    """
    Model-based RL by model-predictive control (see the module docstring). A subclass names its
    :class:`PlanningModel` (``model_class``) and passes its hyper-parameters as ``model_kwargs``.

    :param policy: ``"MPCPolicy"`` (or the class)
    :param env: the env (an id is made and wrapped in ``HistoryObservation``; an env must be wrapped); one env
    :param learning_rate: learning rate of the model's optimizer
    :param model_kwargs: the model's hyper-parameters
    :param planner: ``"mppi"`` (default, as the L2A paper), ``"cem"`` or ``"random"``
    :param planner_kwargs: the planner's arguments (default: horizon 10, 500 candidates)
    :param planner_seed: seed of the planner's noise
    :param buffer_size: real transitions kept; all of them are (a run longer than this is refused)
    :param learning_starts: random-action steps before planning starts (the random first iteration)
    :param train_freq: env steps per iteration: the model is refitted on all the data after each (and after the
        random ``learning_starts`` steps)
    :param history_length: ``L``, the window the model adapts to (checked against a wrapped env)
    :param known_action_reward: take the env's ``action_reward_fn`` (its task-independent control cost) as known
        and learn the rest of the reward (see the module docstring)
    :param policy_kwargs: extra arguments of :class:`MPCPolicy`
    :param tensorboard_log: TensorBoard log folder
    :param verbose: 0 silent, 1 info
    :param seed: seed of the random generators
    :param device: torch device
    :param _init_setup_model: build the networks at construction
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MPCPolicy": MPCPolicy}
    model_class: ClassVar[type[PlanningModel]]
    policy: MPCPolicy

    def __init__(
        self,
        policy: str | type[MPCPolicy],
        env: GymEnv | str | None,
        learning_rate: float = 1e-3,
        model_kwargs: dict[str, Any] | None = None,
        planner: str = "mppi",
        planner_kwargs: dict[str, Any] | None = None,
        planner_seed: int = 0,
        buffer_size: int = 250_000,
        learning_starts: int = 5000,
        train_freq: int = 5000,
        history_length: int | None = None,
        known_action_reward: bool = False,
        policy_kwargs: dict[str, Any] | None = None,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        algo = type(self).__name__
        check_integers(algo, dict(buffer_size=buffer_size, learning_starts=learning_starts, train_freq=train_freq, planner_seed=planner_seed))
        check_conditions(
            algo,
            [
                (buffer_size >= 1, f"buffer_size must be positive, got {buffer_size}"),
                (learning_starts >= 0, f"learning_starts must be >= 0, got {learning_starts}"),
                (train_freq >= 1, f"train_freq must be positive, got {train_freq}"),
                (planner in PLANNERS, f"unknown planner {planner!r}; choose one of {sorted(PLANNERS)}"),
            ],
        )
        # a user's policy_kwargs cannot replace the agent's model, only the planner or extra arguments
        self.history_layout: HistoryLayout | None = None
        self._planner_arguments = dict(planner=planner, planner_kwargs=dict(planner_kwargs or {}), planner_seed=planner_seed)
        self.model_kwargs = dict(model_kwargs or {})
        self.known_action_reward = bool(known_action_reward)
        if env is not None:
            env, self.history_layout = history_env(env, history_length, verbose, algo)
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=1,  # unused: the model's fit draws its own batches from all the data
            # SB3 collects one step at a time (so that learn stops at its budget, not at the end of an iteration) and
            # never calls train itself: _on_step refits the model once per iteration of train_freq steps
            train_freq=1,
            gradient_steps=0,
            policy_kwargs=policy_kwargs,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            sde_support=False,
            supported_action_spaces=(spaces.Box,),
        )
        self.model_train_freq = train_freq
        self.termination_fn: TerminationFn | None = None
        self.action_reward_fn: ActionRewardFn | None = None
        self._plans: tuple[np.ndarray, ...] | None = None
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        assert self.history_layout is not None, f"{type(self).__name__} needs an env (or a saved agent) to know its history layout"
        self.policy_kwargs = dict(
            self.policy_kwargs,
            history_layout=self.history_layout,
            model_class=self.model_class,
            model_kwargs=self.model_kwargs,
            **self._planner_arguments,
        )
        super()._setup_model()
        if self.env is not None:  # here, not in __init__: load restores known_action_reward after __init__
            self._set_env_functions(self.env)

    def set_env(self, env: GymEnv, force_reset: bool = True) -> None:
        super().set_env(env, force_reset)
        self._set_env_functions(env)

    def _set_env_functions(self, env: GymEnv) -> None:
        """Give the algorithm and its policy the env's health rule and, with ``known_action_reward``, its known reward."""
        self.termination_fn, self.action_reward_fn = env_functions(env, self.known_action_reward, type(self).__name__)
        self.policy.termination_fn, self.policy.action_reward_fn = self.termination_fn, self.action_reward_fn

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        """The model's optimizer is saved too, so that a resumed run refits as the uninterrupted one."""
        return ["policy", "policy.model.optimizer"], []

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "termination_fn", "action_reward_fn"]

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, BaseCallback]:
        new_episode = reset_num_timesteps or self._last_obs is None  # as SB3 decides to reset the env
        total, callback = super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)
        needed = self.replay_buffer.size() + total - self.num_timesteps
        if needed > self.buffer_size:
            raise ValueError(
                f"{type(self).__name__} keeps all real data: {needed} transitions would exceed buffer_size={self.buffer_size}; "
                "raise buffer_size"
            )
        if new_episode:  # else the episode goes on, warm-started with the last plan (saved with the agent)
            self._plans = None
        return total, callback

    def _sample_action(self, learning_starts: int, action_noise: Any = None, n_envs: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Random actions for the first ``learning_starts`` steps, then the planner (its noise explores)."""
        if self.num_timesteps < learning_starts:
            return super()._sample_action(learning_starts, action_noise, n_envs)
        action, self._plans = self.policy.predict(self._last_obs, state=self._plans, deterministic=False)
        return action, self.policy.scale_action(action)

    def _on_step(self) -> None:
        """At the end of each iteration (the random one included), once its last transition is stored: refit."""
        super()._on_step()
        steps = self.num_timesteps - self.learning_starts
        if steps >= 0 and steps % self.model_train_freq == 0:
            self.train(gradient_steps=1, batch_size=self.batch_size)

    def train(self, gradient_steps: int, batch_size: int) -> None:
        """Refit the model on all the real data (one iteration's model learning)."""
        assert self.history_layout is not None
        data = TransitionData.from_replay_buffer(self.replay_buffer, self.history_layout)
        if self.action_reward_fn is not None:  # the model learns the rest of the reward
            data.rewards = data.rewards - self.policy.known_reward(data.actions)
        self.policy.set_training_mode(True)
        statistics = self.policy.model.fit(data)
        self.policy.set_training_mode(False)
        self._n_updates += 1
        self.logger.record("train/n_updates", self._n_updates)
        for name, value in statistics.items():
            self.logger.record(f"model/{name}", value)
