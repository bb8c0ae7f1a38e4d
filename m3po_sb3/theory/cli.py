"""``python -m m3po_sb3.theory``: check every return bound on random MDPs (:mod:`m3po_sb3.theory.exact`) and print
how often each held and how tight it was; optionally search adversarially and plot the bounds."""

import argparse
from typing import Optional, Sequence

import numpy as np

from m3po_sb3.theory.bounds import BOUND_NAMES, all_bounds
from m3po_sb3.theory.exact import adversarial_search, random_checks, summarize

def plot_bounds(path: str, eps_m: float = 0.01, eps_pi: float = 0.01, r_max: float = 1.0) -> None:
    """
    Save a PNG of every bound against ``k`` (at gamma = 0.9 and 0.99) and against ``gamma`` (at k = 1 and 5).
    Needs matplotlib.

    :param path: where to write the PNG
    :param eps_m: model error of the plot
    :param eps_pi: policy divergence of the plot
    :param r_max: reward bound of the plot
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {
        "full_rollout": "Janner Th. 4.1 (full)",
        "janner_branched": "Janner Th. 4.2 (branched)",
        "branched": "M3PO Th. 3, eq. 11 (printed)",
        "branched_sum": "M3PO Th. 3, eq. 20 sum",
    }
    ks = np.arange(1, 31)
    gammas = np.linspace(0.0, 0.99, 100)
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for gamma, style in ((0.9, "-"), (0.99, "--")):
        for index, name in enumerate(BOUND_NAMES):
            values = [all_bounds(gamma, int(k), eps_m, eps_pi, r_max)[name] for k in ks]
            axes[0].plot(ks, values, style, color=f"C{index}", label=labels[name] if style == "-" else None)
    for k, style in ((1, "-"), (5, "--")):
        for index, name in enumerate(BOUND_NAMES):
            values = [all_bounds(float(gamma), k, eps_m, eps_pi, r_max)[name] for gamma in gammas]
            axes[1].plot(gammas, values, style, color=f"C{index}")
    axes[0].set(xlabel="k", ylabel="bound C", yscale="log", title="against k (solid γ=0.9, dashed γ=0.99)")
    axes[1].set(xlabel="γ", yscale="log", title="against γ (solid k=1, dashed k=5)")
    axes[0].legend(fontsize=7)
    figure.suptitle(f"ε_m = {eps_m}, ε_π = {eps_pi}, r_max = {r_max}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=72)
    plt.close(figure)


def build_parser() -> argparse.ArgumentParser:
    """:return: the command line parser of ``python -m m3po_sb3.theory``"""
    parser = argparse.ArgumentParser(
        prog="python -m m3po_sb3.theory", description=" ".join(__doc__.strip().split("\n\n")[0].split()), allow_abbrev=False
    )
    parser.add_argument("--n-mdps", type=int, default=200, help="number of random MDPs")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--adversarial-steps", type=int, default=0, help="mutations per adversarial restart (0: skip)")
    parser.add_argument("--adversarial-restarts", type=int, default=8, help="adversarial restarts per bound")
    parser.add_argument(
        "--adversarial-gamma", type=float, nargs=2, default=(0.5, 0.95), metavar=("LOW", "HIGH"),
        help="range of gamma searched adversarially (near 0 every bound is trivially tight)",
    )
    parser.add_argument("--plot", type=str, default=None, help="write a PNG of the bounds against k and gamma here")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    """
    ``python -m m3po_sb3.theory``: check every bound on random MDPs and print, per bound, how often it held and
    how tight it was; optionally search adversarially and plot the bounds.

    :param argv: command-line arguments (default: ``sys.argv[1:]``)
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.n_mdps < 1:
        parser.error("--n-mdps must be at least 1")

    print(f"{args.n_mdps} random MDPs (seed {args.seed}); ratio = |gap| / bound, above 1 means violated")
    print(f"{'bound':<16} {'held':>7} {'median ratio':>13} {'worst ratio':>12}")
    for name, held, median, worst in summarize(random_checks(args.n_mdps, args.seed)):
        print(f"{name:<16} {held:>7.1%} {median:>13.4f} {worst:>12.4f}")
    if args.adversarial_steps > 0:
        low, high = args.adversarial_gamma
        print(
            f"adversarial search: {args.adversarial_restarts} restarts x {args.adversarial_steps} steps per bound, "
            f"gamma in [{low}, {high}]"
        )
        print(f"{'bound':<16} {'worst ratio':>12} {'gamma':>6} {'k':>3} {'eps_m':>9} {'eps_pi':>9} {'states':>6}")
        for name in BOUND_NAMES:
            found = adversarial_search(
                name, args.adversarial_restarts, args.adversarial_steps, seed=args.seed, gamma_range=(low, high)
            )
            check, n_states = found.check, len(found.problem["initial"])
            print(
                f"{name:<16} {found.ratio:>12.4f} {check.gamma:>6.3f} {check.k:>3d} "
                f"{check.eps_m:>9.2e} {check.eps_pi:>9.2e} {n_states:>6d}"
            )
    if args.plot:
        plot_bounds(args.plot)
        print(f"plot written to {args.plot}")
