"""Task inference on HalfCheetahFwdBwd-v0: the reward prediction error after a direction switch.

    python benchmarks/bench_task_inference.py [--seeds 0 1 2] [--train-episodes 12] [--hidden-units 200] [--max-epochs 60]

The direction of ``HalfCheetahFwdBwd-v0`` changes only the reward (``direction * x_velocity - ctrl_cost``),
so after a switch only the past rewards in the history can tell a model which way the reward now points.
Data come from a policy that runs forward and backward without knowing the task: open-loop sine gaits found by
a small random search on ``HalfCheetah-v5``, a new gait (direction, phase, amplitude) every 20-80 steps,
independent of the task switches. The task switches every ``--task-switch-seconds`` (2 s = 40 steps, for more
switches per episode than the default 15 s). Three models are fitted on the same transitions:

- ``non-adaptive``: :class:`m3po_sb3.models.networks.DynamicsModel` on ``(o_t, a_t)`` (M2PO's model);
- ``meta``: :class:`m3po_sb3.models.networks.MetaDynamicsModel` on the history ``h_t`` (L = 10, rewards included);
- ``oracle``: ``DynamicsModel`` on the env's ``task_in_obs=True`` observation, which carries the direction.

On held-out episodes the script prints, per number of steps since the last direction change (a redraw that
keeps the direction is no change), the mean absolute error of the reward predicted by the elite members' mean, and
the reward's Gaussian NLL (mean over the elite members, original units), as mean [min, max] over seeds. The row
``oracle, direction averaged`` is the oracle's prediction averaged over both directions: the level of a model
that knows the dynamics but not the direction. Steps before an episode's first direction change are left out.
"""

import argparse
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import gymnasium as gym
import numpy as np
import torch as th

import meta_mujoco_envs  # noqa: F401  (registers the envs)
from m3po_sb3.models.networks import DynamicsModel, MetaDynamicsModel
from m3po_sb3.history import HistoryLayout, HistoryObservation
from m3po_sb3.models.training import ModelTrainer

ENV_ID = "HalfCheetahFwdBwd-v0"
# Steps since the last direction change; the last bin holds that many steps and more.
STEP_BINS = (0, 1, 2, 3, 5, 10, 20)
MODELS = ("non-adaptive", "meta", "oracle", "oracle, direction averaged")


@dataclass(frozen=True)
class Gait:
    """Open-loop sine gait ``a_j(t) = amplitude * sin(2 pi frequency t + phases_j)`` (t in seconds)."""

    frequency: float
    amplitude: float
    phases: np.ndarray

    def action(self, time_s: float) -> np.ndarray:
        return self.amplitude * np.sin(2 * np.pi * self.frequency * time_s + self.phases)


def mean_velocity(env: gym.Env, gait: Gait, rng: np.random.Generator, starts: int = 3, steps: int = 150, warmup: int = 50) -> float:
    """Mean ``x_velocity`` of ``gait`` on a ``HalfCheetah-v5`` env after ``warmup`` steps, over random starts and phase offsets."""
    dt, velocities = env.unwrapped.dt, []
    for _ in range(starts):
        env.reset(seed=int(rng.integers(2**31)))
        shifted = Gait(gait.frequency, gait.amplitude, gait.phases + rng.uniform(0, 2 * np.pi))
        velocities += [env.step(shifted.action(t * dt))[4]["x_velocity"] for t in range(steps)][warmup:]
    return float(np.mean(velocities))


def find_gaits(rng: np.random.Generator, candidates: int = 100, refinements: int = 150) -> list[Gait]:
    """
    A forward and a backward gait for ``HalfCheetah-v5``: the fastest of ``candidates`` random gaits in each
    direction, then improved by a (1+1) random search of ``refinements`` perturbations (kept when faster).

    :param rng: source of the candidates, perturbations and starts
    :param candidates: random gaits tried
    :param refinements: perturbations tried per direction
    :return: ``[forward_gait, backward_gait]``
    """
    env = gym.make("HalfCheetah-v5")
    act_dim = env.action_space.shape[0]
    tried = [Gait(rng.uniform(1.0, 4.0), rng.uniform(0.7, 1.0), rng.uniform(0, 2 * np.pi, act_dim)) for _ in range(candidates)]
    speeds = [mean_velocity(env, gait, rng, starts=2) for gait in tried]
    gaits = []
    for sign in (1.0, -1.0):
        best = tried[int(np.argmax(sign * np.array(speeds)))]
        best_speed = sign * mean_velocity(env, best, rng)
        for _ in range(refinements):
            gait = Gait(
                float(np.clip(best.frequency + 0.2 * rng.standard_normal(), 0.5, 5.0)),
                float(np.clip(best.amplitude + 0.05 * rng.standard_normal(), 0.3, 1.0)),
                best.phases + 0.3 * rng.standard_normal(act_dim),
            )
            speed = sign * mean_velocity(env, gait, rng)
            if speed > best_speed:
                best, best_speed = gait, speed
        gaits.append(best)
    env.close()
    return gaits


