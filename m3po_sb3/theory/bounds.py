"""
Return-discrepancy bounds of the M3PO paper (Hiraoka et al., 2021, appendix A.1-A.3), in closed form.

The bounds say how far the return of a policy ``pi`` in the real MDP can be from its return estimated with a
learned model ``p_theta``, when the model is rolled out from states of a data policy ``pi_D``:

- :func:`full_rollout_bound`: Janner et al. (2019), Theorem 4.1 (full model rollouts from the start state);
- :func:`janner_branched_bound`: Janner et al. (2019), Theorem 4.2 (k-step rollouts branched from real states);
- :func:`branched_rollout_bound`: the paper's Theorem 3 / Theorem 2 closed form, exactly as printed (eq. 11, 24);
- :func:`branched_rollout_bound_sum`: the sum that closed form was derived from (first line of eq. 20);
- :func:`corollary1_model_terms`: the model-error terms compared by Corollary 1 (eq. 25-27).

Throughout, ``eps_m`` is an expected total-variation distance between the real and the model dynamics under the
data distribution, ``eps_pi`` a maximal total-variation distance between ``pi`` and ``pi_D``, and ``r_max`` a bound
on ``|r(s, a)|``.
"""

import math
import numbers
from typing import Dict, Tuple

BOUND_NAMES = ("full_rollout", "janner_branched", "branched", "branched_sum")


def check_gamma(gamma: float) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma must be a real number in [0, 1) (the returns diverge at 1), got {gamma!r}")
    return float(gamma)


def check_k(k: int) -> int:
    # k = 0 builds no model dataset at all (seed, A.1 and footnote 4), so it is excluded.
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be a positive integer (k = 0 generates no model data), got {k!r}")
    return int(k)


