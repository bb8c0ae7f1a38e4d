"""The results pages (benchmarks/README.md, README.md) hold what the committed run folders give, and the script that
generates them computes rliable's statistics."""

import functools
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rliable")  # the bench/test extra

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "results_page.py"
GROUP = "main:HalfCheetahFwdBwd-v0:m3po"


@functools.cache
def results_page():
    spec = importlib.util.spec_from_file_location("results_page", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def check(*pages: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--check", *map(str, pages)], capture_output=True, text=True, cwd=ROOT)


def test_the_pages_match_the_run_folders():
    result = check()
    assert result.returncode == 0, f"stale results (run `python benchmarks/results_page.py`):\n{result.stdout}{result.stderr[-2000:]}"


def test_check_fails_and_names_the_part_that_differs(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"<!-- results:table 20000 {GROUP} begin -->\n<!-- results:table 20000 {GROUP} end -->\nIQM <!-- r:iqm {GROUP} 20000 -->0<!-- /r -->\n")
    stale = check(page)
    assert stale.returncode == 1 and f"table 20000 {GROUP}" in stale.stdout and f"iqm {GROUP} 20000" in stale.stdout
    subprocess.run([sys.executable, str(SCRIPT), str(page)], check=True, capture_output=True, cwd=ROOT)
    assert check(page).returncode == 0
    text = page.read_text()
    assert "| M3PO † | – | 5 | " in text  # five finished seeds of the main comparison
    page.write_text(text.replace("| M3PO † | – | 5 | ", "| M3PO † | – | 4 | "))
    tampered = check(page)
    assert tampered.returncode == 1 and f"table 20000 {GROUP}" in tampered.stdout and "iqm" not in tampered.stdout


def test_fast_statistics_equal_rliables():
    from rliable import metrics

    page = results_page()  # imports its sibling benchmarks/compare.py, which holds the IQM
    rng = np.random.default_rng(0)
    for runs in (3, 5, 10):
        scores = rng.normal(size=(runs, 4)).round(1)  # rounded: ties occur
        assert np.allclose(sys.modules["compare"].interquartile_mean(scores), [metrics.aggregate_iqm(scores[:, point]) for point in range(4)])
        x, y = scores[:, :1], rng.integers(-1, 2, size=(7, 1)).astype(float)
        assert page.improvement_probability(x, y) == pytest.approx(metrics.probability_of_improvement(x, y))


def test_an_order_is_settled_only_where_every_test_agrees():
    page = results_page()
    apart, close = np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([1.0, 3.0, 5.0, 7.0, 9.0])  # per seed
    assert page.verdict(apart + 10, apart, apart + 10, apart)[0] == "A ahead"
    assert page.verdict(apart, apart + 10, apart, apart + 10)[0] == "B ahead"
    assert page.verdict(close + 1, close, close + 1, close)[0] == "not settled"  # overlapping seeds
    assert page.verdict(apart + 10, apart, apart, apart + 10)[0] == "not settled"  # the last-5 means reverse the order
    assert page.verdict(apart[:2] + 10, apart[:2], apart[:2] + 10, apart[:2])[0] == "not settled"  # 2 seeds: p = 1/6
    runs = page.load_group(GROUP)
    assert page.iqm(runs, [(20_000, 1)]) == page.iqm(runs, [(20_000, 1)])  # a fixed bootstrap seed


@pytest.mark.parametrize("group", ["main:HalfCheetahFwdBwd-v0", "main:HalfCheetahFwdBwd-v0:ppo", "nowhere:HalfCheetahFwdBwd-v0:m3po"])
def test_a_bad_group_is_refused_by_name(group):
    with pytest.raises(ValueError, match=group):
        results_page().load_group(group)


def test_the_last_evaluations_column_says_how_many_it_averages():
    page = results_page()

    def run(seed, steps):
        return page.Run(seed, np.array(steps), np.arange(len(steps), dtype=float), 0.0, "", {})

    often, rarely = [run(0, range(1000, 6000, 1000)), run(1, range(1000, 6000, 1000))], [run(0, [2500, 5000])]
    assert page.evaluations_up_to(often, 5000) == 5 and page.evaluations_up_to(often, 3000) == 3
    assert page.evaluations_up_to(often + rarely, 5000) == 2  # a table that mixes them averages what all have
    assert page.scores_at(rarely, 5000, 2)[0] == 0.5  # the mean of its two evaluations (0 and 1)
    with pytest.raises(ValueError, match="no 3 evaluation"):
        page.scores_at(rarely, 5000, 3)


def test_only_runs_made_before_the_first_epoch_rule_are_marked():
    page = results_page()
    assert page.group_name("main:HalfCheetahFwdBwd-v0:m3po") == "M3PO †"
    assert page.group_name("classic:PointRobot-v0:m3po") == "M3PO (`classic`)"
    assert page.group_name("main:HalfCheetahFwdBwd-v0:sac") == "history-SAC"
