"""Render one frame of each environment to PNG: the pier with its water, sky and ledges, the crippled leg, ...

MuJoCo renders offscreen through ``MUJOCO_GL``: ``egl`` (with a GPU, or Mesa's software EGL, Debian package
``libegl-mesa0``) or ``osmesa`` (Debian ``libosmesa6``). Example::

    MUJOCO_GL=egl python examples/render_envs.py --out docs/images
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import meta_mujoco_envs  # noqa: E402,F401
from meta_mujoco_envs import CLASSIC_ENV_IDS, ENV_IDS  # noqa: E402

SIDE_VIEW = {"distance": 4.0, "lookat": np.array([0.0, 0.0, 1.0]), "elevation": -10.0, "azimuth": 90.0}
# env id -> (steps before the frame, scale of the uniform random actions, gym.make arguments). The pier is seen
# from its "track" camera, level with the cheetah, so the frame shows the water, the sky and the blocks' ledges;
# the robots that can fall get a few quiet steps, so they are seen standing (from the side, which their v5
# camera settings do not give).
FRAME_SETTINGS = {
    "HalfCheetahFwdBwd-v0": (20, 0.3, {}),
    "HalfCheetahPier-v0": (40, 0.5, {"camera_name": "track"}),
    "AntFwdBwd-v0": (20, 0.3, {}),
    "AntCrippledLeg-v0": (20, 0.3, {"task_switch_seconds": None}),
    "Walker2dRandomParams-v0": (10, 0.0, {"default_camera_config": {**SIDE_VIEW, "trackbodyid": 2}}),
    "HumanoidDirec-v0": (5, 0.0, {"default_camera_config": {**SIDE_VIEW, "trackbodyid": 1}}),
    # the classic suite; the point robots are seen from above, the goal a green disc (its rewarded radius, sparse)
    "HalfCheetahVel-v0": (20, 0.3, {}),
    "HalfCheetahDir-v0": (20, 0.3, {}),
    "AntDir-v0": (20, 0.3, {}),
    "AntGoal-v0": (20, 0.3, {}),
    "HumanoidDir-v0": (5, 0.0, {"default_camera_config": {**SIDE_VIEW, "trackbodyid": 1}}),
    "HopperRandParams-v0": (10, 0.0, {"default_camera_config": {**SIDE_VIEW, "distance": 3.0, "trackbodyid": 1}}),
    "Walker2dRandParams-v0": (10, 0.0, {"default_camera_config": {**SIDE_VIEW, "trackbodyid": 2}}),
    "PointRobot-v0": (8, 1.0, {}),
    "SparsePointRobot-v0": (8, 1.0, {}),
}


def render_frame(env_id: str, seed: int = 0) -> tuple[np.ndarray, bool]:
    """An ``rgb_array`` frame of ``env_id`` with its ``FRAME_SETTINGS``, and whether the robot is healthy then."""
    steps, scale, kwargs = FRAME_SETTINGS[env_id]
    env = gym.make(env_id, render_mode="rgb_array", width=640, height=360, **kwargs)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        env.step(scale * rng.uniform(env.action_space.low, env.action_space.high))
    frame = env.render()
    healthy = bool(getattr(env.unwrapped, "is_healthy", True))
    env.close()
    return frame, healthy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args()
    from PIL import Image  # Pillow comes with matplotlib / SB3's extras

    args.out.mkdir(parents=True, exist_ok=True)
    for env_id in ENV_IDS + CLASSIC_ENV_IDS:
        frame, healthy = render_frame(env_id)
        path = args.out / f"{env_id}.png"
        Image.fromarray(frame).save(path)
        print(path, "" if healthy else "(the robot is unhealthy in this frame)")


if __name__ == "__main__":
    main()
