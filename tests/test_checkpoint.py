"""Checkpoints and resumed runs: an interrupted and resumed run is the uninterrupted one."""

import json
import pickle
import signal
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from m3po_sb3 import HistoryObservation
from m3po_sb3.run.checkpoint import EnvStatePickler, find_checkpoint, pickle_env
from m3po_sb3.run.plotting import read_eval_csv
from m3po_sb3.run.folders import load_run, read_status
from m3po_sb3.run.train import main

RUN = [
    "--env", "Pendulum-v1", "--preset", "demo", "--timesteps", "90", "--epoch-length", "20", "--rollouts-per-step", "4",
    "--rollout-every", "5", "--gradient-steps", "2", "--history-length", "2", "--eval-freq", "15", "--eval-episodes", "1",
    "--save-freq", "40", "--no-progress-bar", "--verbose", "0", "--seed", "5", "--env-kwargs", "max_episode_steps:50",
]  # fmt: skip


def parameters(agent) -> np.ndarray:
    return th.cat([parameter.detach().flatten() for parameter in agent.policy.parameters()]).numpy()


@pytest.mark.parametrize(
    "algo, env",
    [
        ("m3po", []),
        ("sac", []),
        ("m3po", ["--env", "HalfCheetahFwdBwd-v0", "--env-kwargs", "max_episode_steps:50"]),  # MuJoCo: EzPickle
    ],
)
def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(tmp_path, monkeypatch, ctrl_c_at, algo, env):
    whole = main([*RUN, *env, "--algo", algo, "--out", str(tmp_path / "whole")])
    ctrl_c_at(53)  # mid-epoch, between two periodic checkpoints, mid-episode
    interrupted = main([*RUN, *env, "--algo", algo, "--out", str(tmp_path / "cut")])
    monkeypatch.undo()
    # Ctrl-C left a loadable agent, its evaluations, its plot and a checkpoint at the step it stopped at.
    assert read_status(tmp_path / "cut") == dict(status="interrupted", num_timesteps=53, total_timesteps=90)
    assert interrupted.num_timesteps == 53 and find_checkpoint(tmp_path / "cut").name == "checkpoint"
    assert list(read_eval_csv(tmp_path / "cut" / "eval.csv")["timesteps"]) == [15, 30, 45]
    assert (tmp_path / "cut" / "learning_curve.png").stat().st_size > 0
    agent, _ = load_run(tmp_path / "cut")
    assert agent.num_timesteps == 53 and np.array_equal(parameters(agent), parameters(interrupted))
    # For analysis, the checkpoint's agent comes back with its buffers, and the run's files are left alone.
    evaluations = (tmp_path / "cut" / "eval.csv").read_text()
    at_checkpoint, _ = load_run(tmp_path / "cut", checkpoint=True)
    assert at_checkpoint.num_timesteps == 53 and np.array_equal(parameters(at_checkpoint), parameters(interrupted))
    size = interrupted.replay_buffer.size()
    assert size > 0 and at_checkpoint.replay_buffer.size() == size
    assert np.array_equal(at_checkpoint.replay_buffer.rewards[:size], interrupted.replay_buffer.rewards[:size])
    if algo == "m3po":
        for loaded, kept in zip(at_checkpoint.env_transitions(), interrupted.env_transitions()):
            assert len(kept) == 53 and np.array_equal(loaded, kept)
    assert (tmp_path / "cut" / "eval.csv").read_text() == evaluations

    resumed = main(["--resume", str(tmp_path / "cut"), "--no-progress-bar"])
    assert read_status(tmp_path / "cut")["status"] == "finished" and resumed.num_timesteps == 90
    for name in ("eval.csv", "random_policy.csv"):
        assert (tmp_path / "cut" / name).read_text() == (tmp_path / "whole" / name).read_text(), name
    assert np.array_equal(parameters(resumed), parameters(whole))


def test_rl2_stops_between_rollouts_and_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch, ctrl_c_at):
    """An on-policy agent (RL², rollouts of 1 000 steps) checkpoints between rollouts: Ctrl-C takes effect at the
    next rollout's start, and the resumed run equals the uninterrupted one."""
    run = [*RUN, "--algo", "rl2", "--history-length", "1", "--timesteps", "2000", "--eval-freq", "500", "--save-freq", "0"]
    whole = main([*run, "--out", str(tmp_path / "whole")])
    ctrl_c_at(300)
    interrupted = main([*run, "--out", str(tmp_path / "cut")])
    monkeypatch.undo()
    assert read_status(tmp_path / "cut") == dict(status="interrupted", num_timesteps=1000, total_timesteps=2000)
    assert interrupted.num_timesteps == 1000 and find_checkpoint(tmp_path / "cut") is not None
    resumed = main(["--resume", str(tmp_path / "cut"), "--no-progress-bar"])
    assert resumed.num_timesteps == 2000
    assert (tmp_path / "cut" / "eval.csv").read_text() == (tmp_path / "whole" / "eval.csv").read_text()
    assert np.array_equal(parameters(resumed), parameters(whole))


