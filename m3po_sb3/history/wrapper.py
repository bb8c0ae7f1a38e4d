"""The Gymnasium wrapper that turns an env's observation into the flat history of :class:`HistoryLayout`."""

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from m3po_sb3.history.layout import HistoryLayout

class HistoryObservation(gym.Wrapper):
    """
    Replace the observation of a Box-observation, Box-action env by the flat history (see
    :class:`HistoryLayout`), so that any stable-baselines3 algorithm learns a history-conditioned policy.
    ``reset`` starts a fresh history, hence histories never cross an episode boundary.

    :param env: environment with 1-D ``Box`` observation and action spaces
    :param history_length: number ``L`` of past (observation, action, reward) steps kept
    """

    def __init__(self, env: gym.Env, history_length: int = 10):
        for name, space in (("observation", env.observation_space), ("action", env.action_space)):
            if not isinstance(space, spaces.Box) or len(space.shape) != 1:
                raise ValueError(f"HistoryObservation needs a 1-D Box {name} space, got {space}")
        super().__init__(env)
        self.history_layout = HistoryLayout(env.observation_space.shape[0], env.action_space.shape[0], history_length)
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.history_layout.size,), np.float32)
        self._history: np.ndarray | None = None

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._history = self.history_layout.initial(self._checked(obs, self.history_layout.obs_dim, "observation"))
        return self._history.copy(), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._history is None:
            raise RuntimeError("HistoryObservation.step called before reset")
        checked_action = self._checked(action, self.history_layout.act_dim, "action")
        obs, reward, terminated, truncated, info = self.env.step(action)
        next_obs = self._checked(obs, self.history_layout.obs_dim, "observation")
        checked_reward = self._checked(np.reshape(reward, (1,)), 1, "reward")[0]
        self._history = self.history_layout.shift(self._history, checked_action, checked_reward, next_obs)
        return self._history.copy(), reward, terminated, truncated, info

    @staticmethod
    def _checked(x: Any, size: int, name: str) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.shape != (size,):
            raise ValueError(f"HistoryObservation: {name} must have shape ({size},), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"HistoryObservation: non-finite {name} {x}")
        return x