class GaitPolicy:
    """
    Task-blind policy that moves: a gait drawn from ``gaits`` (with a random phase offset and amplitude scale)
    for a random number of steps, then another; Gaussian action noise on top, clipped to ``[-1, 1]``.

    :param gaits: gaits to draw from (forward and backward ones)
    :param rng: source of the segments and noise
    :param dt: env time step, in seconds
    :param segment_steps: range of the segment lengths, in steps
    :param action_noise: standard deviation of the action noise
    """

    def __init__(
        self, gaits: list[Gait], rng: np.random.Generator, dt: float, segment_steps: tuple[int, int] = (20, 80), action_noise: float = 0.1
    ):
        self.gaits, self.rng, self.dt = gaits, rng, dt
        self.segment_steps, self.action_noise = segment_steps, action_noise
        self._gait: Optional[Gait] = None
        self._steps_left = 0

    def __call__(self, step: int) -> np.ndarray:
        if self._steps_left == 0:
            base = self.gaits[int(self.rng.integers(len(self.gaits)))]
            phases = base.phases + self.rng.uniform(0, 2 * np.pi)
            self._gait = Gait(base.frequency, base.amplitude * self.rng.uniform(0.8, 1.0), phases)
            self._steps_left = int(self.rng.integers(*self.segment_steps, endpoint=True))
        self._steps_left -= 1
        noise = self.action_noise * self.rng.standard_normal(len(self._gait.phases))
        return np.clip(self._gait.action(step * self.dt) + noise, -1.0, 1.0).astype(np.float32)


