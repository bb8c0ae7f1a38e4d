"""Shared test fixtures."""

import pytest
import torch as th


@pytest.fixture(autouse=True)
def single_torch_thread():
    """Small networks train fastest on one thread; the suite runs one pytest-xdist worker per core."""
    threads = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(threads)
