"""The way back from a run folder: load_run, the replay command, and clear errors when loading the wrong file."""

import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv

from m3po_sb3 import M2PO, M3PO, HistoryObservation, load_run
from m3po_sb3.run.enjoy import main as enjoy
from m3po_sb3.run.enjoy import play_episode
from m3po_sb3.run.folders import next_run_dir
from m3po_sb3.run.train import main as train

TINY = [
    "--env", "Pendulum-v1", "--preset", "demo", "--timesteps", "40", "--epoch-length", "20", "--rollouts-per-step", "2",
    "--rollout-every", "10", "--gradient-steps", "1", "--history-length", "3", "--eval-freq", "20", "--eval-episodes", "1",
    "--no-progress-bar", "--verbose", "0", "--env-kwargs", "g:3.0",
]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    agent = train([*TINY, "--out", str(folder)])
    return folder, agent


def test_load_run_gives_the_agent_and_its_env_rebuilt_from_the_config(run, tmp_path):
    folder, trained = run
    agent, env = load_run(folder)
    assert type(agent) is M3PO and isinstance(env, HistoryObservation) and env.history_layout.history_length == 3
    assert env.unwrapped.g == 3.0  # --env-kwargs
    obs, _ = env.reset(seed=0)
    assert np.array_equal(agent.predict(obs, deterministic=True)[0], trained.predict(obs, deterministic=True)[0])
    from_id = M3PO.load(folder / "model.zip", env="Pendulum-v1")  # an env id gets the saved history wrapper
    assert from_id.get_env().get_attr("history_layout")[0].history_length == 3
    best, _ = load_run(folder, best=True)
    assert best.num_timesteps in (20, 40)
    with pytest.raises(ValueError, match="best or checkpoint"):
        load_run(folder, best=True, checkpoint=True)
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())  # a run without its checkpoint
    with pytest.raises(FileNotFoundError, match="has no checkpoint"):
        load_run(tmp_path, checkpoint=True)


def test_replay_prints_each_episode_and_a_video_without_moviepy_says_what_to_install(run, capsys, monkeypatch):
    folder, _ = run
    results = enjoy([str(folder), "--episodes", "2"])
    assert [result["length"] for result in results] == [200, 200]
    assert capsys.readouterr().out.count("episode ") == 2
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)  # as without MoviePy
    with pytest.raises(SystemExit):
        enjoy([str(folder), "--video-folder", str(folder / "videos")])
    assert "pip install 'meta-mujoco-m3po[video]'" in capsys.readouterr().err


