"""What a finished run's agent believes against what the env does (why M3PO/M2PO did not learn in the CPU comparison).

    python benchmarks/audit_agent.py RUN_FOLDER [RUN_FOLDER ...] [--episodes 3] [--steps 700] [--refit | --task-inference]

For each run folder of ``m3po_sb3.train`` (its final ``model.zip``), on deterministic episodes of the real env:

- the episode: its return, length and mean velocity reward ``info["reward_forward"]`` per step (on the Walker,
  whose return is mostly the survival bonus, whether the agent walks or only stands);
- the critic: mean ``min(Q1, Q2)(h_t, π(h_t))`` against the discounted return that followed in the episode
  (Monte Carlo, the first ``--steps`` steps so that every return looks ``--steps`` or more steps ahead);
  ``Q(h, 0)`` for the zero action;
- for M3PO/M2PO, the model's reward (the elite members' mean, plus the known action term when the agent takes
  it as known) for the policy's action against the real reward, and the **control-cost sensitivity**: for
  actions ``a`` drawn uniformly from the action space, the slope and correlation of the even part of the
  predicted reward, ``(r̂(h, a) + r̂(h, -a)) / 2 - r̂(h, 0)``, against the true control term ``info["reward_ctrl"]``
  of ``a`` (``action_reward_fn``, even in ``a``). The velocity's first-order response to the action is odd
  and cancels, so a model that knew the control cost would give a slope and a correlation near 1.

``--task-inference`` (M3PO, M2PO or history-SAC on a direction env): do the model and the critic read the
direction from the rewards in the history? On fresh episodes of the agent's own stochastic policy (data it was
not fit on), on the moving steps (velocity reward ``|v| > 0.3``, ``v = info["reward_forward"]``), each asked
again with the history of the other direction: every past reward's velocity part negated,
``r' = 2 * action_reward_fn(a) - r``.

- The model (M3PO/M2PO): the velocity part of its predicted reward, ``v̂ = r̂(h, a) - action_reward_fn(a)``:
  the fraction with the sign of ``v``, overall and by steps since a reversal of the direction (the history
  holds only the new direction's rewards after ``L`` steps), its mean error, and the **flip slope**: the
  prediction on the flipped history regressed on ``v̂``; -1 for a model that reads the task from the rewards,
  +1 for one that ignores them (M2PO's non-adaptive model).
- The critic: the correlation of ``Q(h, a) - Q(h', a)`` (``h'`` flipped, ``a`` the action taken) with ``v``.
  A critic that reads the task values the same step more under the direction it pays in: positive; one that
  ignores the rewards: 0.

Figures from fewer than 30 moving steps are left blank.

``--refit`` (M3PO/M2PO runs whose last checkpoint is at hand, ``checkpoint/env_buffer.pkl``): fits fresh models
of the agent's class and settings on that ``D_env``, as the agent does and with variants of the fit, and prints
the same control-cost slope for each, after a least-squares check that the data identify the control term
(coefficient near 1): whether the reward's action dependence can be learned from those data. Two variants
repeat the agent's own schedule, a warm refit every ``epoch_length`` steps on the ``D_env`` of that time (its
first rows: exact while ``D_env`` has not wrapped around), with the agent's early-stopping patience and with
20 epochs; the seconds printed for each are the cost of the longer fits (1 torch thread). On a direction env
each model, the agent's own first, also gets the flip slope and the fraction of right signs of
``--task-inference``, here on the moving steps among the last 2 000 of ``D_env`` (the agent's recent data, which
the fits saw).
"""

import argparse
import time
from functools import partial

import numpy as np
import torch as th

from m3po_sb3.models.rollouts import known_action_rewards
from m3po_sb3.run.folders import load_run, read_config
from m3po_sb3.models.training import ModelTrainer


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
        histories, actions, rewards, forward_rewards, done = [], [], [], [], False
        while not done:
            action, _ = agent.predict(obs, deterministic=True)
            histories.append(obs)
            actions.append(action)
            obs, reward, terminated, truncated, info = env.step(action)
            rewards.append(reward)
            forward_rewards.append(info["reward_forward"])
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
            length=len(rewards),
            forward_reward=float(np.mean(forward_rewards)),
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


MOVING = 0.3  # |velocity reward| above which a step counts as moving
MIN_ROWS = 30  # fewer moving steps than this: --task-inference leaves the figure blank
SINCE_REVERSAL = ((0, 10), (10, 50), (50, None))  # --task-inference's bins of steps since a reversal


