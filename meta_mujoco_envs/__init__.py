"""Non-stationary MuJoCo environments for meta-RL: the task changes every 15 s of simulated time.

``import meta_mujoco_envs`` registers the six environments with Gymnasium::

    import gymnasium as gym
    import meta_mujoco_envs

    env = gym.make("HalfCheetahPier-v0")
"""

from gymnasium.envs.registration import register

from meta_mujoco_envs.base import NonStationaryTaskEnv, Task
from meta_mujoco_envs.task_schedule import CallableSchedule, MemorylessSchedule, PeriodicSchedule, TaskSchedule

__all__ = [
    "NonStationaryTaskEnv",
    "Task",
    "TaskSchedule",
    "PeriodicSchedule",
    "MemorylessSchedule",
    "CallableSchedule",
    "ENV_IDS",
]

# id -> (entry point, default time limit in steps). Each limit lets a healthy episode see >= 2 switches.
_ENVS = {
    "HalfCheetahFwdBwd-v0": ("meta_mujoco_envs.direction:HalfCheetahFwdBwdEnv", 1000),
    "HalfCheetahPier-v0": ("meta_mujoco_envs.pier:HalfCheetahPierEnv", 1000),
    "AntFwdBwd-v0": ("meta_mujoco_envs.direction:AntFwdBwdEnv", 1000),
    "AntCrippledLeg-v0": ("meta_mujoco_envs.crippled_ant:AntCrippledLegEnv", 1000),
    "Walker2dRandomParams-v0": ("meta_mujoco_envs.walker_params:Walker2dRandomParamsEnv", 4000),
    "HumanoidDirec-v0": ("meta_mujoco_envs.direction:HumanoidDirecEnv", 3000),
}
ENV_IDS = tuple(_ENVS)

for _env_id, (_entry_point, _max_steps) in _ENVS.items():
    register(id=_env_id, entry_point=_entry_point, max_episode_steps=_max_steps)

# The classic meta-RL suite (PEARL's, VariBAD's, rand_param_envs' tasks): one task per episode by default, as the
# originals, and PEARL's horizons; ``task_switch_seconds=...`` switches tasks inside the episode.
_CLASSIC_ENVS = {
    "HalfCheetahVel-v0": ("meta_mujoco_envs.classic_cheetah:HalfCheetahVelEnv", 200),
    "HalfCheetahDir-v0": ("meta_mujoco_envs.classic_cheetah:HalfCheetahDirEnv", 200),
    "AntDir-v0": ("meta_mujoco_envs.classic_ant:AntDirEnv", 200),
    "AntGoal-v0": ("meta_mujoco_envs.classic_ant:AntGoalEnv", 200),
    "HumanoidDir-v0": ("meta_mujoco_envs.classic_humanoid:HumanoidDirEnv", 200),
    "HopperRandParams-v0": ("meta_mujoco_envs.rand_params:HopperRandParamsEnv", 200),
    "Walker2dRandParams-v0": ("meta_mujoco_envs.rand_params:Walker2dRandParamsEnv", 200),
    "PointRobot-v0": ("meta_mujoco_envs.point_robot:PointRobotEnv", 20),
    "SparsePointRobot-v0": ("meta_mujoco_envs.point_robot:SparsePointRobotEnv", 20),
}
CLASSIC_ENV_IDS = tuple(_CLASSIC_ENVS)
__all__.append("CLASSIC_ENV_IDS")

for _env_id, (_entry_point, _max_steps) in _CLASSIC_ENVS.items():
    register(id=_env_id, entry_point=_entry_point, max_episode_steps=_max_steps)
