"""End-to-end tests of the training command line on a tiny budget."""

import json
import subprocess
import sys

import gymnasium as gym
import pytest
import torch as th
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from m3po_sb3 import HistorySAC, M2PO, M3PO
from m3po_sb3.run.enjoy import play_episode
from m3po_sb3.run.plotting import read_eval_csv
from m3po_sb3.run.folders import load_run
from m3po_sb3.run.train import main

TINY = [
    "--env", "Pendulum-v1", "--preset", "demo", "--timesteps", "40", "--epoch-length", "20", "--rollouts-per-step", "2",
    "--rollout-every", "10", "--gradient-steps", "1", "--history-length", "2", "--eval-freq", "20", "--eval-episodes", "1",
    "--no-progress-bar",
]  # fmt: skip


@pytest.mark.parametrize(
    "algo, extra, agent_class",
    [
        ("m3po", [], M3PO),
        ("m2po", [], M2PO),
        ("m3po-h", ["--hybrid-schedule", "0", "2"], M3PO),
        ("sac", [], HistorySAC),
        ("oracle", ["--env", "HalfCheetahFwdBwd-v0"], HistorySAC),
    ],
)
def test_cli_writes_model_evaluations_curve_and_config(tmp_path, capsys, algo, extra, agent_class):
    agent = main([*TINY, "--algo", algo, "--out", str(tmp_path), "--seed", "3", *extra])
    assert type(agent) is agent_class and agent.num_timesteps == 40
    assert agent.actor_loss_before_critic_step is False  # SB3's update order unless asked
    for name in ("model.zip", "best_model.zip", "eval.csv", "random_policy.csv", "learning_curve.png", "config.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    curve = read_eval_csv(tmp_path / "eval.csv")
    assert list(curve["timesteps"]) == [20, 40] and list(curve["n_episodes"]) == [1, 1]
    assert list(read_eval_csv(tmp_path / "random_policy.csv")["n_episodes"]) == [1]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["algo"] == algo and config["seed"] == 3 and config["hyperparameters"]["epoch_length"] == 20
    assert agent_class.load(tmp_path / "model.zip").num_timesteps == 40
    out = capsys.readouterr().out
    assert out.count("Eval num_timesteps=") == 2 and f"Saved to {tmp_path}" in out


def test_oracle_sees_the_task_and_rl2_the_last_step_with_its_reward(tmp_path):
    oracle = main([*TINY, "--env", "HalfCheetahFwdBwd-v0", "--algo", "oracle", "--out", str(tmp_path / "oracle"), "--verbose", "0"])
    config = json.loads((tmp_path / "oracle" / "config.json").read_text())
    assert config["env_kwargs"] == {"task_in_obs": True}  # so load_run rebuilds the same env
    obs_dim = gym.make("HalfCheetahFwdBwd-v0", task_in_obs=True).observation_space.shape[0]
    assert obs_dim > 17 and oracle.observation_space.shape == (obs_dim + 2 * (obs_dim + 6 + 2),)  # L = 2 from TINY

    rl2 = main([*TINY, "--algo", "rl2", "--history-length", "1", "--timesteps", "1000", "--eval-freq", "500", "--out", str(tmp_path / "rl2"), "--verbose", "0"])
    assert isinstance(rl2, RecurrentPPO) and rl2.num_timesteps == 1000 and rl2.n_steps == 1000
    assert json.loads((tmp_path / "rl2" / "config.json").read_text())["hyperparameters"]["history_length"] == 1
    assert rl2.observation_space.shape == (3 + 3 + 1 + 1 + 1,)  # o_t | o_{t-1} | a_{t-1} | r_{t-1} | mask (Pendulum)
    assert list(read_eval_csv(tmp_path / "rl2" / "eval.csv")["timesteps"]) == [500, 1000]
    assert RecurrentPPO.load(tmp_path / "rl2" / "model.zip").num_timesteps == 1000
    # Replaying carries the LSTM's memory through the episode, as SB3's evaluation does.
    agent, env = load_run(tmp_path / "rl2")
    evaluation_env = DummyVecEnv([lambda: Monitor(load_run(tmp_path / "rl2")[1])])
    evaluation_env.seed(11)
    evaluated, _ = evaluate_policy(agent, evaluation_env, n_eval_episodes=1, deterministic=True)
    assert play_episode(agent, env, seed=11, deterministic=True)["return"] == pytest.approx(evaluated, rel=1e-5)


def test_runs_are_numbered_in_the_log_folder_and_an_existing_out_is_refused(tmp_path, capsys):
    for number in (1, 2):
        main([*TINY, "--timesteps", "20", "-f", str(tmp_path), "--verbose", "0"])
        assert json.loads((tmp_path / "m3po" / f"Pendulum-v1_{number}" / "config.json").read_text())["seed"] == 0
    with pytest.raises(SystemExit):
        main([*TINY, "--algo", "sac", "--out", str(tmp_path / "m3po" / "Pendulum-v1_1")])
    assert "already holds a run" in capsys.readouterr().err
    assert json.loads((tmp_path / "m3po" / "Pendulum-v1_1" / "config.json").read_text())["algo"] == "m3po"  # untouched


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--env", "HalfCheetahFwdBwd-v0", "--preset", "Demo"], "invalid choice: 'Demo' (choose from"),
        (["--env", "HalfCheetahFwdBwd-v1"], "--env 'HalfCheetahFwdBwd-v1'"),
        (["--env", "Pendulum-v1"], "no preset for 'Pendulum-v1'"),
        ([*TINY, "--timesteps", "19"], "--timesteps 19 ends before the first evaluation, at step 20"),
        ([*TINY, "--timestep", "20"], "unrecognized arguments: --timestep"),  # no abbreviations
        ([*TINY, "--env-kwargs", "gravity:3"], "--env-kwargs {'gravity': 3}: "),
        ([*TINY, "--algo", "rl2"], "--algo rl2 sees the last step only (history length 1)"),  # TINY has L = 2
        ([*TINY, "--algo", "oracle"], "--env-kwargs {'task_in_obs': True}: "),  # Pendulum has no task
        ([*TINY, "--algo", "sac", "--known-action-reward"], "--known-action-reward is for the model-based agents"),
        ([*TINY, "--algo", "oracle", "--real-ratio", "0.05"], "--real-ratio is for the model-based agents"),
        ([*TINY, "--algo", "sac", "--model-patience", "20"], "--model-patience is for the model-based agents"),
        ([*TINY, "--model-patience", "0"], "--model-patience must be >= 1 epoch, got 0"),
        ([*TINY, "--algo", "sac", "--calibrate-model"], "--calibrate-model is for the model-based agents"),
        ([*TINY, "--algo", "pearl", "--actor-loss-before-critic-step"], "--actor-loss-before-critic-step is for the SAC-based agents"),
        (["--resume", "nowhere"], "nowhere is not a run folder"),
    ],
)
def test_bad_command_lines_say_what_is_wrong_and_write_nothing(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(th.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([*TINY, "--device", "cuda", "--out", str(tmp_path / "run")])
    assert "no CUDA GPU" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_m3po_h_needs_a_beta_schedule(tmp_path):
    with pytest.raises(ValueError, match="--hybrid-schedule"):
        main(["--env", "HalfCheetahFwdBwd-v0", "--algo", "m3po-h", "--timesteps", "1000", "--out", str(tmp_path)])


def test_env_kwargs_tensorboard_and_a_trained_agent_to_start_from(tmp_path):
    first = main(
        [*TINY, "--out", str(tmp_path / "a"), "--env-kwargs", "g:5.0", "--tensorboard-log", str(tmp_path / "tb"), "--verbose", "0", "--real-ratio", "0.25"]
        + ["--model-patience", "7", "--calibrate-model", "--actor-loss-before-critic-step"]
    )
    assert first.get_env().get_attr("g")[0] == 5.0 and first.real_ratio == 0.25
    # The patience reaches every model fit: the fits of this short run stopped 7 epochs after their last gain.
    assert first.model_fit_kwargs == {"max_epochs_since_update": 7, "calibrate": True}
    assert first.last_model_fit_stats["epochs"] - first.last_model_fit_stats["best_epoch"] == 7
    assert first.dynamics_model.logvar_offset.any()
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["env_kwargs"] == {"g": 5.0} and config["hyperparameters"]["real_ratio"] == 0.25
    assert first.actor_loss_before_critic_step and config["hyperparameters"]["actor_loss_before_critic_step"]
    assert (tmp_path / "tb" / "M3PO_1").is_dir()  # named after the algorithm, not SAC_1
    # 20 steps: the warm-up only (random actions, no update), so the agent is still the one it started from
    second = main([*TINY, "--timesteps", "20", "--out", str(tmp_path / "b"), "-i", str(tmp_path / "a" / "model.zip"), "--verbose", "0"])
    assert second.num_timesteps == 20 and second.env_buffer.size() == 20
    for mine, theirs in zip(second.policy.parameters(), first.policy.parameters()):
        assert th.equal(mine, theirs)
    with pytest.raises(TypeError, match="use M3PO.load"):
        main([*TINY, "--algo", "m2po", "--out", str(tmp_path / "c"), "-i", str(tmp_path / "a" / "model.zip")])


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "m3po_sb3.train", "--help"], capture_output=True, text=True, check=True)
    assert "--rollouts-per-step" in result.stdout and "usage: python -m m3po_sb3.train" in result.stdout
