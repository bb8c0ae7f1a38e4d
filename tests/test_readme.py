"""Every code block of the README runs as written: its Python blocks (at a tiny budget) and its module commands."""

import importlib
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from m3po_sb3.run.train import main as train

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# The README's budgets (minutes of training) -> the test's (seconds). Each must occur in the README, so the test
# fails when the README changes instead of silently running something else.
TINY_BUDGETS = {"epoch_length=250": "epoch_length=20", "agent.learn(2_500": "agent.learn(21", "agent.learn(20_000": "agent.learn(30"}
# A run folder for the blocks that load one: the README's own path, trained for one short epoch.
RUN_FOLDER = "logs/m3po/HalfCheetahFwdBwd-v0_1"
TINY_RUN = (
    "--env HalfCheetahFwdBwd-v0 --preset demo --timesteps 20 --epoch-length 20 --eval-freq 20 --eval-episodes 1 --rollouts-per-step 2 --rollout-every 10 "
    "--env-kwargs max_episode_steps:50 --no-progress-bar --verbose 0"
).split()
# Runs the blocks one after the other in one process (as pasted into one session), each in its own namespace.
RUN_BLOCKS = """
import sys
for index, code in enumerate(BLOCKS):
    print(f"block {index}", file=sys.stderr)
    exec(code, {"__name__": "__main__"})
"""


def code_blocks(language: str) -> list[str]:
    """:return: the README's fenced code blocks of ``language``"""
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.DOTALL | re.MULTILINE)


def module_commands() -> list[list[str]]:
    """:return: the arguments of each ``python -m m3po_sb3.MODULE ...`` line of the bash blocks, module first"""
    lines = [line.split("#")[0] for block in code_blocks("bash") for line in block.splitlines()]
    return [shlex.split(line)[2:] for line in lines if line.startswith("python -m m3po_sb3.")]


def test_the_readme_has_the_blocks_and_budgets_this_test_runs():
    assert len(code_blocks("python")) == 4 and len(module_commands()) >= 6
    for budget in TINY_BUDGETS:
        assert budget in README, budget


def test_python_blocks_run_as_written(tmp_path):
    train([*TINY_RUN, "--out", str(tmp_path / RUN_FOLDER)])
    blocks = []
    for code in code_blocks("python"):
        for budget, tiny in TINY_BUDGETS.items():
            code = code.replace(budget, tiny)
        blocks.append(code)
    result = subprocess.run([sys.executable, "-c", f"BLOCKS = {blocks!r}\n{RUN_BLOCKS}"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "m3po.zip").is_file() and (tmp_path / "d_env.pkl").is_file()


@pytest.mark.parametrize("argv", module_commands(), ids=lambda argv: " ".join(argv[:3]))
def test_module_command_is_accepted_by_its_parser(argv):
    module = importlib.import_module(argv[0].removeprefix("m3po_sb3.").join(("m3po_sb3.", "")))
    module.build_parser().parse_args(argv[1:])  # exits with a usage error on an unknown or malformed flag
