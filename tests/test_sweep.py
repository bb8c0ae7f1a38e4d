"""The parallel runner: a tiny two-run sweep in a process pool, and the optional Ray backend."""

import csv
import json
import subprocess
import sys
from itertools import product
from pathlib import Path

import numpy as np
import pytest

from m3po_sb3.run.folders import read_status, write_status
from m3po_sb3.run.sweep import grid, main, run_dir, run_one, run_sweep

TINY_RUN = (
    "--preset demo --epoch-length 50 --timesteps 100 --eval-freq 100 --eval-episodes 1 --gradient-steps 1 "
    "--rollouts-per-step 2 --history-length 2 --diagnostics --no-progress-bar"
).split()


def test_grid_has_one_command_line_per_run(tmp_path):
    argvs = grid(["m3po", "sac"], ["A-v0", "B-v0"], [0, 1], tmp_path, ["--timesteps", "5"])
    assert len(argvs) == 8
    assert argvs[0] == ["--env", "A-v0", "--algo", "m3po", "--seed", "0", "--out", str(run_dir(tmp_path, "A-v0", "m3po", 0)), "--timesteps", "5"]
    assert len({tuple(argv) for argv in argvs}) == 8


def test_algo_args_come_after_the_common_ones_and_override_them(tmp_path):
    from m3po_sb3.run.train import build_parser

    argvs = grid(["m3po", "rl2"], ["A-v0"], [0], tmp_path, ["--timesteps", "5"], {"rl2": ["--timesteps", "50", "--history-length", "1"]})
    assert argvs[0][-2:] == ["--timesteps", "5"] and argvs[1][-4:] == ["--timesteps", "50", "--history-length", "1"]
    assert build_parser().parse_args(argvs[1]).timesteps == 50


def test_two_runs_in_a_process_pool(tmp_path):
    outs = main(["--algos", "m3po", "sac", "--envs", "Pendulum-v1", "--seeds", "0", "--out", str(tmp_path), "--workers", "2", "--", *TINY_RUN])
    assert outs == [str(run_dir(tmp_path, "Pendulum-v1", algo, 0)) for algo in ("m3po", "sac")]
    for out in outs:
        for name in ("eval.csv", "diagnostics.csv", "model.zip", "config.json"):
            assert (Path(out) / name).exists()


def test_a_sweep_run_again_resumes_unfinished_runs_and_skips_finished_ones(tmp_path, monkeypatch, ctrl_c_at):
    argv = ["--env", "Pendulum-v1", "--algo", "m3po", "--out", str(tmp_path), *TINY_RUN, "--verbose", "0", "--save-freq", "50"]
    ctrl_c_at(70)
    run_one(argv)
    monkeypatch.undo()
    assert read_status(tmp_path) == dict(status="interrupted", num_timesteps=70, total_timesteps=100)
    run_one(argv)  # resumed from step 70
    assert read_status(tmp_path) == dict(status="finished", num_timesteps=100, total_timesteps=100)
    saved = (tmp_path / "model.zip").stat().st_mtime_ns
    run_one(argv)  # finished: skipped
    assert (tmp_path / "model.zip").stat().st_mtime_ns == saved
    with pytest.raises(ValueError, match="other settings \\(seed\\)"):
        run_one([*argv, "--seed", "1"])
    # A run made before an option existed (its saved command line lacks it) is the same run when the option
    # is left at its default, and another one when it is given.
    config = json.loads((tmp_path / "config.json").read_text())
    del config["args"]["model_patience"], config["args"]["device"]  # defaults None and "auto"
    (tmp_path / "config.json").write_text(json.dumps(config))
    run_one(argv)  # finished: skipped
    assert (tmp_path / "model.zip").stat().st_mtime_ns == saved
    with pytest.raises(ValueError, match="other settings \\(model_patience\\)"):
        run_one([*argv, "--model-patience", "20"])



def run_compare(argv: list[str]) -> str:
    """:return: what ``python benchmarks/compare.py ARGV`` prints (its tables), run as a user runs it"""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "compare.py"
    return subprocess.run([sys.executable, str(script), *argv], capture_output=True, text=True, check=True).stdout

