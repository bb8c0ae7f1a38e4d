"""The theory of the paper: its return-discrepancy bounds (:mod:`~m3po_sb3.theory.bounds`), their exact check on
finite MDPs (:mod:`~m3po_sb3.theory.exact`) and the command line that runs it (``python -m m3po_sb3.theory``)."""

from m3po_sb3.theory.bounds import (
    BOUND_NAMES,
    all_bounds,
    branched_rollout_bound,
    branched_rollout_bound_sum,
    corollary1_model_terms,
    full_rollout_bound,
    janner_branched_bound,
)
from m3po_sb3.theory.cli import build_parser, main, plot_bounds
from m3po_sb3.theory.exact import (
    BOUND_TOLERANCE,
    TRUNCATION_ERROR,
    AdversarialResult,
    BoundCheck,
    adversarial_search,
    check_bounds,
    random_checks,
    random_problem,
    summarize,
    truncation_horizon,
)

__all__ = [
    "BOUND_NAMES",
    "BOUND_TOLERANCE",
    "TRUNCATION_ERROR",
    "AdversarialResult",
    "BoundCheck",
    "adversarial_search",
    "all_bounds",
    "branched_rollout_bound",
    "branched_rollout_bound_sum",
    "build_parser",
    "check_bounds",
    "corollary1_model_terms",
    "full_rollout_bound",
    "janner_branched_bound",
    "main",
    "plot_bounds",
    "random_checks",
    "random_problem",
    "summarize",
    "truncation_horizon",
]
