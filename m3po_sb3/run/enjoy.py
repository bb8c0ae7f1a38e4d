"""Replay a trained agent of a run folder, and record it (RL Zoo's ``enjoy`` and ``record_video``).

``python -m m3po_sb3.enjoy logs/m3po/HalfCheetahFwdBwd-v0_1 --episodes 2`` prints each episode's return, length
and task switches; ``--video-folder videos`` records them as MP4 files with Gymnasium's ``RecordVideo``,
which needs MoviePy (``pip install 'meta-mujoco-m3po[video]'``) and an offscreen renderer on a machine
without a display (``MUJOCO_GL=egl`` or ``osmesa``, see the README's Rendering section).
"""

import argparse
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import RecordVideo

from m3po_sb3.run.folders import load_run, read_config


def replay(
    folder: str | Path,
    episodes: int = 1,
    best: bool = False,
    deterministic: bool = True,
    seed: int = 0,
    video_folder: str | Path | None = None,
    render: bool = False,
) -> list[dict[str, float]]:
    """
    Run the agent of a run folder on its env for whole episodes.

    :param folder: a run folder of :mod:`m3po_sb3.run.train`
    :param episodes: episodes to play
    :param best: play ``best_model.zip`` instead of ``model.zip``
    :param deterministic: the deterministic policy (as the evaluations); ``False``: sample actions
    :param seed: seed of the first episode (``seed + i`` for the ``i``-th)
    :param video_folder: record every episode into this folder (``None``: no video)
    :param render: show the episodes in a window (``render_mode="human"``)
    :return: per episode its ``return``, ``length`` and ``task_switches``
    """
    if video_folder is not None and importlib.util.find_spec("moviepy") is None:
        raise ImportError(
            "recording a video needs MoviePy, an optional extra: pip install 'meta-mujoco-m3po[video]' (or moviepy); "
            "without a display, also set MUJOCO_GL=egl (or osmesa)"
        )
    render_mode = "rgb_array" if video_folder is not None else "human" if render else None
    agent, env = load_run(folder, best=best, env_kwargs=dict(render_mode=render_mode) if render_mode else None)
    if video_folder is not None:
        config = read_config(folder)
        env = RecordVideo(env, str(video_folder), episode_trigger=lambda _: True, name_prefix=f"{config['algo']}-{config['env']}")
    results = []
    for episode in range(episodes):
        results.append(play_episode(agent, env, seed + episode, deterministic))
        result = results[-1]
        line = f"episode {episode + 1}: return {result['return']:.1f}, {result['length']:.0f} steps, {result['task_switches']:.0f} task switches"
        if "right_direction" in result:
            line += f", {result['right_direction']:.0%} of steps in the task's direction ({result['right_direction_after_switch']:.0%} of the 50 after a reversal)"
        print(line)
    env.close()
    if video_folder is not None:
        print(f"Saved to {video_folder}")
    return results


def play_episode(agent, env: gym.Env, seed: int, deterministic: bool, after_switch_steps: int = 50) -> dict[str, float]:  # noqa: ANN001 (any SB3 agent)
    """
    :param after_switch_steps: steps after a switch that reversed the direction counted in
        ``right_direction_after_switch``
    :return: the episode's ``return``, ``length`` and ``task_switches`` (steps with ``info["task_switched"]``);
        on a direction env (``info["task"]["direction"]`` and ``info["x_velocity"]``), also ``right_direction``,
        the fraction of steps whose x velocity has the task's sign, and ``right_direction_after_switch``, that
        fraction over the first ``after_switch_steps`` steps after each switch that reversed the direction
        (NaN if none did)
    """
    obs, _ = env.reset(seed=seed)
    total, length, switches, done = 0.0, 0, 0, False
    state, episode_start = None, np.ones(1, dtype=bool)  # a recurrent policy's (RL²'s) memory, carried along
    right_direction: list[bool] = []
    after_switch: list[bool] = []
    direction, since_reversal = None, None  # steps since the last reversal by a switch (None: none yet)
    while not done:
        action, state = agent.predict(obs, state=state, episode_start=episode_start, deterministic=deterministic)
        episode_start = np.zeros(1, dtype=bool)
        obs, reward, terminated, truncated, info = env.step(action)
        total, length = total + float(reward), length + 1
        switches += bool(info.get("task_switched", False))
        done = terminated or truncated
        task = info.get("task")
        if isinstance(task, dict) and "direction" in task and "x_velocity" in info:
            if direction is not None and task["direction"] != direction:
                since_reversal = 0
            direction = task["direction"]
            right_direction.append(float(info["x_velocity"]) * direction > 0)
            if since_reversal is not None and since_reversal < after_switch_steps:
                after_switch.append(right_direction[-1])
            since_reversal = None if since_reversal is None else since_reversal + 1
    result = {"return": total, "length": float(length), "task_switches": float(switches)}
    if right_direction:
        result["right_direction"] = float(np.mean(right_direction))
        result["right_direction_after_switch"] = float(np.mean(after_switch)) if after_switch else float("nan")
    return result


def build_parser() -> argparse.ArgumentParser:
    """:return: the command line parser of ``python -m m3po_sb3.enjoy``"""
    parser = argparse.ArgumentParser(prog="python -m m3po_sb3.enjoy", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("folder", help="a run folder of python -m m3po_sb3.train")
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--load-best", dest="best", action="store_true", help="play best_model.zip (the best evaluation)")
    parser.add_argument("--stochastic", dest="deterministic", action="store_false", help="sample the actions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--video-folder", default=None, help="record the episodes into this folder (needs moviepy)")
    parser.add_argument("--render", action="store_true", help="show the episodes in a window")
    return parser


def main(argv: Sequence[str] | None = None) -> list[dict[str, float]]:
    """
    :param argv: command line arguments (default: ``sys.argv[1:]``)
    :return: per episode its return, length and task switches
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return replay(args.folder, args.episodes, args.best, args.deterministic, args.seed, args.video_folder, args.render)
    except (ImportError, FileNotFoundError) as error:  # no MoviePy, not a run folder
        parser.error(str(error))


if __name__ == "__main__":
    main()
