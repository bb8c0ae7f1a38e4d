"""Sampling-based trajectory optimisers for model-predictive control: random shooting, the cross-entropy method
(CEM) and model-predictive path-integral control (MPPI).

All three share one interface: :meth:`Planner.plan` takes ``evaluate``, a function that maps a batch of
candidate action sequences ``(n, horizon, act_dim)`` (within the action bounds) to their predicted returns
``(n,)``, and returns the chosen sequence ``(horizon, act_dim)``. What predicts the returns (a learned model, a
simulator, a known cost) is the caller's business, so a planner knows nothing about models or agents.

``warm_start`` is the plan chosen at the previous control step: its first action has been executed, so the
planner shifts it one step forward and fills the freed last step with the middle of the action bounds (the
nominal "no information" action) before using it as its starting point.

- :class:`RandomShooting`: uniform sequences, the best one (Nagabandi et al. 2018; learning_to_adapt's default
  with 500 sequences of horizon 10). The shifted warm start joins the candidates.
- :class:`CEM`: a diagonal Gaussian over sequences refitted to its ``n_elites`` best samples (the true top-k,
  ``torch.topk``; learning_to_adapt's ``argsort(...) < k`` selected by position, not by rank), smoothed by
  ``alpha`` (PETS: ``new = alpha · old + (1 − alpha) · elites``); the plan is the final mean.
- :class:`MPPI`: information-theoretic MPPI (Williams et al. 2015, 2017): Gaussian perturbations of a nominal
  sequence, weights ``softmax(returns / temperature)`` (shifted by the maximum, which leaves the softmax
  unchanged and keeps ``exp`` finite), the nominal sequence replaced by the weighted average of the samples.

Every random number comes from the planner's ``torch.Generator`` (``seed``), so a seeded planner is reproducible.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import torch as th

Evaluate = Callable[[th.Tensor], th.Tensor]


def check_positive_integers(**values: Any) -> None:
    """:raises ValueError: naming the first value that is not a positive integer (a bool is not one)"""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


class Planner(ABC):
    """
    Base class of the planners: bounds, sizes, seeding, warm start and the checks of what ``evaluate`` returns.

    :param action_low: lower action bound, shape ``(act_dim,)``
    :param action_high: upper action bound, shape ``(act_dim,)``
    :param horizon: number of steps of a planned sequence
    :param n_candidates: action sequences evaluated per iteration
    :param iterations: rounds of sampling and evaluation per call of :meth:`plan`
    :param seed: seed of the planner's ``torch.Generator`` (``None``: drawn from PyTorch's global generator)
    :param device: device of the sampled sequences
    """

    def __init__(
        self,
        action_low: np.ndarray | th.Tensor,
        action_high: np.ndarray | th.Tensor,
        horizon: int = 10,
        n_candidates: int = 500,
        iterations: int = 1,
        seed: int | None = None,
        device: th.device | str = "cpu",
    ):
        low = th.as_tensor(np.asarray(action_low, dtype=np.float32), device=device).reshape(-1)
        high = th.as_tensor(np.asarray(action_high, dtype=np.float32), device=device).reshape(-1)
        if low.shape != high.shape:
            raise ValueError(f"action bounds must have the same shape, got {tuple(low.shape)} and {tuple(high.shape)}")
        if not (th.isfinite(low).all() and th.isfinite(high).all()):
            raise ValueError("action bounds must be finite (planners sample within them)")
        if not (low < high).all():
            raise ValueError(f"action_low must be below action_high in every dimension, got {low.tolist()} and {high.tolist()}")
        check_positive_integers(horizon=horizon, n_candidates=n_candidates, iterations=iterations)
        self.action_low, self.action_high = low, high
        self.horizon, self.n_candidates, self.iterations = int(horizon), int(n_candidates), int(iterations)
        self.device = th.device(device)
        self.generator = th.Generator(device=self.device)
        self.generator.manual_seed(int(seed) if seed is not None else int(th.randint(2**62, ()).item()))

    @property
    def act_dim(self) -> int:
        return self.action_low.shape[0]

    @property
    def action_center(self) -> th.Tensor:
        """The middle of the action bounds, the nominal action where no plan exists yet."""
        return (self.action_low + self.action_high) / 2

    def plan(self, evaluate: Evaluate, warm_start: th.Tensor | None = None) -> th.Tensor:
        """
        :param evaluate: maps candidate sequences ``(n, horizon, act_dim)`` to their predicted returns ``(n,)``
        :param warm_start: the plan chosen at the previous step ``(horizon, act_dim)``, shifted here by one step
            (``None``: start from scratch)
        :return: the chosen action sequence ``(horizon, act_dim)``, within the bounds
        """
        nominal = self.shifted(warm_start) if warm_start is not None else None
        with th.no_grad():
            return self._plan(lambda candidates: self._evaluated(evaluate, candidates), nominal)

    @abstractmethod
    def _plan(self, evaluate: Evaluate, nominal: th.Tensor | None) -> th.Tensor:
        """:param nominal: the shifted warm start, or ``None``"""

    def shifted(self, plan: th.Tensor) -> th.Tensor:
        """:return: ``plan`` advanced by one executed step, the last step filled with :attr:`action_center`"""
        plan = th.as_tensor(plan, dtype=th.float32, device=self.device)
        if plan.shape != (self.horizon, self.act_dim):
            raise ValueError(f"warm_start must have shape ({self.horizon}, {self.act_dim}), got {tuple(plan.shape)}")
        if not th.isfinite(plan).all():
            raise ValueError("warm_start holds non-finite actions")
        return th.cat([plan[1:], self.action_center[None]]).clamp(self.action_low, self.action_high)

    def _clip(self, sequences: th.Tensor) -> th.Tensor:
        return th.maximum(th.minimum(sequences, self.action_high), self.action_low)

    def _uniform(self, n: int) -> th.Tensor:
        unit = th.rand((n, self.horizon, self.act_dim), generator=self.generator, device=self.device)
        return self.action_low + unit * (self.action_high - self.action_low)

    def _normal(self, n: int) -> th.Tensor:
        return th.randn((n, self.horizon, self.act_dim), generator=self.generator, device=self.device)

    @staticmethod
    def _evaluated(evaluate: Evaluate, candidates: th.Tensor) -> th.Tensor:
        returns = evaluate(candidates)
        if not isinstance(returns, th.Tensor) or returns.shape != (candidates.shape[0],):
            shape = tuple(returns.shape) if isinstance(returns, th.Tensor) else type(returns).__name__
            raise ValueError(f"evaluate must return a tensor of shape ({candidates.shape[0]},), one return per candidate, got {shape}")
        if not th.isfinite(returns).all():
            raise ValueError("evaluate returned non-finite returns (a diverging model?)")
        return returns.to(candidates.device, th.float32)


class RandomShooting(Planner):
    """
    Random shooting: ``iterations × n_candidates`` uniform sequences (plus the shifted warm start), the best one.
    The parameters are :class:`Planner`'s.
    """

    def _plan(self, evaluate: Evaluate, nominal: th.Tensor | None) -> th.Tensor:
        candidates = [self._uniform(self.n_candidates) for _ in range(self.iterations)]
        if nominal is not None:
            candidates.append(nominal[None])
        candidates = th.cat(candidates)
        return candidates[th.argmax(evaluate(candidates))]


class CEM(Planner):
    """
    Cross-entropy method over action sequences: sample from a diagonal Gaussian (clipped to the bounds), refit
    it to the ``n_elites`` best samples, ``iterations`` times; the plan is the final mean.

    :param n_elites: number of best samples the Gaussian is refitted to (the true top-k)
    :param alpha: weight of the old mean and variance in each refit (PETS' smoothing; 0: the elites' alone)
    :param initial_std: the Gaussian's initial standard deviation as a fraction of the action range
        (PETS: a quarter, variance ``(high − low)² / 16``)
    :param kwargs: see :class:`Planner`
    """

    def __init__(
        self,
        action_low: np.ndarray | th.Tensor,
        action_high: np.ndarray | th.Tensor,
        horizon: int = 10,
        n_candidates: int = 500,
        iterations: int = 5,
        n_elites: int = 50,
        alpha: float = 0.1,
        initial_std: float = 0.25,
        seed: int | None = None,
        device: th.device | str = "cpu",
    ):
        super().__init__(action_low, action_high, horizon, n_candidates, iterations, seed, device)
        if isinstance(n_elites, bool) or not isinstance(n_elites, (int, np.integer)) or not 1 <= n_elites <= self.n_candidates:
            raise ValueError(f"n_elites must be an integer in [1, n_candidates={self.n_candidates}], got {n_elites!r}")
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1), got {alpha!r}")
        if not (np.isfinite(initial_std) and initial_std > 0):
            raise ValueError(f"initial_std must be positive and finite, got {initial_std!r}")
        self.n_elites, self.alpha, self.initial_std = int(n_elites), float(alpha), float(initial_std)

    def _plan(self, evaluate: Evaluate, nominal: th.Tensor | None) -> th.Tensor:
        mean = nominal if nominal is not None else self.action_center.expand(self.horizon, -1).clone()
        std = (self.initial_std * (self.action_high - self.action_low)).expand(self.horizon, -1).clone()
        for _ in range(self.iterations):
            candidates = self._clip(mean + std * self._normal(self.n_candidates))
            elites = candidates[th.topk(evaluate(candidates), self.n_elites).indices]
            mean = self.alpha * mean + (1 - self.alpha) * elites.mean(0)
            std = self.alpha * std + (1 - self.alpha) * elites.std(0, unbiased=False)
        return self._clip(mean)


class MPPI(Planner):
    """
    Model-predictive path-integral control (Williams et al. 2015, 2017): perturb the nominal sequence with
    Gaussian noise, weight each sample by ``softmax(returns / temperature)`` and replace the nominal sequence by
    the weighted average, ``iterations`` times. Without a warm start the nominal sequence is the middle of the
    bounds.

    :param noise_std: standard deviation of the perturbations as a fraction of the action range
    :param temperature: ``λ`` of MPPI: small values follow the best samples, large values average them all; in
        units of the returns ``evaluate`` gives
    :param kwargs: see :class:`Planner`
    """

    def __init__(
        self,
        action_low: np.ndarray | th.Tensor,
        action_high: np.ndarray | th.Tensor,
        horizon: int = 10,
        n_candidates: int = 500,
        iterations: int = 1,
        noise_std: float = 0.25,
        temperature: float = 1.0,
        seed: int | None = None,
        device: th.device | str = "cpu",
    ):
        super().__init__(action_low, action_high, horizon, n_candidates, iterations, seed, device)
        for name, value in (("noise_std", noise_std), ("temperature", temperature)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        self.noise_std, self.temperature = float(noise_std), float(temperature)

    def _plan(self, evaluate: Evaluate, nominal: th.Tensor | None) -> th.Tensor:
        mean = nominal if nominal is not None else self.action_center.expand(self.horizon, -1).clone()
        std = self.noise_std * (self.action_high - self.action_low)
        for _ in range(self.iterations):
            candidates = self._clip(mean + std * self._normal(self.n_candidates))
            returns = evaluate(candidates)
            weights = th.softmax((returns - returns.max()) / self.temperature, dim=0)
            mean = th.einsum("n,nha->ha", weights, candidates)
        return mean


PLANNERS: dict[str, type[Planner]] = {"random": RandomShooting, "cem": CEM, "mppi": MPPI}
