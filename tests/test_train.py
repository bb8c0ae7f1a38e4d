"""End-to-end tests of the training command line on a tiny budget."""

import json
import subprocess
import sys

import pytest
from stable_baselines3 import SAC

from m3po_sb3 import M2PO, M3PO
from m3po_sb3.plotting import read_eval_csv
from m3po_sb3.train import main

TINY = [
    "--env", "Pendulum-v1", "--preset", "demo", "--timesteps", "40", "--epoch-length", "20", "--rollouts-per-step", "2",
    "--rollout-every", "10", "--gradient-steps", "1", "--history-length", "2", "--eval-freq", "20", "--eval-episodes", "1",
    "--no-progress-bar",
]  # fmt: skip


@pytest.mark.parametrize(
    "algo, extra, agent_class",
    [("m3po", [], M3PO), ("m2po", [], M2PO), ("m3po-h", ["--hybrid-schedule", "0", "2"], M3PO), ("sac", [], SAC)],
)
def test_cli_writes_model_evaluations_curve_and_config(tmp_path, algo, extra, agent_class):
    agent = main([*TINY, "--algo", algo, "--out", str(tmp_path), "--seed", "3", *extra])
    assert type(agent) is agent_class and agent.num_timesteps == 40
    for name in ("model.zip", "eval.csv", "learning_curve.png", "config.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    curve = read_eval_csv(tmp_path / "eval.csv")
    assert list(curve["timesteps"]) == [20, 40] and list(curve["n_episodes"]) == [1, 1]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["algo"] == algo and config["seed"] == 3 and config["hyperparameters"]["epoch_length"] == 20
    assert agent_class.load(tmp_path / "model.zip").num_timesteps == 40


def test_cli_without_a_preset_for_the_env_says_so(tmp_path):
    with pytest.raises(SystemExit, match="no preset for 'Pendulum-v1'"):
        main(["--env", "Pendulum-v1", "--out", str(tmp_path)])


def test_m3po_h_needs_a_beta_schedule(tmp_path):
    with pytest.raises(ValueError, match="--hybrid-schedule"):
        main(["--env", "HalfCheetahFwdBwd-v0", "--algo", "m3po-h", "--timesteps", "1", "--out", str(tmp_path)])


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "m3po_sb3.train", "--help"], capture_output=True, text=True, check=True)
    assert "--rollouts-per-step" in result.stdout
