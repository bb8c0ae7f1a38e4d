"""Memory of M3PO's buffers at the Table-2 sizes, sampling speed against SB3's ReplayBuffer, and RSS over a run.

    python benchmarks/bench_memory.py [--sample-envs HalfCheetahFwdBwd-v0 HumanoidDirec-v0] [--rss]

1. Bytes allocated by ``D_env`` (``HistoryReplayBuffer``, ``env_buffer_size`` rows) and ``D_model``
   (``ModelReplayBuffer``, ``M·E·k`` rows) of every Table-2 preset, against what SB3's ``ReplayBuffer`` of
   full histories (the buffers before the compact ones) allocates for the same rows. The compact buffers are built
   (``np.zeros`` reserves without touching pages); the SB3 figure is its arrays' sizes, computed.
2. ``sample(256)`` of both kinds filled with the same transitions (``--env-rows`` real steps of random actions,
   ``--model-rows`` one-step fictitious transitions from them), interleaved repeats, medians, ratio.
3. With ``--rss``: resident memory after a short and a long small M3PO run (buffers full in both): the
   buffers are bounded, RSS does not grow.
"""

import argparse
import time

import numpy as np
import psutil
import torch as th
from stable_baselines3.common.buffers import ReplayBuffer

from m3po_sb3 import M3PO, HistoryObservation, history_policy_kwargs
from m3po_sb3.agents.buffers import HistoryReplayBuffer, ModelReplayBuffer
from m3po_sb3.run.config import PRESETS, TABLE2, get_preset
from m3po_sb3.models.rollouts import RolloutBatch
from m3po_sb3.run.registry import make_env  # also registers the meta_mujoco_envs

GIB = 2**30


def allocated_bytes(buffer: ReplayBuffer) -> int:
    return sum(array.nbytes for array in vars(buffer).values() if isinstance(array, np.ndarray))


def sb3_bytes(rows: int, history_size: int, act_dim: int) -> int:
    """Bytes of SB3's ReplayBuffer (one env): observations, next_observations, actions, rewards, dones, timeouts."""
    return rows * 4 * (2 * history_size + act_dim + 3)


def buffers(env: HistoryObservation, config: dict, env_rows: int, model_rows: int) -> tuple[HistoryReplayBuffer, ModelReplayBuffer]:
    env_buffer = HistoryReplayBuffer(env_rows, env.observation_space, env.action_space, env.history_layout, device="cpu")
    model_buffer = ModelReplayBuffer(model_rows, env.observation_space, env.action_space, env_buffer, config["rollout_length"], device="cpu")
    return env_buffer, model_buffer


def preset_memory() -> None:
    print("Table-2 presets: bytes allocated by D_env + D_model (GiB)")
    print(f"{'preset':26s} {'history':>7s} {'D_env rows':>10s} {'D_model rows':>12s} {'SB3 (before)':>12s} {'compact':>8s} {'ratio':>6s} {'<= 2 GiB':>8s}")
    for name in PRESETS:
        if name == "demo":
            continue
        config = get_preset(name, "m3po")
        env = make_env(name, config["history_length"])
        layout = env.history_layout
        model_rows = config["rollouts_per_step"] * config["epoch_length"] * config["rollout_length"]
        compact = sum(allocated_bytes(buffer) for buffer in buffers(env, config, config["env_buffer_size"], model_rows))
        before = sb3_bytes(config["env_buffer_size"], layout.size, layout.act_dim) + sb3_bytes(model_rows, layout.size, layout.act_dim)
        print(
            f"{name:26s} {layout.size:7d} {config['env_buffer_size']:10d} {model_rows:12d} {before / GIB:12.2f} {compact / GIB:8.3f} "
            f"{before / compact:6.1f} {'yes' if compact <= 2 * GIB else 'NO':>8s}"
        )
        env.close()


