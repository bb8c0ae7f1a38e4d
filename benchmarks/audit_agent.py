"""What a finished run's agent believes against what the env does (issue 10: why M3PO/M2PO do not learn).

    python benchmarks/audit_agent.py RUN_FOLDER [RUN_FOLDER ...] [--episodes 3] [--steps 700] [--refit]

For each run folder of ``m3po_sb3.train`` (its final ``model.zip``), on deterministic episodes of the real env:

- the critic: mean ``min(Q1, Q2)(h_t, π(h_t))`` against the discounted return that followed in the episode
  (Monte Carlo, the first ``--steps`` steps so that every return looks ``--steps`` or more steps ahead);
  ``Q(h, 0)`` for the zero action;
- for M3PO/M2PO, the model's reward (the elite members' mean, plus the known action term when the agent takes
  it as known) for the policy's action against the real reward, and the **control-cost sensitivity**: for
  actions ``a`` drawn uniformly from the action space, the slope and correlation of the even part of the
  predicted reward, ``(r̂(h, a) + r̂(h, -a)) / 2 - r̂(h, 0)``, against the true control term ``info["reward_ctrl"]``
  of ``a`` (``action_reward_fn``, even in ``a``). The velocity's first-order response to the action is odd
  and cancels, so a model that knew the control cost would give a slope and a correlation near 1.

``--refit`` (M3PO/M2PO runs whose last checkpoint is at hand, ``checkpoint/env_buffer.pkl``): fits fresh models
of the agent's class and settings on that ``D_env``, as the agent does and with variants of the fit, and prints
the same control-cost slope for each, after a least-squares check that the data identify the control term
(coefficient near 1): whether the reward's action dependence can be learned from those data.
"""

import argparse
import time

import numpy as np
import torch as th

from m3po_sb3.rollouts import known_action_rewards
from m3po_sb3.runs import load_run


def model_reward(model, histories: th.Tensor, actions: np.ndarray, known_term) -> np.ndarray:  # noqa: ANN001
    """The elite members' mean reward for ``actions`` (env units), plus ``known_term(actions)`` unless ``None``
    (the agent's ``action_reward_fn``: set when it takes the control cost as known)."""
    with th.no_grad():
        mean, _ = model(histories, th.as_tensor(actions, dtype=th.float32))
        rewards = (mean[model.elites] * model.target_std + model.target_mean)[..., -1].mean(0).numpy()
    return rewards if known_term is None else rewards + known_action_rewards(known_term, actions)


def control_sensitivity(model, histories: th.Tensor, actions: np.ndarray, control_fn, known_term) -> tuple[float, float]:  # noqa: ANN001
    """Slope and correlation of the predicted reward's even part in the action against ``control_fn``."""
    even = 0.5 * (model_reward(model, histories, actions, known_term) + model_reward(model, histories, -actions, known_term))
    even -= model_reward(model, histories, np.zeros_like(actions), known_term)
    control = control_fn(actions)
    return float(np.polyfit(control, even, 1)[0]), float(np.corrcoef(control, even)[0, 1])


def audit(folder: str, episodes: int, steps: int) -> dict[str, float]:
    agent, env = load_run(folder, device="cpu")
    action_reward_fn = env.unwrapped.action_reward_fn
    rng = np.random.default_rng(0)
    rows: dict[str, list[float]] = {}
    for episode in range(episodes):
        obs, _ = env.reset(seed=1000 + episode)
        histories, actions, rewards, done = [], [], [], False
        while not done:
            action, _ = agent.predict(obs, deterministic=True)
            histories.append(obs)
            actions.append(action)
            obs, reward, terminated, truncated, _ = env.step(action)
            rewards.append(reward)
            done = terminated or truncated
        returns = np.zeros(len(rewards))
        for t in reversed(range(len(rewards))):
            returns[t] = rewards[t] + agent.gamma * (returns[t + 1] if t + 1 < len(rewards) else 0.0)
        n = min(steps, len(rewards))
        h = th.as_tensor(np.array(histories[:n], dtype=np.float32))
        a = np.array(actions[:n], dtype=np.float32)
        with th.no_grad():
            q_policy = th.min(*agent.critic(h, th.as_tensor(agent.policy.scale_action(a)))).mean().item()
            q_zero = th.min(*agent.critic(h, th.zeros_like(th.as_tensor(a)))).mean().item()
        episode_rows = dict(
            ret=float(np.sum(rewards)),
            mean_abs_action=float(np.abs(a).mean()),
            q_policy=q_policy,
            mc_return=float(returns[:n].mean()),
            q_zero=q_zero,
            real_reward=float(np.mean(rewards[:n])),
        )
        if hasattr(agent, "dynamics_model"):
            random_actions = rng.uniform(env.action_space.low, env.action_space.high, size=a.shape).astype(np.float32)
            model, known_term = agent.dynamics_model, agent.action_reward_fn
            slope, correlation = control_sensitivity(model, h, random_actions, action_reward_fn, known_term)
            episode_rows.update(
                model_reward_policy=float(model_reward(model, h, a, known_term).mean()), ctrl_slope=slope, ctrl_corr=correlation
            )
        for key, value in episode_rows.items():
            rows.setdefault(key, []).append(value)
    env.close()
    return {key: float(np.mean(values)) for key, values in rows.items()}