@dataclass
class Transitions:
    """
    Real transitions, seen twice: through the hidden-task env and through the oracle env (``task_in_obs``).

    ``steps_since_switch`` counts the steps since the direction last changed in the episode (0 on the step that
    runs under a new direction), -1 before the episode's first change.
    """

    layout: HistoryLayout
    oracle_layout: HistoryLayout
    histories: np.ndarray
    oracle_histories: np.ndarray
    actions: np.ndarray
    next_obs: np.ndarray
    oracle_next_obs: np.ndarray
    rewards: np.ndarray
    steps_since_switch: np.ndarray

    @property
    def directions(self) -> np.ndarray:
        """The direction of each step (the oracle's task entry)."""
        return self.oracle_histories[:, self.oracle_layout.obs_dim - 1]

    def model_data(self, oracle: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(histories, actions, next_obs, rewards)`` as a model's ``fit``/``nll`` take them."""
        if oracle:
            return self.oracle_histories, self.actions, self.oracle_next_obs, self.rewards
        return self.histories, self.actions, self.next_obs, self.rewards


def collect(
    gaits: list[Gait],
    seed: int,
    episodes: int,
    episode_steps: int = 1000,
    task_switch_seconds: float = 2.0,
    history_length: int = 10,
    **env_kwargs: Any,
) -> Transitions:
    """
    Run :class:`GaitPolicy` on the hidden-task env and, in lockstep with the same seed and actions, on the oracle
    env; both are wrapped in :class:`HistoryObservation`.

    :param gaits: the policy's gaits
    :param seed: seed of the envs' task sequences, start states and the policy
    :param episodes: number of episodes
    :param episode_steps: steps per episode (time limit)
    :param task_switch_seconds: task period of the env, in seconds
    :param history_length: ``L``
    :param env_kwargs: further arguments of the env (e.g. ``frame_skip``)
    :return: the transitions
    """
    rng = np.random.default_rng(seed)
    envs = [
        HistoryObservation(
            gym.make(ENV_ID, task_switch_seconds=task_switch_seconds, task_in_obs=oracle, max_episode_steps=episode_steps, **env_kwargs),
            history_length,
        )
        for oracle in (False, True)
    ]
    policy = GaitPolicy(gaits, rng, envs[0].unwrapped.dt)
    rows: dict[str, list] = {name: [] for name in Transitions.__dataclass_fields__ if not name.endswith("layout")}
    for _ in range(episodes):
        episode_seed = int(rng.integers(2**31))
        (history, info), (oracle_history, _) = (env.reset(seed=episode_seed) for env in envs)
        direction, since = info["task"]["direction"], -1
        for step in range(episode_steps):
            action = policy(step)
            history_next, reward, terminated, truncated, info = envs[0].step(action)
            oracle_next, oracle_reward, *_ = envs[1].step(action)
            if oracle_reward != reward:
                raise RuntimeError("the oracle env ran out of lockstep with the hidden-task env")
            # The oracle env's o_t shows the task of step t - 1 (a switch opens step t): the oracle is given the
            # task of step t, the one behind r_t, and so is not asked to predict the task's next change either.
            oracle_history = oracle_history.copy()
            oracle_history[envs[1].history_layout.obs_dim - 1] = info["task"]["direction"]
            if info["task"]["direction"] != direction:
                direction, since = info["task"]["direction"], 0
            elif since >= 0:
                since += 1
            for name, value in (
                ("histories", history),
                ("oracle_histories", oracle_history),
                ("actions", action),
                ("next_obs", envs[0].history_layout.split(history_next)[0]),
                ("oracle_next_obs", envs[1].history_layout.split(oracle_next)[0]),
                ("rewards", reward),
                ("steps_since_switch", since),
            ):
                rows[name].append(value)
            history, oracle_history = history_next, oracle_next
            if terminated or truncated:
                break
    for env in envs:
        env.close()
    arrays = {name: np.asarray(values, dtype=np.int64 if name == "steps_since_switch" else np.float32) for name, values in rows.items()}
    return Transitions(envs[0].history_layout, envs[1].history_layout, **arrays)


@th.no_grad()
def reward_errors(model: DynamicsModel, histories: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """
    Per transition: absolute error of the reward's mean over the elite members (those rollouts sample from),
    and the reward's Gaussian NLL averaged over them, both in the reward's original units.

    :return: ``(absolute_error (N,), nll (N,))``
    """
    mean, logvar = model(th.as_tensor(histories, device=model.device), th.as_tensor(actions, device=model.device))
    scale, offset = model.target_std[-1], model.target_mean[-1]
    reward_mean, reward_logvar = mean[model.elites, :, -1] * scale + offset, logvar[model.elites, :, -1] + 2 * scale.log()
    targets = th.as_tensor(rewards, device=model.device)
    nll = 0.5 * ((targets - reward_mean) ** 2 * th.exp(-reward_logvar) + reward_logvar + np.log(2 * np.pi))
    return (reward_mean.mean(dim=0) - targets).abs().cpu().numpy(), nll.mean(dim=0).cpu().numpy()


@th.no_grad()
def direction_averaged_errors(oracle: DynamicsModel, transitions: Transitions) -> np.ndarray:
    """Absolute reward error of the oracle's mean prediction averaged over both directions (no NLL)."""
    predictions = []
    for direction in (1.0, -1.0):
        histories = transitions.oracle_histories.copy()
        histories[:, oracle.history_layout.obs_dim - 1] = direction  # the current observation's task entry
        mean, _ = oracle(th.as_tensor(histories, device=oracle.device), th.as_tensor(transitions.actions, device=oracle.device))
        predictions.append((mean[oracle.elites, :, -1] * oracle.target_std[-1] + oracle.target_mean[-1]).mean(dim=0).cpu().numpy())
    return np.abs(np.mean(predictions, axis=0) - transitions.rewards)


def by_steps_since_switch(values: np.ndarray, steps_since_switch: np.ndarray) -> np.ndarray:
    """Mean of ``values`` per :data:`STEP_BINS` entry (the last bin: that many steps and more); NaN if empty."""
    selections = [steps_since_switch == k for k in STEP_BINS[:-1]] + [steps_since_switch >= STEP_BINS[-1]]
    return np.array([values[selection].mean() if selection.any() else np.nan for selection in selections])


def model_factories(model_kwargs: dict[str, Any], gru_units: int = 5) -> dict[str, Callable[[HistoryLayout], DynamicsModel]]:
    """Constructors of the three fitted models from a history layout (``model_kwargs``: of :class:`DynamicsModel`)."""
    return {
        "non-adaptive": lambda layout: DynamicsModel(layout, device="cpu", **model_kwargs),
        "meta": lambda layout: MetaDynamicsModel(layout, gru_units, device="cpu", **model_kwargs),
        "oracle": lambda layout: DynamicsModel(layout, device="cpu", **model_kwargs),
    }


def evaluate_seed(
    gaits: list[Gait],
    seed: int,
    train_episodes: int,
    test_episodes: int,
    model_kwargs: dict[str, Any],
    fit_kwargs: dict[str, Any],
    collect_kwargs: dict[str, Any],
    gru_units: int = 5,
    verbose: bool = False,
) -> dict[str, np.ndarray]:
    """
    Collect training and held-out data with ``seed``, fit the three models on the same transitions and measure
    them on the held-out ones.

    :return: per entry of :data:`MODELS`, an array ``(2, len(STEP_BINS))``: MAE and NLL per bin (NLL NaN for
        the direction-averaged row)
    """
    train = collect(gaits, seed=2 * seed, episodes=train_episodes, **collect_kwargs)
    test = collect(gaits, seed=2 * seed + 1, episodes=test_episodes, **collect_kwargs)
    results, fitted = {}, {}
    for name, factory in model_factories(model_kwargs, gru_units).items():
        oracle = name == "oracle"
        th.manual_seed(seed)
        model = factory(train.oracle_layout if oracle else train.layout)
        start = time.perf_counter()
        info = ModelTrainer(model).fit(*train.model_data(oracle), rng=np.random.default_rng(seed), **fit_kwargs)
        if verbose:
            summary = f"{info['epochs']} epochs (best {info['best_epoch']}), held-out NLL {info['holdout_nll']:.3f}"
            print(f"seed {seed} {name}: {summary}, {time.perf_counter() - start:.0f} s", flush=True)
        histories, actions, _, rewards = test.model_data(oracle)
        errors, nll = reward_errors(model, histories, actions, rewards)
        results[name] = np.stack([by_steps_since_switch(values, test.steps_since_switch) for values in (errors, nll)])
        fitted[name] = model
    averaged = direction_averaged_errors(fitted["oracle"], test)
    results[MODELS[-1]] = np.stack([by_steps_since_switch(averaged, test.steps_since_switch), np.full(len(STEP_BINS), np.nan)])
    return results


def format_table(title: str, per_seed: list[dict[str, np.ndarray]], metric: int, models: tuple[str, ...]) -> str:
    """A markdown table of one metric: a row per model, a column per bin, ``mean [min, max]`` over seeds."""
    header = [f"| {title} | " + " | ".join(f"{k}+" if k == STEP_BINS[-1] else str(k) for k in STEP_BINS) + " |"]
    header.append("|---" * (len(STEP_BINS) + 1) + "|")
    for name in models:
        values = np.array([result[name][metric] for result in per_seed])
        cells = [f"{m:.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in zip(values.mean(axis=0), values.min(axis=0), values.max(axis=0))]
        header.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(header)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-episodes", type=int, default=12)
    parser.add_argument("--test-episodes", type=int, default=3)
    parser.add_argument("--episode-steps", type=int, default=1000)
    parser.add_argument("--task-switch-seconds", type=float, default=2.0)
    parser.add_argument("--history-length", type=int, default=10)
    parser.add_argument("--hidden-units", type=int, default=200, help="width of the models' 2 hidden layers (Table 2: 400)")
    parser.add_argument("--gru-units", type=int, default=5)
    parser.add_argument("--max-epochs", type=int, default=60)
    parser.add_argument("--gait-candidates", type=int, default=100)
    parser.add_argument("--gait-refinements", type=int, default=150)
    args = parser.parse_args()
    th.set_num_threads(1)

    start = time.perf_counter()
    gaits = find_gaits(np.random.default_rng(0), args.gait_candidates, args.gait_refinements)
    speeds = [mean_velocity(gym.make("HalfCheetah-v5"), gait, np.random.default_rng(1), starts=10) for gait in gaits]
    print(f"gait search: {time.perf_counter() - start:.0f} s; x_velocity of the gaits (10 new starts): {speeds[0]:.2f}, {speeds[1]:.2f}")
    model_kwargs = dict(hidden_units=args.hidden_units)
    collect_kwargs = dict(
        episode_steps=args.episode_steps, task_switch_seconds=args.task_switch_seconds, history_length=args.history_length
    )
    per_seed = []
    for seed in args.seeds:
        fit_kwargs = dict(max_epochs=args.max_epochs)
        episodes = (args.train_episodes, args.test_episodes)
        result = evaluate_seed(gaits, seed, *episodes, model_kwargs, fit_kwargs, collect_kwargs, args.gru_units, verbose=True)
        per_seed.append(result)
        print(format_table(f"seed {seed}: reward MAE", [result], 0, MODELS), flush=True)
    print(f"\n{ENV_ID}, {len(args.seeds)} seeds, mean [min, max]; columns: steps since the last direction change")
    print(format_table("reward MAE", per_seed, 0, MODELS))
    print()
    print(format_table("reward NLL", per_seed, 1, MODELS[:-1]))
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