def flip_direction(layout, histories: np.ndarray, action_reward_fn) -> np.ndarray:  # noqa: ANN001
    """The histories with each past reward's velocity part negated: ``r' = 2 * action_reward_fn(a) - r``."""
    current, past_obs, past_act, past_rew, mask = layout.split(histories)
    control = known_action_rewards(action_reward_fn, past_act.reshape(-1, past_act.shape[-1])).reshape(past_rew.shape)
    return layout.join(current, past_obs, past_act, (2 * control - past_rew) * mask, mask)


def predicted_velocity(agent, histories: np.ndarray, actions: np.ndarray, action_reward_fn, model=None) -> np.ndarray:  # noqa: ANN001
    """The velocity part of the reward that ``model`` (default: the agent's) predicts, ``r̂(h, a) - action_reward_fn(a)``."""
    model = agent.dynamics_model if model is None else model
    rewards = model_reward(model, th.as_tensor(histories), actions, agent.action_reward_fn)
    return rewards - known_action_rewards(action_reward_fn, actions)


def model_direction(agent, model, histories: np.ndarray, actions: np.ndarray, velocity: np.ndarray, moving: np.ndarray, action_reward_fn) -> tuple[np.ndarray, np.ndarray, float]:  # noqa: ANN001
    """
    Does ``model`` read the direction from the rewards in the history?

    :return: its predicted velocity reward, whether each prediction has the velocity's sign, and the flip slope
        (the regression slope, over the ``moving`` steps, of the prediction from the flipped history on the
        prediction: -1 if the model reads the direction from the rewards, +1 if it ignores them)
    """
    flipped_histories = flip_direction(agent.history_layout, histories, action_reward_fn)
    predicted, flipped = (predicted_velocity(agent, x, actions, action_reward_fn, model) for x in (histories, flipped_histories))
    return predicted, np.sign(predicted) == np.sign(velocity), float(np.polyfit(predicted[moving], flipped[moving], 1)[0])


def task_inference(folder: str, episodes: int) -> dict[str, float]:
    agent, env = load_run(folder, device="cpu")
    if "direction" not in env.unwrapped.sample_tasks(1)[0] or read_config(folder)["env_kwargs"].get("task_in_obs"):
        raise SystemExit(f"{folder}: --task-inference needs a run on a direction env whose task is hidden")
    action_reward_fn, layout = env.unwrapped.action_reward_fn, env.history_layout
    histories, actions, velocity, since_reversal = [], [], [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=2000 + episode)
        direction, steps, done = env.unwrapped.get_task()["direction"], 10**6, False
        while not done:
            action, _ = agent.predict(obs, deterministic=False)
            histories.append(obs)
            actions.append(action)
            obs, _, terminated, truncated, info = env.step(action)
            if info["task"]["direction"] != direction:  # the task of this step is reversed
                direction, steps = info["task"]["direction"], 0
            velocity.append(info["reward_forward"])
            since_reversal.append(steps)
            steps += 1
            done = terminated or truncated
    h, a = np.array(histories, dtype=np.float32), np.array(actions, dtype=np.float32)
    velocity, since_reversal = np.array(velocity), np.array(since_reversal)
    h_flipped = flip_direction(layout, h, action_reward_fn)
    moving = np.abs(velocity) > MOVING
    result = dict(moving=float(moving.mean()))
    if moving.sum() < MIN_ROWS:
        return result
    with th.no_grad():
        scaled = th.as_tensor(agent.policy.scale_action(a))
        q, q_flipped = (th.min(*agent.critic(th.as_tensor(x), scaled)).squeeze(-1).numpy() for x in (h, h_flipped))
    result["critic_flip_corr"] = float(np.corrcoef((q - q_flipped)[moving], velocity[moving])[0, 1])
    if not hasattr(agent, "dynamics_model"):
        return result
    predicted, right, flip_slope = model_direction(agent, agent.dynamics_model, h, a, velocity, moving, action_reward_fn)
    result.update(
        right_sign=float(right[moving].mean()),
        error=float(np.abs(predicted - velocity)[moving].mean()),
        abs_velocity=float(np.abs(velocity)[moving].mean()),
        flip_slope=flip_slope,
    )
    for low, high in SINCE_REVERSAL:
        rows = moving & (since_reversal >= low) & (since_reversal < (high or 10**7))
        if rows.sum() >= MIN_ROWS:
            result[f"right_sign_{low}_{high or ''}"] = float(right[rows].mean())
    return result