# Variants of the model fit tried by ``--refit``: (label, model arguments, fit arguments) over the agent's own.
REFITS = (
    ("as the agent", {}, {}),
    ("patience 20 epochs", {}, dict(max_epochs_since_update=20)),
    ("plain NLL (nll_beta 0)", dict(nll_beta=0.0), {}),
)


def refit(folder: str) -> None:
    agent, env = load_run(folder, checkpoint=True, device="cpu")  # with its D_env
    if agent.action_reward_fn is not None:
        raise SystemExit(f"{folder}: --refit checks how a learned reward fits the control cost; this run takes it as known")
    histories, actions, next_obs, rewards = agent.env_transitions()
    rng = np.random.default_rng(0)
    rows = rng.choice(len(rewards), min(2000, len(rewards)), replace=False)
    h = th.as_tensor(histories[rows])
    random_actions = rng.uniform(env.action_space.low, env.action_space.high, size=(len(rows),) + env.action_space.shape).astype(np.float32)
    # Are the data enough? Least squares of the reward on the known term, o_t and o_{t+1}: its coefficient is 1
    # if the term is identifiable (a linear model of the rest of the reward, so only roughly; on the policy's
    # own steps the velocity it buys with large actions is confounded with their cost).
    design = np.column_stack([np.ones(len(rewards)), env.unwrapped.action_reward_fn(actions), agent.history_layout.split(histories)[0], next_obs])
    warm_up = slice(0, agent.learning_starts)  # uniformly random actions
    coefficients = [np.linalg.lstsq(design[subset], rewards[subset], rcond=None)[0][1] for subset in (slice(None), warm_up)]
    print(
        f"{folder}: D_env of {len(rewards)} transitions; least-squares coefficient of the control term "
        f"{coefficients[0]:.2f} (all), {coefficients[1]:.2f} (the {agent.learning_starts} random warm-up steps)"
    )
    for label, model_kwargs, fit_kwargs in REFITS:
        model = type(agent.dynamics_model)(
            agent.history_layout, ensemble_size=agent.ensemble_size, device="cpu", **{**agent.model_kwargs, **model_kwargs}
        )
        start = time.perf_counter()
        stats = model.fit(histories, actions, next_obs, rewards, rng=np.random.default_rng(1), **{**agent.model_fit_kwargs, **fit_kwargs})
        seconds = time.perf_counter() - start
        slope, correlation = control_sensitivity(model, h, random_actions, env.unwrapped.action_reward_fn, None)
        print(
            f"  {label}: {stats['epochs']} epochs, {seconds:.0f} s, held-out NLL {stats['holdout_nll']:.3f}, "
            f"control-cost slope {slope:.2f}, correlation {correlation:.2f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="run folders of m3po_sb3.train (with model.zip)")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--steps", type=int, default=700, help="steps of each episode whose Q is compared")
    parser.add_argument("--refit", action="store_true", help="refit the model on each run's checkpointed D_env instead")
    args = parser.parse_args()
    th.set_num_threads(1)
    if args.refit:
        for folder in args.folders:
            refit(folder)
        return
    columns = ("ret", "mean_abs_action", "q_policy", "mc_return", "q_zero", "real_reward", "model_reward_policy", "ctrl_slope", "ctrl_corr")
    print("| run | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for folder in args.folders:
        result = audit(folder, args.episodes, args.steps)
        cells = [f"{result[key]:.3g}" if key in result else "" for key in columns]
        print(f"| {folder.rstrip('/')} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
