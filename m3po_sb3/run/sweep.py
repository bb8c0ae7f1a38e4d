"""Run a grid of independent training runs (algorithm × env × seed) in parallel.

Each run is one call of :func:`m3po_sb3.run.train.main` with its own command line, in its own process (one torch
thread each, as the runs themselves are the parallelism). By default a local ``ProcessPoolExecutor`` runs
them; ``backend="ray"`` hands them to a Ray cluster instead (Ray is an optional extra)::

    python -m m3po_sb3.sweep --algos m3po m2po sac --envs HalfCheetahFwdBwd-v0 --seeds 0 1 2 --out runs \\
        -- --preset demo --timesteps 6000 --no-progress-bar

Everything after ``--`` goes to every run's ``python -m m3po_sb3.train`` command line; each run writes into
``OUT/ENV/ALGO/seed_SEED``. Running the same sweep again skips its finished runs and resumes the unfinished
ones from their checkpoints (``--resume``); Ctrl-C stops every run with a checkpoint.
"""

import argparse
import importlib
import json
import multiprocessing
import os
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import product
from pathlib import Path

BACKENDS = ("process", "ray")


def run_dir(out: str | os.PathLike, env: str, algo: str, seed: int) -> Path:
    """:return: the output folder of one run of a sweep rooted at ``out``"""
    return Path(out) / env / algo / f"seed_{seed}"


def grid(
    algos: Sequence[str],
    envs: Sequence[str],
    seeds: Sequence[int],
    out: str | os.PathLike,
    train_args: Sequence[str] = (),
    algo_args: Mapping[str, Sequence[str]] | None = None,
) -> list[list[str]]:
    """
    :param algos: algorithms (``--algo`` of :mod:`m3po_sb3.run.train`)
    :param envs: env ids
    :param seeds: random seeds
    :param out: root output folder
    :param train_args: further arguments of every run's command line
    :param algo_args: further arguments of one algorithm's runs, after ``train_args`` (so a value option there,
        e.g. ``--timesteps``, overrides the common one)
    :return: one :mod:`m3po_sb3.run.train` command line per run, envs outermost
    """
    algo_args = algo_args or {}
    return [
        ["--env", env, "--algo", algo, "--seed", str(seed), "--out", str(run_dir(out, env, algo, seed)), *train_args, *algo_args.get(algo, ())]
        for env, algo, seed in product(envs, algos, seeds)
    ]


# Settings that may differ between a run and its resumption.
UNCHECKED_SETTINGS = ("progress_bar", "torch_threads", "verbose")


def run_one(argv: Sequence[str]) -> str:
    """
    One run in the current process, with one torch thread: skipped if its folder holds it finished, resumed
    if it holds it unfinished, else started.

    :param argv: its :mod:`m3po_sb3.run.train` command line, with ``--out``
    :return: its output folder
    """
    import torch as th

    from m3po_sb3.run import folders, train

    th.set_num_threads(1)
    parser = train.build_parser()
    args = parser.parse_args(list(argv))
    if args.out is None:
        raise ValueError(f"a sweep's run needs its own --out folder: {' '.join(argv)}")
    if not (Path(args.out) / "config.json").is_file():
        train.train(args)
        return args.out
    # An option absent from an older run's saved command line (made before the option existed) is at its default.
    defaults = {key: parser.get_default(key) for key in vars(args)}
    saved, wanted = (
        {key: value for key, value in json.loads(json.dumps(settings, default=str)).items() if key not in UNCHECKED_SETTINGS}
        for settings in ({**defaults, **folders.read_config(args.out)["args"]}, vars(args))
    )
    if saved != wanted:
        changed = sorted(key for key in wanted.keys() | saved.keys() if saved.get(key) != wanted.get(key))
        raise ValueError(f"{args.out} holds a run with other settings ({', '.join(changed)}): move it away or use another --out")
    status = folders.read_status(args.out)
    if status is None or status["status"] != "finished":
        train.resume(args.out, args.progress_bar)
    return args.out


def run_sweep(argvs: Sequence[Sequence[str]], backend: str = "process", max_workers: int | None = None) -> list[str]:
    """
    Run independent training runs in parallel; the first failure is raised once all runs ended.

    :param argvs: one :mod:`m3po_sb3.run.train` command line per run (e.g. from :func:`grid`)
    :param backend: ``"process"``: a local process pool; ``"ray"``: Ray tasks of one CPU each (on the cluster
        ``ray.init`` connects to, e.g. through ``RAY_ADDRESS``)
    :param max_workers: processes of the local pool (default: the CPU count); ignored by Ray
    :return: the runs' output folders, in the order of ``argvs``
    """
    if backend == "process":
        # "spawn": a forked child would inherit torch's thread pools of the parent.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers, mp_context=context) as pool:
            futures = [pool.submit(run_one, list(argv)) for argv in argvs]
            try:
                errors = [future.exception() for future in futures]
            except KeyboardInterrupt:  # the running runs save a checkpoint and stop; start no other
                pool.shutdown(cancel_futures=True)
                raise
        if any(errors):
            raise next(error for error in errors if error is not None)
        return [future.result() for future in futures]
    if backend == "ray":
        ray = _import_ray()
        ray.init(ignore_reinit_error=True)
        remote_run = ray.remote(num_cpus=1)(run_one)
        return ray.get([remote_run.remote(list(argv)) for argv in argvs])
    raise ValueError(f"unknown backend {backend!r}; one of {', '.join(BACKENDS)}")


def _import_ray():  # noqa: ANN202 (the module's type is ray's)
    try:
        return importlib.import_module("ray")
    except ImportError as error:
        raise ImportError("the ray backend needs Ray, an optional extra: pip install 'ray[default]' (or use backend='process')") from error


def build_parser() -> argparse.ArgumentParser:
    """:return: the command line parser of ``python -m m3po_sb3.sweep``"""
    parser = argparse.ArgumentParser(prog="python -m m3po_sb3.sweep", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--algos", nargs="+", required=True)
    parser.add_argument("--envs", nargs="+", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, required=True)
    parser.add_argument("--out", required=True, help="root output folder")
    parser.add_argument("--backend", choices=BACKENDS, default="process")
    parser.add_argument("--workers", type=int, default=None, help="local processes (default: the CPU count)")
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help="after --: arguments of every run")
    return parser


def main(argv: Sequence[str] | None = None) -> list[str]:
    """
    :param argv: command line arguments (default: ``sys.argv[1:]``)
    :return: the runs' output folders
    """
    args = build_parser().parse_args(argv)
    train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    try:
        return run_sweep(grid(args.algos, args.envs, args.seeds, args.out, train_args), args.backend, args.workers)
    except KeyboardInterrupt:
        sys.exit("\nInterrupted: run the same command again to resume the unfinished runs")


if __name__ == "__main__":
    main()