def _check_nonnegative(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite non-negative number (a distance), got {value!r}")
    return float(value)


def check_r_max(r_max: float) -> float:
    if isinstance(r_max, bool) or not isinstance(r_max, numbers.Real) or not 0.0 < r_max < math.inf:
        raise ValueError(f"r_max must be a finite positive number (a bound on |r|), got {r_max!r}")
    return float(r_max)


def _check_errors(eps_m: float, eps_pi: float, r_max: float) -> Tuple[float, float, float]:
    return _check_nonnegative("eps_m", eps_m), _check_nonnegative("eps_pi", eps_pi), check_r_max(r_max)


def full_rollout_bound(gamma: float, eps_m: float, eps_pi: float, r_max: float) -> float:
    """
    Janner et al. (2019), Theorem 4.1: for model rollouts that start at the initial state and never stop,
    ``E_pi[R] >= E_model[R] - C`` with

    ``C = 2 r_max (gamma (eps_m + 2 eps_pi) / (1 - gamma)^2 + 2 eps_pi / (1 - gamma))``.

    This is the form published by Janner et al. The seed prints it (eq. 2 and 23) with ``eps_m`` in place of
    ``eps_pi`` in the second term, which contradicts its own Corollary 1 (eq. 25 keeps only
    ``2 gamma eps_m r_max / (1 - gamma)^2`` as the model term of this bound); the printed variant exceeds this one
    by ``4 r_max (eps_m - eps_pi) / (1 - gamma)``.

    :param gamma: discount factor in [0, 1)
    :param eps_m: model error, ``max_t E_{s_t, a_t ~ pi_D}[D_TV(p || p_theta)]``
    :param eps_pi: policy divergence, ``max_s D_TV(pi || pi_D)``
    :param r_max: bound on the absolute reward
    :return: the return discrepancy ``C``
    """
    gamma, (eps_m, eps_pi, r_max) = check_gamma(gamma), _check_errors(eps_m, eps_pi, r_max)
    return 2.0 * r_max * (gamma * (eps_m + 2.0 * eps_pi) / (1.0 - gamma) ** 2 + 2.0 * eps_pi / (1.0 - gamma))


def janner_branched_bound(gamma: float, k: int, eps_m: float, eps_pi: float, r_max: float) -> float:
    """
    Janner et al. (2019), Theorem 4.2 (seed eq. 3): for k-step model rollouts branched from real states,

    ``C = 2 r_max (gamma^(k+1) eps_pi / (1 - gamma)^2 + (gamma^k + 2) eps_pi / (1 - gamma)
    + k (eps_m + 2 eps_pi) / (1 - gamma))``.

    The seed argues that its derivation lets each time step depend on a single branch, whereas a model dataset
    that keeps every intermediate step (eqs. 4-8) mixes several; :func:`check_bounds` measures it against the
    latter, which is how it is used in practice.

    :param gamma: discount factor in [0, 1)
    :param k: rollout length, a positive integer
    :param eps_m: model error, ``max_t E_{s_t, a_t ~ pi_D}[D_TV(p || p_theta)]``
    :param eps_pi: policy divergence, ``max_s D_TV(pi || pi_D)``
    :param r_max: bound on the absolute reward
    :return: the return discrepancy ``C``
    """
    gamma, k, (eps_m, eps_pi, r_max) = check_gamma(gamma), check_k(k), _check_errors(eps_m, eps_pi, r_max)
    return (
        2.0
        * r_max
        * (
            gamma ** (k + 1) * eps_pi / (1.0 - gamma) ** 2
            + (gamma**k + 2.0) * eps_pi / (1.0 - gamma)
            + k * (eps_m + 2.0 * eps_pi) / (1.0 - gamma)
        )
    )


def branched_rollout_bound(gamma: float, k: int, eps_m: float, eps_pi: float, r_max: float) -> float:
    """
    The paper's Theorem 3 (eq. 11), which is also Theorem 2 on the history MDP (eq. 24), exactly as printed:

    ``C = r_max ((1 + gamma^2) / (1 - gamma)^2 * 2 eps_pi
    + (gamma - k gamma^k + (k - 1) gamma^(k+1)) / (1 - gamma)^2 * (eps_pi + eps_m)
    + (gamma^k - gamma) / (gamma - 1) * (eps_pi + eps_m)
    + gamma^k / (1 - gamma) * (k + 1) (eps_pi + eps_m))``.

    It is *not* equal to the sum it was derived from (:func:`branched_rollout_bound_sum`, first line of eq. 20):
    the last step of eq. 20 writes ``2 eps_pi + 2 gamma eps_pi / (1 - gamma)^2`` as
    ``2 eps_pi (1 + gamma^2) / (1 - gamma)^2`` where it is ``2 eps_pi (1 - gamma + gamma^2) / (1 - gamma)^2``, so

    ``branched_rollout_bound - branched_rollout_bound_sum = 2 r_max gamma eps_pi / (1 - gamma)^2 >= 0``.

    The printed form is therefore looser by that amount (zero iff ``gamma == 0`` or ``eps_pi == 0``), and still a
    valid bound wherever the sum is. Both terms with ``gamma^k - gamma`` vanish at ``k = 1``.

    :param gamma: discount factor in [0, 1)
    :param k: rollout length, a positive integer
    :param eps_m: model error, ``max_t E_{s_t, a_t ~ pi_D}[D_TV(p || p_theta)]``
    :param eps_pi: policy divergence, ``max_s D_TV(pi || pi_D)``
    :param r_max: bound on the absolute reward
    :return: the return discrepancy ``C``
    """
    gamma, k, (eps_m, eps_pi, r_max) = check_gamma(gamma), check_k(k), _check_errors(eps_m, eps_pi, r_max)
    eps = eps_pi + eps_m
    return r_max * (
        (1.0 + gamma**2) / (1.0 - gamma) ** 2 * 2.0 * eps_pi
        + (gamma - k * gamma**k + (k - 1) * gamma ** (k + 1)) / (1.0 - gamma) ** 2 * eps
        + (gamma**k - gamma) / (gamma - 1.0) * eps
        + gamma**k / (1.0 - gamma) * (k + 1) * eps
    )


def branched_rollout_bound_sum(gamma: float, k: int, eps_m: float, eps_pi: float, r_max: float) -> float:
    """
    The sum the paper's Theorem 3 was derived from (first line of eq. 20, from eqs. 12, 13, 16 and 19):

    ``C = r_max (2 eps_pi + sum_{t=1}^{k-1} gamma^t (2 t eps_pi + (t + 1) eps)
    + sum_{t=k}^{inf} gamma^t (2 t eps_pi + (k + 1) eps))`` with ``eps = eps_pi + eps_m``.

    The finite part is summed term by term; the tail uses ``sum_{t>=k} gamma^t = gamma^k / (1 - gamma)`` and
    ``sum_{t>=k} t gamma^t = gamma^k (k (1 - gamma) + gamma) / (1 - gamma)^2``, so nothing is truncated.
    In closed form it equals :func:`branched_rollout_bound` minus ``2 r_max gamma eps_pi / (1 - gamma)^2``.

    :param gamma: discount factor in [0, 1)
    :param k: rollout length, a positive integer
    :param eps_m: model error, ``max_t E_{s_t, a_t ~ pi_D}[D_TV(p || p_theta)]``
    :param eps_pi: policy divergence, ``max_s D_TV(pi || pi_D)``
    :param r_max: bound on the absolute reward
    :return: the return discrepancy ``C``
    """
    gamma, k, (eps_m, eps_pi, r_max) = check_gamma(gamma), check_k(k), _check_errors(eps_m, eps_pi, r_max)
    eps = eps_pi + eps_m
    head = sum(gamma**t * (2.0 * t * eps_pi + (t + 1) * eps) for t in range(1, k))
    tail_geometric = gamma**k / (1.0 - gamma)
    tail_arithmetic = gamma**k * (k * (1.0 - gamma) + gamma) / (1.0 - gamma) ** 2
    tail = 2.0 * eps_pi * tail_arithmetic + (k + 1) * eps * tail_geometric
    return r_max * (2.0 * eps_pi + head + tail)


def corollary1_model_terms(gamma: float, eps_m: float, r_max: float) -> Tuple[float, float]:
    """
    Corollary 1 (A.3): the terms of Theorem 1's and Theorem 2's (at ``k = 1``) discrepancies that depend on the
    model error,

    ``C_Th1,m = 2 r_max gamma eps_m / (1 - gamma)^2`` (eq. 25) and ``C_Th2,m = 2 r_max gamma eps_m / (1 - gamma)``
    (eq. 26), so that ``C_Th2,m - C_Th1,m = -2 r_max gamma^2 eps_m / (1 - gamma)^2 <= 0`` (eq. 27).

    :param gamma: discount factor in [0, 1)
    :param eps_m: model error
    :param r_max: bound on the absolute reward
    :return: the pair ``(C_Th1,m, C_Th2,m)``
    """
    gamma, eps_m, r_max = check_gamma(gamma), _check_nonnegative("eps_m", eps_m), check_r_max(r_max)
    return 2.0 * r_max * gamma * eps_m / (1.0 - gamma) ** 2, 2.0 * r_max * gamma * eps_m / (1.0 - gamma)


def all_bounds(gamma: float, k: int, eps_m: float, eps_pi: float, r_max: float) -> Dict[str, float]:
    """
    Every bound at one point, keyed by :data:`BOUND_NAMES`.

    :param gamma: discount factor in [0, 1)
    :param k: rollout length, a positive integer
    :param eps_m: model error
    :param eps_pi: policy divergence
    :param r_max: bound on the absolute reward
    :return: ``{"full_rollout": ..., "janner_branched": ..., "branched": ..., "branched_sum": ...}``
    """
    return {
        "full_rollout": full_rollout_bound(gamma, eps_m, eps_pi, r_max),
        "janner_branched": janner_branched_bound(gamma, k, eps_m, eps_pi, r_max),
        "branched": branched_rollout_bound(gamma, k, eps_m, eps_pi, r_max),
        "branched_sum": branched_rollout_bound_sum(gamma, k, eps_m, eps_pi, r_max),
    }
