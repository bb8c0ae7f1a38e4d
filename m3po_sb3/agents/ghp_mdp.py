"""GHP-MDP (Perez, Such and Karaletsos, "Generalized Hidden Parameter MDPs: Transferable Model-Based RL in a
Handful of Trials", AAAI 2020), the paper's Fig. 14 baseline, as a stable-baselines3 agent
(:class:`~m3po_sb3.planning.mpc.ModelPredictiveControl`).

What the method is: model-based RL whose learned dynamics and reward are conditioned on latent variables for the
hidden parameters of the task (:class:`~m3po_sb3.models.latent_dynamics.LatentDynamicsModel`: the model, the
flat or structured latents, the ELBO and the inference), planning by model-predictive control with PETS's
machinery (Chua et al. 2018): a probabilistic ensemble, trajectory sampling and the cross-entropy method. Its
Algorithm 1 alternates collecting real data with the planner and refitting the model and the posteriors on all
of it; that is :class:`~m3po_sb3.planning.mpc.ModelPredictiveControl`'s loop (random actions first, a refit
every ``train_freq`` env steps, all the data kept).

How the latent follows in-episode switches: the posterior is re-inferred at every control step from the window
of the last ``L`` transitions the history observation holds, and held fixed along the imagined horizon (a task
lasts 15 s, much longer than a plan). After a switch the window mixes the old and the new task for ``L − 1``
steps; from then on it holds the new task alone. The paper instead fits a fresh posterior by gradient steps on
the transitions of the current episode, which cannot forget a task the episode has left.

Planning (PETS's choices where the paper gives none of its own):

- CEM by default (PETS), MPPI or random shooting as options (:mod:`~m3po_sb3.planning.planners`); the
  planner's default sizes (horizon 10, 500 candidates, 5 iterations, 50 elites, ``alpha = 0.1``); PETS's
  horizon was 30 for HalfCheetah, a ``planner_kwargs`` away;
- ``particles = 20`` rollouts per candidate, their returns averaged (PETS). Trajectory sampling "TS∞": a
  particle keeps its ensemble member and its draw of ``z`` from the posterior for the whole horizon, so the
  spread of the returns carries both the model's and the latent's uncertainty;
- each particle's observation change is a draw of its member's Gaussian; the reward is its member's mean (the
  planner sums expected rewards);
- the particles' noise comes from the model's own generator, reseeded with ``noise_seed`` at every control step
  (common random numbers: candidates are compared on the same noise, and a deterministic ``predict`` is a
  function of the observation);
- the learned reward and the env's ``termination_fn``, as for every planning agent
  (:mod:`~m3po_sb3.planning.mpc`).
"""

from typing import Any, Optional

import numpy as np
import torch as th
from stable_baselines3.common.type_aliases import GymEnv

from m3po_sb3.history.layout import HistoryLayout
from m3po_sb3.models.latent_dynamics import LatentDynamicsModel
from m3po_sb3.planning.mpc import MPCPolicy, ModelPredictiveControl, PlanningModel, TransitionData, Window
from m3po_sb3.planning.planners import check_positive_integers


def transition_histories(layout: HistoryLayout, data: TransitionData) -> th.Tensor:
    """
    The flat history each real transition was taken from: the last ``L`` steps of its episode before it (zero
    padding with mask 0 before the episode's first step) and its observation, actions in the scaled space the
    data keeps.

    :return: ``(T, layout.size)``
    """
    length, rows = layout.history_length, th.arange(len(data), device=data.episodes.device)
    past = rows[:, None] - length + th.arange(length, device=rows.device)  # oldest first
    index = past.clamp_min(0)
    mask = ((past >= 0) & (data.episodes[index] == data.episodes[:, None])).to(data.observations.dtype)
    return layout.join(
        data.observations,
        data.observations[index] * mask[..., None],
        data.actions[index] * mask[..., None],
        data.rewards[index] * mask,
        mask,
    )


