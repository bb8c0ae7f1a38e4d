"""Render one frame of each environment to PNG, so a person can see the pier and the crippled leg.

MuJoCo renders offscreen through ``MUJOCO_GL``: ``egl`` (with a GPU, or Mesa's software EGL, Debian package
``libegl-mesa0``) or ``osmesa`` (Debian ``libosmesa6``). Example::

    MUJOCO_GL=egl python examples/render_envs.py --out docs/images --steps 60
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import meta_mujoco_envs  # noqa: E402,F401
from meta_mujoco_envs import ENV_IDS  # noqa: E402


def render_frame(env_id: str, steps: int, seed: int = 0, **kwargs) -> np.ndarray:
    """An ``rgb_array`` frame after ``steps`` random-action steps."""
    env = gym.make(env_id, render_mode="rgb_array", width=640, height=360, **kwargs)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        env.step(0.3 * rng.uniform(env.action_space.low, env.action_space.high))
    frame = env.render()
    env.close()
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    from PIL import Image  # Pillow comes with matplotlib / SB3's extras

    args.out.mkdir(parents=True, exist_ok=True)
    for env_id in ENV_IDS:
        path = args.out / f"{env_id}.png"
        Image.fromarray(render_frame(env_id, args.steps)).save(path)
        print(path)


if __name__ == "__main__":
    main()