def fill(env: HistoryObservation, env_buffer: HistoryReplayBuffer, reference: ReplayBuffer, n_steps: int, seed: int) -> None:
    """Random-action steps into both buffers, as SB3's off-policy algorithms add them."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    low, high = env.action_space.low, env.action_space.high
    for _ in range(n_steps):
        action = rng.uniform(-1, 1, size=env.action_space.shape).astype(np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(low + 0.5 * (action + 1) * (high - low))
        infos = [{"TimeLimit.truncated": truncated and not terminated}]
        for buffer in (env_buffer, reference):
            buffer.add(obs[None], next_obs[None], action[None], np.array([reward]), np.array([terminated or truncated]), infos)
        obs = env.reset()[0] if terminated or truncated else next_obs


def fill_model(env_buffer: HistoryReplayBuffer, model_buffer: ModelReplayBuffer, reference: ReplayBuffer, n_rows: int, seed: int) -> None:
    """One-step fictitious transitions from random D_env rows (random predictions) into both buffers."""
    rng = np.random.default_rng(seed)
    layout = env_buffer.history_layout
    rows = env_buffer.sample_rows(n_rows)
    histories = env_buffer.histories(rows)[0]
    action = rng.uniform(-1, 1, size=(n_rows, layout.act_dim)).astype(np.float32)
    reward = rng.normal(size=n_rows).astype(np.float32)
    next_obs = rng.normal(size=(n_rows, layout.obs_dim)).astype(np.float32)
    next_histories = layout.shift(histories, action, reward, next_obs)
    done = np.zeros(n_rows, np.float32)
    batch = RolloutBatch(histories, next_histories, action, reward, done, 0, np.arange(n_rows), np.zeros(n_rows, np.int64))
    model_buffer.extend(batch, rows)
    reference.observations[:n_rows, 0], reference.next_observations[:n_rows, 0] = histories, next_histories
    reference.actions[:n_rows, 0], reference.rewards[:n_rows, 0], reference.pos = action, reward, n_rows


def sampling_speed(env_id: str, env_rows: int, model_rows: int, repeats: int, batch_size: int = 256, calls: int = 200) -> None:
    config = get_preset(env_id, "m3po")
    env = make_env(env_id, config["history_length"])
    env_buffer, model_buffer = buffers(env, config, env_rows, model_rows)
    env_reference = ReplayBuffer(env_rows, env.observation_space, env.action_space, device="cpu")
    model_reference = ReplayBuffer(model_rows, env.observation_space, env.action_space, device="cpu", handle_timeout_termination=False)
    fill(env, env_buffer, env_reference, env_rows, seed=0)
    fill_model(env_buffer, model_buffer, model_reference, model_rows, seed=0)
    pairs = dict(D_env=(env_reference, env_buffer), D_model=(model_reference, model_buffer))
    timings = {(name, kind): [] for name in pairs for kind in ("sb3", "compact")}
    for repeat in range(repeats):
        for name, (reference, compact) in pairs.items():
            order = [("sb3", reference), ("compact", compact)]
            for kind, buffer in order if repeat % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                for _ in range(calls):
                    buffer.sample(batch_size)
                timings[name, kind].append((time.perf_counter() - start) / calls * 1e3)
    print(f"{env_id}: sample({batch_size}) in ms, median of {repeats} interleaved repeats of {calls} calls")
    for name in pairs:
        sb3, compact = (float(np.median(timings[name, kind])) for kind in ("sb3", "compact"))
        print(f"  {name:8s} ({len(pairs[name][1].actions) if name == 'D_model' else env_rows} rows): SB3 ReplayBuffer {sb3:.3f}, compact {compact:.3f}, ratio {compact / sb3:.2f}")
    env.close()


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


def rss_over_a_run(env_id: str, short: int, long: int) -> None:
    env: HistoryObservation = make_env(env_id, 10)
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
    allocated = sum(allocated_bytes(buffer) for buffer in (agent.replay_buffer, agent.env_buffer))
    print(f"D_model {agent.replay_buffer.buffer_size} + D_env {agent.env_buffer.buffer_size} transitions, {allocated / 2**20:.1f} MiB preallocated")
    agent.learn(short)
    before = rss_mib()
    print(f"after {short:6d} steps: RSS {before:7.1f} MiB (D_model full: {agent.replay_buffer.full}, D_env full: {agent.env_buffer.full})")
    agent.learn(long - short, reset_num_timesteps=False)
    after = rss_mib()
    print(f"after {long:6d} steps: RSS {after:7.1f} MiB, growth {after - before:+.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample-envs", nargs="*", default=["HalfCheetahFwdBwd-v0", "HumanoidDirec-v0"])
    parser.add_argument("--env-rows", type=int, default=20_000, help="real steps in D_env for the sampling benchmark")
    parser.add_argument("--model-rows", type=int, default=50_000, help="fictitious transitions in D_model for it")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rss", action="store_true", help="also measure RSS over a short and a long M3PO run")
    parser.add_argument("--short", type=int, default=3000, help="env steps of the short run (buffers full by then)")
    parser.add_argument("--long", type=int, default=9000, help="env steps of the long run")
    args = parser.parse_args()
    th.set_num_threads(1)
    assert TABLE2["rollout_length"] == 1
    preset_memory()
    for env_id in args.sample_envs:
        sampling_speed(env_id, args.env_rows, args.model_rows, args.repeats)
    if args.rss:
        rss_over_a_run("HalfCheetahFwdBwd-v0", args.short, args.long)


if __name__ == "__main__":
    main()