class GHPMDPModel(PlanningModel):
    """
    GHP-MDP's latent-variable model as the planner's model (module docstring): ``fit`` maximises the ELBO on all the
    real data, ``adapt`` infers ``q(z | window)``, ``step`` advances one step of trajectory sampling.

    :param history_layout: the histories' layout
    :param learning_rate: Adam's learning rate
    :param epochs: passes over all the data per refit (PETS: 5)
    :param batch_size: minibatch size per member (PETS: 32)
    :param noise_seed: seed of the particles' noise, reused at every control step
    :param model_kwargs: :class:`~m3po_sb3.models.latent_dynamics.LatentDynamicsModel`'s arguments (the latent's
        size and structure, the ensemble, the KL weight); its defaults are PETS's network (5 members of 3 × 200
        swish units) with a flat latent of 8 dimensions
    """

    def __init__(
        self,
        history_layout: HistoryLayout,
        learning_rate: float,
        epochs: int = 5,
        batch_size: int = 32,
        noise_seed: int = 0,
        **model_kwargs: Any,
    ):
        super().__init__(history_layout, learning_rate)
        check_positive_integers(epochs=epochs, batch_size=batch_size)
        self.epochs, self.batch_size, self.noise_seed = int(epochs), int(batch_size), int(noise_seed)
        # The policy moves its modules to the agent's device.
        self.latent_model = LatentDynamicsModel(history_layout, learning_rate=learning_rate, device="cpu", **model_kwargs)
        self._generator: Optional[th.Generator] = None

    @property
    def optimizer(self) -> th.optim.Optimizer:
        """The latent model's Adam (the planning agents save their model's optimizer, so a resumed run refits as one run)."""
        return self.latent_model.optimizer

    def fit(self, data: TransitionData) -> dict[str, float]:
        histories = transition_histories(self.history_layout, data)
        # The bootstraps and shuffles draw from PyTorch's generator, which SB3's ``seed`` sets.
        rng = np.random.default_rng(int(th.randint(2**31 - 1, ()).item()))
        arrays = (x.cpu().numpy() for x in (histories, data.actions, data.next_observations, data.rewards))
        statistics = self.latent_model.fit(*arrays, epochs=self.epochs, batch_size=self.batch_size, rng=rng)
        self.fitted.fill_(True)
        return statistics

    def adapt(self, window: Window) -> dict[str, Any]:
        """:return: the posterior ``q(z | window)`` (mean and variance, ``(1, latent_dim)``), no particle state yet"""
        history = self.history_layout.join(window.next_observations[:, -1], window.observations, window.actions, window.rewards, window.mask)
        mean, variance = self.latent_model.posterior(history)
        device = mean.device
        if self._generator is None or self._generator.device != device:
            self._generator = th.Generator(device=device)
        self._generator.manual_seed(self.noise_seed)
        return dict(mean=mean, variance=variance, z=None)

    def step(self, context: dict[str, Any], observations: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor, dict[str, Any]]:
        """
        One step of every particle: row ``r`` is propagated by member ``r mod B`` with its own draw of ``z``, drawn
        from the posterior at the first step and kept (TS∞).
        """
        model, n = self.latent_model, len(observations)
        z = context["z"]
        if z is None:
            noise = th.randn((n, model.latent_dim), generator=self._generator, device=observations.device)
            z = context["mean"] + context["variance"].sqrt() * noise
        prediction = model.predict(*(self._by_member(x) for x in (observations, actions, z)), generator=self._generator)
        next_observations = observations + self._by_row(prediction["delta"], n)
        rewards = self._by_row(prediction["reward_mean"], n)[:, 0] * model.rew_std + model.rew_mean
        return next_observations, rewards, dict(context, z=z)

    def _by_member(self, x: th.Tensor) -> th.Tensor:
        """``(n, d)`` rows to ``(B, ceil(n / B), d)``, row ``r`` in group ``r mod B`` (the last rows padded by repeats)."""
        members = self.latent_model.ensemble_size
        padding = -len(x) % members
        x = th.cat([x, x[:1].expand(padding, -1)]) if padding else x
        return x.reshape(len(x) // members, members, x.shape[-1]).transpose(0, 1)

    @staticmethod
    def _by_row(x: th.Tensor, n: int) -> th.Tensor:
        """Inverse of :meth:`_by_member`."""
        return x.transpose(0, 1).reshape(-1, x.shape[-1])[:n]


class GHPMDP(ModelPredictiveControl):
    """
    GHP-MDP on stable-baselines3: CEM over PETS-style trajectory sampling of a latent-variable model whose latent is
    re-inferred from the history's window at every step (see :mod:`m3po_sb3.agents.ghp_mdp`).

    :param policy: ``"MPCPolicy"``
    :param env: the env (an id is made and wrapped in ``HistoryObservation``); one env
    :param learning_rate: Adam's learning rate of the model and the posterior's encoder (PETS: 1e-3)
    :param model_kwargs: :class:`GHPMDPModel`'s arguments
    :param planner: ``"cem"`` (default, PETS), ``"mppi"`` or ``"random"``
    :param particles: model rollouts per candidate sequence (PETS: 20)
    :param learning_starts: random-action steps before planning starts (PETS: one episode)
    :param train_freq: env steps between refits (PETS: one episode)
    :param policy_kwargs: extra arguments of :class:`~m3po_sb3.planning.mpc.MPCPolicy`
    :param kwargs: further :class:`~m3po_sb3.planning.mpc.ModelPredictiveControl` arguments
    """

    model_class = GHPMDPModel

    def __init__(
        self,
        policy: str | type[MPCPolicy],
        env: GymEnv | str | None,
        learning_rate: float = 1e-3,
        model_kwargs: dict[str, Any] | None = None,
        planner: str = "cem",
        particles: int = 20,
        learning_starts: int = 1000,
        train_freq: int = 1000,
        policy_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        check_positive_integers(particles=particles)
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            model_kwargs=model_kwargs,
            planner=planner,
            learning_starts=learning_starts,
            train_freq=train_freq,
            policy_kwargs=dict(policy_kwargs or {}, particles=particles),
            **kwargs,
        )
