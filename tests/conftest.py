"""Shared test fixtures."""

import os
import signal
from collections.abc import Callable

import pytest
import torch as th


def pytest_configure(config: pytest.Config) -> None:
    # Gymnasium's env checker warns that the MuJoCo observation spaces are unbounded (as all of Gymnasium's
    # v5 MuJoCo envs are, by design), and Gymnasium's logger colours its warnings: the summary then showed raw
    # ANSI escape codes. The ".*" skips the colour code in front of the message.
    config.addinivalue_line("filterwarnings", "ignore:.*A Box observation space (minimum|maximum) value is -?infinity:UserWarning")


@pytest.fixture(autouse=True)
def single_torch_thread():
    """Small networks train fastest on one thread; the suite runs one pytest-xdist worker per core."""
    threads = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(threads)


@pytest.fixture
def ctrl_c_at(monkeypatch) -> Callable[[int], None]:
    """:return: a function that makes training receive Ctrl-C (a real SIGINT to this process) at a given env step"""
    from m3po_sb3.run.checkpoint import RunCheckpointCallback

    def press_at(step: int) -> None:
        original = RunCheckpointCallback._on_step

        def on_step(self: RunCheckpointCallback) -> bool:
            if self.model.num_timesteps == step:
                os.kill(os.getpid(), signal.SIGINT)
            return original(self)

        monkeypatch.setattr(RunCheckpointCallback, "_on_step", on_step)

    return press_at
