"""HalfCheetahPier-v0: the task matters (measured as benchmarks/bench_pier.py does), and the pier stays a pier."""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import meta_mujoco_envs  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_pier import STEPS_10S, extreme_tasks, one_step_effect, progress, safety, search_gaits, uniform_task  # noqa: E402


def pier_task_effect(**env_kwargs) -> dict[str, float]:
    """The figures of bench_pier.py at a small scale: the best of 30 gaits, 4 random piers, 12 states."""
    (gait,), _ = search_gaits(30)
    actions = gait.actions(STEPS_10S)
    env = gym.make("HalfCheetahPier-v0", task_switch_seconds=None, **env_kwargs).unwrapped
    base = gym.make("HalfCheetah-v5").unwrapped
    seeds = range(4)
    corners = [progress(env, actions, 0, task) for task in extreme_tasks(env).values()]
    (d_low, d_high), (f_low, f_high) = env.task_ranges.values()
    d_mid, f_mid = (d_low + d_high) / 2, (f_low + f_high) / 2

    def effect(a, b):
        return one_step_effect(env, uniform_task(env, *a), uniform_task(env, *b), actions, n_states=12)

    pier_progress = np.median([progress(env, actions, s) for s in seeds])
    return {
        "runs": pier_progress / np.median([progress(base, actions, s) for s in seeds]),
        "extremes_max": max(corners),
        "extremes_min": min(corners),
        "corners": effect((d_low, f_low), (d_high, f_high)),
        "damping": effect((d_low, f_mid), (d_high, f_mid)),
        "friction": effect((d_mid, f_low), (d_mid, f_high)),
        **safety(env, base, actions, seeds),
    }


def test_the_task_changes_the_dynamics_and_the_cheetah_still_runs():
    """Before the redesign a running cheetah kept its block on the hard stop (31 % of steps with this gait),
    where damping does nothing."""
    figures = pier_task_effect()
    assert figures["hard_stop_fraction"] < 0.05
    assert figures["runs"] >= 0.3  # the gait keeps a good part of its HalfCheetah-v5 progress on random piers
    assert figures["extremes_max"] >= 2 * figures["extremes_min"]
    assert figures["corners"] >= 0.10
    assert figures["damping"] >= 0.05 and figures["friction"] >= 0.05
    assert figures["below_pier"] <= figures["below_floor"] + 0.02  # sinks into a block no deeper than into v5's floor
    assert figures["farthest_from_a_block"] <= 2.0  # always over a 4 m block


def test_static_sink_is_the_cheetah_weight_over_the_spring():
    env = gym.make("HalfCheetahPier-v0", task_switch_seconds=None, reset_noise_scale=0.0).unwrapped
    env.reset(seed=0, options={"task": uniform_task(env, 400.0, 1.0)})
    for _ in range(200):
        env.step(np.zeros(6))
    cheetah_weight = env.model.body_subtreemass[env.model.body("torso").id] * 9.81
    stiffness = env.model.jnt_stiffness[env.model.body_jntadr[env._block_bodies[3]]]
    assert env.block_heights()[3] == pytest.approx(-cheetah_weight / stiffness, rel=0.05)
    low_stop = env.model.jnt_range[env.model.body_jntadr[env._block_bodies[3]], 0]
    assert env.block_heights()[3] > 0.5 * low_stop  # a standing cheetah is far from the hard stop


def test_exclude_current_positions_false_observes_x():
    env = gym.make("HalfCheetahPier-v0", exclude_current_positions_from_observation=False).unwrapped
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape == (18,)
    assert env.observation_structure == {"skipped_qpos": 0, "qpos": 9, "qvel": 9}
    obs, *_ = env.step(np.zeros(6))
    np.testing.assert_array_equal(obs, np.concatenate([env.data.qpos[:9], env.data.qvel[:9]]))
    default = gym.make("HalfCheetahPier-v0").unwrapped
    assert default.observation_structure == {"skipped_qpos": 1, "qpos": 8, "qvel": 9}


def test_block_friction_reaches_every_geom_of_a_block(tmp_path):
    """A custom MJCF may build a block from several geoms: the task's friction applies to all of them."""
    from meta_mujoco_envs.pier import pier_xml_path

    text = Path(pier_xml_path()).read_text()
    extra = '<geom name="block_0_lip" type="box" pos="2 0 0" size="0.05 0.6 0.1" contype="0" conaffinity="1"/>'
    path = tmp_path / "pier.xml"
    path.write_text(text.replace('material="block"/>\n    </body>', f'material="block"/>\n      {extra}\n    </body>', 1))
    env = gym.make("HalfCheetahPier-v0", xml_file=str(path)).unwrapped
    _, info = env.reset(seed=0)
    lip = env.model.geom("block_0_lip").id
    assert env.model.geom_friction[lip, 0] == info["task"]["friction"][0]