# Variants of the model fit tried by ``--refit``: (label, model arguments, fit arguments over the agent's own,
# warm refits on the growing D_env as the agent makes them instead of one fit on all of it).
REFITS = (
    ("one fit, as the agent fits", {}, {}, False),
    ("one fit, patience 20 epochs", {}, dict(max_epochs_since_update=20), False),
    ("one fit, plain NLL (nll_beta 0)", dict(nll_beta=0.0), {}, False),
    ("warm refits every epoch, as the agent", {}, {}, True),
    ("warm refits every epoch, patience 20 epochs", {}, dict(max_epochs_since_update=20), True),
)
RECENT_ROWS = 2000  # --refit's direction figures: the last rows of D_env


def direction_inference(agent, model, histories: np.ndarray, actions: np.ndarray, rewards: np.ndarray, action_reward_fn) -> str:  # noqa: ANN001
    """``--task-inference``'s right-sign fraction and flip slope of ``model`` (the agent's or a refit) on real transitions."""
    velocity = rewards - known_action_rewards(action_reward_fn, actions)
    moving = np.abs(velocity) > MOVING
    if moving.sum() < MIN_ROWS:
        return "too few moving steps for the direction figures"
    _, right, flip_slope = model_direction(agent, model, histories, actions, velocity, moving, action_reward_fn)
    return f"direction: right sign {right[moving].mean():.2f}, flip slope {flip_slope:.2f}"


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
    recent = slice(-RECENT_ROWS, None)
    directions = "direction" in env.unwrapped.sample_tasks(1)[0]
    if directions:
        direction = direction_inference(agent, agent.dynamics_model, histories[recent], actions[recent], rewards[recent], env.unwrapped.action_reward_fn)
        print(f"  the agent's own model: {direction}")
    for label, model_kwargs, fit_kwargs, warm_refits in REFITS:
        model = type(agent.dynamics_model)(
            agent.history_layout, ensemble_size=agent.ensemble_size, device="cpu", **{**agent.model_kwargs, **model_kwargs}
        )
        fit_rng, ends = np.random.default_rng(1), [len(rewards)]
        if warm_refits:
            ends = range(agent.learning_starts, len(rewards) + 1, agent.epoch_length)
        start = time.perf_counter()
        for end in ends:
            data = (x[:end] for x in (histories, actions, next_obs, rewards))
            stats = ModelTrainer(model).fit(*data, rng=fit_rng, **{**agent.model_fit_kwargs, **fit_kwargs})
        seconds = time.perf_counter() - start
        slope, correlation = control_sensitivity(model, h, random_actions, env.unwrapped.action_reward_fn, None)
        direction = direction_inference(agent, model, histories[recent], actions[recent], rewards[recent], env.unwrapped.action_reward_fn) if directions else ""
        print(
            f"  {label}: {len(ends)} fit(s), {stats['epochs']} epochs in the last, {seconds:.0f} s, held-out NLL {stats['holdout_nll']:.3f}, "
            f"control-cost slope {slope:.2f}, correlation {correlation:.2f}; {direction}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="run folders of m3po_sb3.train (with model.zip)")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--steps", type=int, default=700, help="steps of each episode whose Q is compared")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--refit", action="store_true", help="refit the model on each run's checkpointed D_env instead")
    mode.add_argument("--task-inference", action="store_true", help="whether the model and the critic read the direction from the rewards")
    args = parser.parse_args()
    th.set_num_threads(1)
    if args.refit:
        for folder in args.folders:
            refit(folder)
        return
    if args.task_inference:
        columns = ("moving", "right_sign", *(f"right_sign_{low}_{high or ''}" for low, high in SINCE_REVERSAL), "error", "abs_velocity", "flip_slope", "critic_flip_corr")
        audit_run = partial(task_inference, episodes=args.episodes)
    else:
        columns = ("ret", "length", "forward_reward", "mean_abs_action", "q_policy", "mc_return", "q_zero", "real_reward", "model_reward_policy", "ctrl_slope", "ctrl_corr")
        audit_run = partial(audit, episodes=args.episodes, steps=args.steps)
    print("| run | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for folder in args.folders:
        result = audit_run(folder)
        cells = [f"{result[key]:.3g}" if key in result else "" for key in columns]
        print(f"| {folder.rstrip('/')} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