class ScriptedDirectionEnv(gym.Env):
    """Directions +1, -1 (a reversal at 300), -1 (a switch that keeps it at 600), +1 (a reversal at 900); the
    robot always moves along +x."""

    observation_space = gym.spaces.Box(-1, 1, (1,))
    action_space = gym.spaces.Box(-1, 1, (1,))

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action):
        direction = (1, -1, -1, 1)[self.t // 300]
        info = dict(task={"direction": direction}, task_switched=self.t in (300, 600, 900), x_velocity=0.7)
        self.t += 1
        return np.zeros(1, dtype=np.float32), 0.0, False, self.t == 1000, info


class ConstantAgent:
    def __init__(self, action_dim=1):
        self.action = np.zeros(action_dim, dtype=np.float32)

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        return self.action, state


def test_replay_measures_the_fraction_of_steps_in_the_tasks_direction_and_after_each_reversal():
    result = play_episode(ConstantAgent(), ScriptedDirectionEnv(), seed=0, deterministic=True)
    assert result["task_switches"] == 3
    assert result["right_direction"] == pytest.approx((300 + 100) / 1000)
    # The first 50 steps after the reversals at 300 (all wrong) and 900 (all right); the switch at 600 keeps -1.
    assert result["right_direction_after_switch"] == pytest.approx(0.5)
    assert play_episode(ConstantAgent(), ScriptedDirectionEnv(), 0, True, after_switch_steps=400)["right_direction_after_switch"] == pytest.approx(100 / 500)
    # The real direction envs report what it needs; envs without a direction task get no such entries.
    assert "right_direction" in play_episode(ConstantAgent(6), gym.make("HalfCheetahFwdBwd-v0"), seed=0, deterministic=True)
    assert "right_direction" not in play_episode(ConstantAgent(), gym.make("Pendulum-v1"), seed=0, deterministic=True)


def test_loading_an_agent_with_the_wrong_class_says_which_class_saved_it(tmp_path, run):
    folder, _ = run
    PPO("MlpPolicy", "Pendulum-v1", n_steps=64).save(tmp_path / "ppo.zip")
    SAC("MlpPolicy", HistoryObservation(gym.make("Pendulum-v1"), 3)).save(tmp_path / "history_sac.zip")
    with pytest.raises(TypeError, match="not saved by M3PO or M2PO \\(its policy is ActorCriticPolicy"):
        M3PO.load(tmp_path / "ppo.zip")
    with pytest.raises(TypeError, match="its policy is SACPolicy.*SAC.load"):
        M3PO.load(tmp_path / "history_sac.zip")
    with pytest.raises(TypeError, match="MetaDynamicsModel.*use M3PO.load"):
        M2PO.load(folder / "model.zip")


def test_m3po_refuses_a_subprocess_env_before_building_anything():
    env = make_vec_env("Pendulum-v1", n_envs=1, vec_env_cls=SubprocVecEnv)
    try:
        with pytest.raises(TypeError, match="not a SubprocVecEnv"):
            M3PO("MlpPolicy", env)
    finally:
        env.close()


def test_run_folders_are_numbered_as_rl_zoo_does(tmp_path):
    assert next_run_dir(tmp_path, "m3po", "Ant-v5") == tmp_path / "m3po" / "Ant-v5_1"
    for name in ("Ant-v5_1", "Ant-v5_7", "Ant-v5_x", "Ant-v5_2_old", "Ant-v50_9"):
        (tmp_path / "m3po" / name).mkdir(parents=True)
    assert next_run_dir(tmp_path, "m3po", "Ant-v5") == tmp_path / "m3po" / "Ant-v5_8"


FAKE_MOVIEPY = '''
import json
import numpy as np


class ImageSequenceClip:
    """Stands in for MoviePy's: writes the frames' count and shape instead of an MP4."""

    def __init__(self, frames, fps):
        self.frames, self.fps = np.asarray(frames), fps

    def write_videofile(self, path, logger=None):
        with open(path, "w") as file:
            json.dump(dict(shape=list(self.frames.shape), fps=self.fps), file)
'''


def test_a_video_of_each_replayed_episode_is_recorded(tmp_path):
    """RecordVideo gets the frames of the run's MuJoCo env (MoviePy, an optional extra, is faked here)."""
    package = tmp_path / "fake" / "moviepy" / "video" / "io"
    package.mkdir(parents=True)
    for folder in (package, package.parent, package.parent.parent):
        (folder / "__init__.py").write_text("")
    (package / "ImageSequenceClip.py").write_text(FAKE_MOVIEPY)
    folder = tmp_path / "run"
    train([*TINY, "--env", "HalfCheetahFwdBwd-v0", "--env-kwargs", "max_episode_steps:12", "--timesteps", "20", "--out", str(folder)])
    env = {**os.environ, "MUJOCO_GL": "egl", "PYTHONPATH": os.pathsep.join([str(tmp_path / "fake"), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "m3po_sb3.enjoy", str(folder), "--episodes", "2", "--video-folder", str(tmp_path / "videos")]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0 and "EGL" in result.stderr:
        pytest.skip(f"no offscreen OpenGL (MUJOCO_GL=egl) on this machine: {result.stderr.strip().splitlines()[-1:]}")
    assert result.returncode == 0, result.stderr[-2000:]
    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    assert [video.name for video in videos] == ["m3po-HalfCheetahFwdBwd-v0-episode-0.mp4", "m3po-HalfCheetahFwdBwd-v0-episode-1.mp4"]
    for video in videos:  # 12 steps after the reset's frame, 20 frames a second (HalfCheetah's dt = 0.05 s)
        assert json.loads(video.read_text()) == dict(shape=[13, 480, 480, 3], fps=20)