def test_compare_aggregates_runs_trained_without_diagnostics(tmp_path):
    for algo, seed in product(["m3po", "sac"], [0, 1]):
        folder = run_dir(tmp_path / "runs", "Pendulum-v1", algo, seed)
        folder.mkdir(parents=True)
        (folder / "eval.csv").write_text(f"timesteps,mean_return,std_return,n_episodes\n50,{seed},0,1\n100,{2 + seed},0,1\n")
        write_status(folder, "finished", 100, 100)
    tables = run_compare(
        ["--aggregate-only", "--envs", "Pendulum-v1", "--algos", "m3po", "sac", "--seeds", "0", "1", "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "results")]
    )
    assert "| m3po | 2 | 0.5 ± 0.5 | 2.5 ± 0.5 |" in tables and "diagnostics" not in tables
    assert (tmp_path / "results" / "Pendulum-v1_returns.png").is_file() and not (tmp_path / "results" / "diagnostics.csv").exists()


def test_compare_writes_the_iqm_over_seeds_with_bootstrap_intervals(tmp_path):
    pytest.importorskip("rliable")
    returns = {"m3po": [[0, 10], [4, 30], [8, 20], [100, 90]], "rl2": [[1, 5], [2, 6], [3, 7], [4, 8]]}  # [seed][step]
    for algo, seeds in returns.items():
        for seed, (first, second) in enumerate(seeds):
            folder = run_dir(tmp_path / "runs", "A-v0", algo, seed)
            folder.mkdir(parents=True)
            (folder / "eval.csv").write_text(f"timesteps,mean_return,std_return,n_episodes\n50,{first},0,1\n100,{second},0,1\n")
            write_status(folder, "finished", 100, 100)
    argv = ["--aggregate-only", "--envs", "A-v0", "--algos", "m3po", "rl2", "--seeds", "0", "1", "2", "3"]
    tables = run_compare([*argv, "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "results")])
    rows = list(csv.DictReader(open(tmp_path / "results" / "iqm.csv")))
    assert [(row["algo"], row["timesteps"]) for row in rows] == [("m3po", "50"), ("m3po", "100"), ("rl2", "50"), ("rl2", "100")]
    for row, seeds in zip(rows, [returns["m3po"], returns["m3po"], returns["rl2"], returns["rl2"]]):
        values = sorted(seed[0 if row["timesteps"] == "50" else 1] for seed in seeds)
        iqm, low, high = float(row["iqm"]), float(row["ci_low"]), float(row["ci_high"])
        assert iqm == pytest.approx(np.mean(values[1:3]))  # the IQM of 4 seeds: the mean of the middle two
        assert values[0] <= low <= iqm <= high <= values[-1] and row["n_seeds"] == "4"
    assert "| m3po | 4 | 6 [" in tables  # IQM at step 50: mean of 4 and 8; the outlying seed (100) does not count
    assert (tmp_path / "results" / "A-v0_iqm.png").is_file()


def test_compare_skips_unfinished_runs_and_tables_the_direction_fractions_with_the_random_floor(tmp_path):
    env = "HalfCheetahFwdBwd-v0"
    for seed, (status, fractions) in enumerate([("finished", (0.9, 0.5)), ("finished", (0.7, 0.3)), ("running", (0.0, 0.0))]):
        folder = run_dir(tmp_path / "runs", env, "sac", seed)
        folder.mkdir(parents=True)
        (folder / "eval.csv").write_text(f"timesteps,mean_return,std_return,n_episodes\n50,{seed},0,1\n")
        write_status(folder, status, 50 if status == "finished" else 20, 50)
        # Two replayed episodes; the second saw no reversal (NaN), which does not count.
        (folder / "direction.csv").write_text(f"episode,return,right_direction,right_direction_after_switch\n0,1,{fractions[0] + 0.1},{fractions[1]}\n1,1,{fractions[0] - 0.1},nan\n")
    argv = ["--aggregate-only", "--envs", env, "--algos", "sac", "--seeds", "0", "1", "2", "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "results")]
    tables = run_compare(argv)
    assert "aggregating 2 finished runs of 3" in tables
    rows = list(csv.DictReader(open(tmp_path / "results" / "direction.csv")))
    assert [(row["algo"], row["seed"], row["timesteps"]) for row in rows] == [("sac", "0", "50"), ("sac", "1", "50")]
    assert [float(row["right_direction_after_switch"]) for row in rows] == [0.5, 0.3]
    direction_lines = tables[tables.index("fraction of steps moving") :].splitlines()
    random_row = next(line for line in direction_lines if line.startswith("| random |"))
    assert 0.3 < float(random_row.split("|")[3].split("±")[0]) < 0.7  # a random policy goes either way
    sac_row = next(line for line in direction_lines if line.startswith("| sac | 2 |"))
    assert sac_row.split("|")[3].strip().startswith("0.80") and sac_row.split("|")[4].strip().startswith("0.40")


def test_plotting_a_sweep_folder_draws_one_image_per_env_with_the_random_policy(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from m3po_sb3.run.plotting import main as plot
    from m3po_sb3.run.plotting import random_policy_return

    for env, algo, seed in product(["A-v0", "B-v0"], ["m3po", "sac"], [0, 1]):
        folder = run_dir(tmp_path, env, algo, seed)
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps(dict(env=env, algo=algo, seed=seed)))
        (folder / "eval.csv").write_text(f"timesteps,mean_return,std_return,n_episodes\n50,{seed},0,1\n")
        (folder / "random_policy.csv").write_text(f"timesteps,mean_return,std_return,n_episodes\n0,{-seed},0,1\n")
    assert plot([str(tmp_path)]) == [tmp_path / "A-v0_returns.png", tmp_path / "B-v0_returns.png"]
    assert random_policy_return([run_dir(tmp_path, "A-v0", "sac", seed) for seed in (0, 1)]) == -0.5  # the dashed floor
    assert capsys.readouterr().out.count("Saved to") == 2
    with pytest.raises(FileNotFoundError, match="no run"):
        plot([str(tmp_path / "A-v0" / "m3po" / "nothing")])


def test_a_failing_run_is_raised(tmp_path):
    with pytest.raises(ValueError, match="no preset for 'Pendulum-v1'"):
        run_sweep(grid(["sac"], ["Pendulum-v1"], [0], tmp_path, ["--timesteps", "5"]), max_workers=1)


def test_ray_backend_without_ray_raises_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ImportError, match="optional extra"):
        run_sweep([["--env", "Pendulum-v1"]], backend="ray")


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend"):
        run_sweep([], backend="slurm")
