"""Where does the critic of M3PO settle? Policy evaluation with the actor frozen, on different data.

    python benchmarks/frozen_policy_evaluation.py RUN_FOLDER [--updates 20000] [--variants model real:0.05 real:0.5 env rebuilt:1 rebuilt:5]

From the last checkpoint of an M3PO/M2PO run (``checkpoint/``: the agent, ``D_env`` and ``D_model``), the actor
and the entropy coefficient are frozen and the critics alone are trained with SAC's loss and Polyak-averaged
targets, from the checkpoint's weights, on one kind of data per variant:

- ``model``: the checkpoint's ``D_model`` (what M3PO's SAC samples: one-step branched rollouts, k = 1);
- ``real:F``: minibatches with a share ``F`` of real transitions from ``D_env`` (``M3PO(real_ratio=F)``);
- ``env``: ``D_env`` only (off-policy evaluation on real data, whose next histories are also training inputs);
- ``rebuilt:K``: a ``D_model`` made again by the frozen policy and the checkpoint's model, 100 000 rollouts of
  ``K`` steps.

It prints ``min(Q1, Q2)(h, π(h))`` averaged over the last 5 000 real histories of ``D_env`` every fifth of the
updates. With the policy fixed, TD should move the critic towards that policy's value; with a mean reward near
``r`` per step that is about ``r / (1 − γ)``.

The critic update is written out here because SB3's ``SAC.train`` has no critic-only mode.
"""

import argparse
import copy
from pathlib import Path

import numpy as np
import torch as th
import torch.nn.functional as F
from stable_baselines3.common.logger import configure
from stable_baselines3.common.utils import polyak_update

from m3po_sb3.agents.buffers import HybridReplayBuffer, ModelReplayBuffer
from m3po_sb3.run.folders import load_run

PROBE_ROWS = 5000  # the last real histories, where the critic's value is read
REBUILT_ROLLOUTS = 100_000


def training_data(agent, variant: str):  # noqa: ANN001, ANN201
    """The buffer a variant's critic samples (see the module's docstring)."""
    kind, _, value = variant.partition(":")
    if kind == "model":
        return agent.replay_buffer
    if kind == "env":
        return agent.env_buffer
    if kind == "real":
        return HybridReplayBuffer(agent.replay_buffer, agent.env_buffer, 1.0 - float(value))
    if kind == "rebuilt":
        k = int(value)
        saved = agent.replay_buffer, agent.rollout_length  # rollout_dynamics fills the agent's own D_model
        agent.rollout_length = k
        agent.replay_buffer = ModelReplayBuffer(REBUILT_ROLLOUTS * k, agent.observation_space, agent.action_space, agent.env_buffer, k, agent.device)
        th.manual_seed(1)
        agent.rollout_dynamics(REBUILT_ROLLOUTS)
        rebuilt, (agent.replay_buffer, agent.rollout_length) = agent.replay_buffer, saved
        return rebuilt
    raise ValueError(f"unknown variant {variant!r}: model, env, real:F or rebuilt:K")


def evaluate(agent, buffer, updates: int, probe: th.Tensor) -> list[float]:  # noqa: ANN001
    """Train the critics alone on ``buffer``; ``Q(h, π(h))`` on ``probe`` before and every fifth of the updates."""
    alpha = th.exp(agent.log_ent_coef).item()
    params, target_params = list(agent.critic.parameters()), list(agent.critic_target.parameters())
    th.manual_seed(0)
    np.random.seed(0)
    values = []
    for step in range(updates + 1):
        if step % (updates // 5) == 0:
            with th.no_grad():
                actions, _ = agent.actor.action_log_prob(probe)
                values.append(th.min(*agent.critic(probe, actions)).mean().item())
        if step == updates:
            break
        data = buffer.sample(agent.batch_size)
        with th.no_grad():
            next_actions, next_log_prob = agent.actor.action_log_prob(data.next_observations)
            next_q = th.min(*agent.critic_target(data.next_observations, next_actions)) - alpha * next_log_prob.reshape(-1, 1)
            target = data.rewards + agent.gamma * (1 - data.dones) * next_q
        loss = 0.5 * sum(F.mse_loss(q, target) for q in agent.critic(data.observations, data.actions))
        agent.critic.optimizer.zero_grad()
        loss.backward()
        agent.critic.optimizer.step()
        polyak_update(params, target_params, agent.tau)
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="an M3PO/M2PO run folder with its checkpoint/")
    parser.add_argument("--updates", type=int, default=20_000, help="critic updates per variant (a multiple of 5, the read-outs)")
    parser.add_argument("--variants", nargs="+", default=["model", "real:0.05", "real:0.5", "env", "rebuilt:1", "rebuilt:5"])
    args = parser.parse_args()
    if args.updates < 5 or args.updates % 5:
        parser.error(f"--updates must be a positive multiple of 5 (Q is read every fifth of them), got {args.updates}")
    th.set_num_threads(1)
    agent, _ = load_run(args.folder, checkpoint=True, device="cpu")  # with its D_env and D_model
    agent.set_logger(configure(None, []))
    size = agent.env_buffer.size()
    probe = th.as_tensor(agent.env_buffer.histories(np.arange(max(0, size - PROBE_ROWS), size))[0])
    rewards = agent.env_buffer.rewards[:size].mean()
    print(
        f"{args.folder}: checkpoint at {agent.num_timesteps} steps, alpha {th.exp(agent.log_ent_coef).item():.4f}, "
        f"mean real reward {rewards:.3f} (r / (1 - gamma) = {rewards / (1 - agent.gamma):.1f})"
    )
    print(f"| data | Q(h, π(h)) every {args.updates // 5} updates |\n|---|---|")
    start = copy.deepcopy((agent.critic.state_dict(), agent.critic_target.state_dict(), agent.critic.optimizer.state_dict()))
    for variant in args.variants:
        buffer = training_data(agent, variant)  # before the reset: rebuilt rollouts need no critic
        agent.critic.load_state_dict(start[0])
        agent.critic_target.load_state_dict(start[1])
        agent.critic.optimizer.load_state_dict(start[2])
        values = evaluate(agent, buffer, args.updates, probe)
        print(f"| {variant} | " + " → ".join(f"{value:.2f}" for value in values) + " |", flush=True)


if __name__ == "__main__":
    main()
