"""Resident memory of an M3PO run after a short and after a long training: the buffers are bounded.

    python benchmarks/bench_memory.py [--env HalfCheetahFwdBwd-v0] [--short 3000] [--long 9000]

D_model holds one epoch of rollouts (M·E·k) and D_env ``env_buffer_size`` real steps; both are preallocated
and overwritten in place once full, so RSS after the long run should equal RSS after the short one (both
past the point where the buffers are full) up to allocator noise.
"""

import argparse

import numpy as np
import psutil
import torch as th

from m3po_sb3 import M3PO, HistoryObservation, history_policy_kwargs
from m3po_sb3.train import make_env  # also registers the meta_mujoco_envs


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="HalfCheetahFwdBwd-v0")
    parser.add_argument("--short", type=int, default=3000, help="env steps of the short run (buffers full by then)")
    parser.add_argument("--long", type=int, default=9000, help="env steps of the long run")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    th.set_num_threads(args.threads)

    env: HistoryObservation = make_env(args.env, 10)
    agent = M3PO(
        "MlpPolicy",
        env,
        epoch_length=250,
        rollouts_per_step=40,
        rollout_every=50,
        gradient_steps=1,
        batch_size=64,
        env_buffer_size=2500,
        policy_kwargs=history_policy_kwargs(env.history_layout, net_arch=(32, 32)),
        model_kwargs=dict(hidden_units=32),
        model_fit_kwargs=dict(max_epochs=5),
        seed=0,
        device="cpu",
    )
    buffers = (agent.replay_buffer, agent.env_buffer)
    allocated = sum(array.nbytes for buffer in buffers for array in vars(buffer).values() if isinstance(array, np.ndarray))
    print(f"D_model {agent.replay_buffer.buffer_size} + D_env {agent.env_buffer.buffer_size} transitions, {allocated / 2**20:.1f} MiB preallocated")
    agent.learn(args.short)
    short = rss_mib()
    print(f"after {args.short:6d} steps: RSS {short:7.1f} MiB (D_model full: {agent.replay_buffer.full}, D_env full: {agent.env_buffer.full})")
    agent.learn(args.long - args.short, reset_num_timesteps=False)
    long = rss_mib()
    print(f"after {args.long:6d} steps: RSS {long:7.1f} MiB, growth {long - short:+.1f} MiB")


if __name__ == "__main__":
    main()