def test_a_run_killed_after_a_checkpoint_drops_the_evaluations_made_after_it(tmp_path):
    main([*RUN, "--timesteps", "60", "--out", str(tmp_path)])
    status = json.loads((tmp_path / "status.json").read_text())
    (tmp_path / "status.json").write_text(json.dumps(dict(status, status="running")))  # as if killed at the end
    evaluations = (tmp_path / "eval.csv").read_text()
    resumed = main(["--resume", str(tmp_path), "--no-progress-bar"])  # from the checkpoint at step 40
    assert resumed.num_timesteps == 60
    assert list(read_eval_csv(tmp_path / "eval.csv")["timesteps"]) == [15, 30, 45, 60]  # 45 and 60 once, measured again
    assert (tmp_path / "eval.csv").read_text() == evaluations  # Pendulum resumes exactly


def test_resume_refuses_other_settings_and_a_finished_run_is_left_alone(tmp_path, capsys):
    main([*RUN, "--out", str(tmp_path), "--timesteps", "30", "--save-freq", "0"])
    with pytest.raises(SystemExit):
        main(["--resume", str(tmp_path), "--seed", "1"])
    assert "drop --seed" in capsys.readouterr().err
    assert main(["--resume", str(tmp_path)]).num_timesteps == 30
    assert "finished" in capsys.readouterr().out


def test_an_env_that_cannot_be_pickled_resumes_with_a_new_training_episode(tmp_path, monkeypatch, ctrl_c_at):
    whole = main([*RUN, "--timesteps", "60", "--out", str(tmp_path / "whole")])
    ctrl_c_at(41)

    def unpicklable(self, env):
        raise TypeError("cannot pickle an OpenGL context")

    monkeypatch.setattr(EnvStatePickler, "dump", unpicklable)
    with pytest.warns(UserWarning, match="a resumed run will start a new episode"):
        main([*RUN, "--timesteps", "60", "--out", str(tmp_path / "cut")])
    monkeypatch.undo()
    resumed = main(["--resume", str(tmp_path / "cut"), "--no-progress-bar"])
    assert resumed.num_timesteps == 60 and read_status(tmp_path / "cut")["status"] == "finished"
    whole_curve, resumed_curve = read_eval_csv(tmp_path / "whole" / "eval.csv"), read_eval_csv(tmp_path / "cut" / "eval.csv")
    assert list(resumed_curve["timesteps"]) == list(whole_curve["timesteps"]) == [15, 30, 45, 60]
    # Up to the checkpoint (step 41) the runs are one; the episode restarted there makes them differ after it.
    assert np.array_equal(resumed_curve["mean_return"][:2], whole_curve["mean_return"][:2])
    assert resumed.env_buffer.size() == whole.env_buffer.size() == 60
    assert np.array_equal(resumed.env_buffer.observations[:41], whole.env_buffer.observations[:41])
    assert not np.array_equal(resumed.env_buffer.observations[41:60], whole.env_buffer.observations[41:60])


@pytest.mark.parametrize("env_id, steps", [("HalfCheetahPier-v0", 290), ("AntCrippledLeg-v0", 290), ("Walker2dRandomParams-v0", 20)])
def test_mujoco_envs_pickle_with_their_state(env_id, steps):
    """Gymnasium's MuJoCo envs pickle as their constructor arguments (EzPickle); EnvStatePickler keeps their state."""
    env = make_vec_env(lambda: HistoryObservation(gym.make(env_id), 2), seed=0)
    env.reset()
    for _ in range(steps):
        env.step(np.array([env.action_space.sample()]))
    copy = pickle.loads(pickle_env(env))
    for _ in range(20):  # across the task switch at step 300 of the cheetah's and the ant's
        action = np.array([env.action_space.sample()])
        for mine, theirs in zip(env.step(action), copy.step(action)):
            if isinstance(mine, np.ndarray):
                assert np.array_equal(mine, theirs)
        assert env.get_attr("unwrapped")[0].get_task() == copy.get_attr("unwrapped")[0].get_task()


def test_ctrl_c_on_the_command_line_stops_with_a_checkpoint_and_no_traceback(tmp_path):
    argv = [*RUN, "--timesteps", "1000000", "--out", str(tmp_path)]
    process = subprocess.Popen([sys.executable, "-m", "m3po_sb3.train", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "eval.csv").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0 and "Traceback" not in stderr and "Ctrl-C" in stderr
    status = read_status(tmp_path)
    assert status["status"] == "interrupted" and status["num_timesteps"] >= 15
    assert find_checkpoint(tmp_path) is not None and (tmp_path / "model.zip").is_file() and (tmp_path / "learning_curve.png").is_file()
