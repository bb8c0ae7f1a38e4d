"""Does the meta-model read a hidden, switching parameter from its history? A family of eight systems.

    python benchmarks/hidden_param_family.py [--systems dev|held_out|all|NAME ...] [--seeds 0 1] [--train-steps 4000]

Each system is a real Gymnasium plant (classic control or a MuJoCo v5 robot, stepped through the env itself)
with one hidden parameter that a schedule redraws every ``period`` steps inside the episode: an action gain
(sign flips included, the env's own torque limit saturating it), an action offset, a failed actuator, a mass,
length or friction change, a reward sign and scale. Data come from uniformly random actions (CartPole: a noisy
balancing controller, else its episodes last a dozen steps); histories never cross an episode.

Three models are fitted on the same training transitions with their default ``fit`` and scored on held-out
episodes (another seed) on the outputs the parameter drives (``Output`` below):

- ``meta``: :class:`~m3po_sb3.models.networks.MetaDynamicsModel` as M3PO builds it (B = 3, GRU of 5 units, L = 10, the
  shipped defaults of the model and of ``fit``);
- ``non-adaptive``: :class:`~m3po_sb3.models.networks.DynamicsModel`, the same ensemble on ``(o_t, a_t)`` alone;
- ``oracle``: the same ensemble told the parameter (appended to the action, an input the model does not
  predict, so that its targets and early stopping are the non-adaptive model's).

Scores: the MAE of the elites' mean prediction (in units of each output's test spread, averaged over the
driven outputs) and the NLL (elites' mean, original units, averaged over them); ``gap closed`` =
(non-adaptive - meta) / (non-adaptive - oracle), for each. ``--hidden-units`` narrows the ensemble (the
shipped 400) only to fit a CPU budget; the table says which was used.

The systems are split: ``DEV`` were used to develop the meta-model's defaults, ``HELD_OUT`` were run only
after they were frozen (benchmarks/README.md reports the two halves separately).
"""

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th

from m3po_sb3.history import HistoryLayout
from m3po_sb3.models.networks import DynamicsModel, MetaDynamicsModel
from m3po_sb3.models.training import ModelTrainer

HISTORY_LENGTH = 10


@dataclass(frozen=True)
class Output:
    """Outputs the hidden parameter drives: indices of ``Δo`` and whether the reward is one."""

    delta_obs: tuple[int, ...] = ()
    reward: bool = False

    def columns(self, obs_dim: int) -> list[int]:
        """Columns of the models' ``(Δo, r)`` targets."""
        return [*self.delta_obs, *([obs_dim] if self.reward else [])]


class HiddenParamSystem:
    """
    A Gymnasium env whose hidden parameter (one of ``values``) is redrawn every ``period`` steps.
    Subclasses set the parameter on the env (:meth:`apply`) and may change the action (:meth:`act`) or the
    reward (:meth:`reward`); everything else is the env's own step.
    """

    env_id: str = ""
    values: tuple[float, ...] = ()
    period: int = 50
    episode_steps: int = 200
    output: Output = Output()
    kind: str = ""

    def __init__(self) -> None:
        self.env = gym.make(self.env_id).unwrapped  # our own episode length, not the TimeLimit's
        self.value = self.values[0]

    def apply(self, value: float) -> None:
        self.value = value

    def act(self, action: np.ndarray) -> np.ndarray:
        return action

    def reward(self, reward: float, info: dict[str, Any]) -> float:
        return reward

    def policy(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        space = self.env.action_space
        return rng.uniform(space.low, space.high).astype(np.float32)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        obs, reward, terminated, _, info = self.env.step(self.act(action))
        return np.asarray(obs, np.float32), self.reward(float(reward), info), terminated


class PendulumGain(HiddenParamSystem):
    """Pendulum-v1 whose torque is the action times a hidden gain, sign flips included; the env clips it at ±2."""

    env_id, values, period, kind = "Pendulum-v1", (-2.0, -1.0, -0.5, 0.5, 1.0, 2.0), 50, "action gain, sign flips, saturation"
    output = Output(delta_obs=(2,))  # angular velocity

    def act(self, action: np.ndarray) -> np.ndarray:
        return self.value * action


class MountainCarOffset(HiddenParamSystem):
    """MountainCarContinuous-v0 whose force is offset by a hidden constant (the env clips it to [-1, 1])."""

    env_id, values, period, episode_steps, kind = "MountainCarContinuous-v0", (-0.6, 0.0, 0.6), 100, 400, "action offset"
    output = Output(delta_obs=(0, 1))

    def act(self, action: np.ndarray) -> np.ndarray:
        return action + self.value


class ReacherRewardScale(HiddenParamSystem):
    """Reacher-v5 whose distance reward is multiplied by a hidden sign and scale."""

    env_id, values, period, kind = "Reacher-v5", (-1.0, 0.5, 2.0), 150, "reward sign and scale"
    output = Output(reward=True)

    def reward(self, reward: float, info: dict[str, Any]) -> float:
        return self.value * info["reward_dist"] + info["reward_ctrl"]


class HalfCheetahJointFriction(HiddenParamSystem):
    """
    HalfCheetah-v5 whose joints' viscous friction (``dof_damping``) is scaled by a hidden factor. (Its ground
    friction scaled 0.1x to 4x changed random actions' outcomes too little: the oracle predicted no better.)
    """

    env_id, values, period, episode_steps, kind = "HalfCheetah-v5", (0.1, 1.0, 10.0), 300, 600, "friction"
    output = Output(delta_obs=tuple(range(11, 17)))  # joint velocities

    def __init__(self) -> None:
        super().__init__()
        self.default_damping = self.env.model.dof_damping.copy()

    def apply(self, value: float) -> None:
        super().apply(value)
        self.env.model.dof_damping[:] = value * self.default_damping


class CartPoleLength(HiddenParamSystem):
    """
    CartPole-v1 pushed by a continuous force (``force_mag = 10 |a|`` in the direction of ``a``) whose pole's
    length is hidden; actions from a noisy balancing controller.
    """

    env_id, values, period, kind = "CartPole-v1", (0.2, 0.5, 1.2), 75, "length and mass"
    output = Output(delta_obs=(3,))  # angular velocity

    def apply(self, value: float) -> None:
        super().apply(value)
        env = self.env
        env.length, env.polemass_length = value, env.masspole * value

    def policy(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        push = 0.5 * obs[0] + 1.0 * obs[1] + 10.0 * obs[2] + 1.5 * obs[3]
        return np.clip([push + rng.normal(0.0, 0.6)], -1.0, 1.0).astype(np.float32)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        self.env.force_mag = 10.0 * abs(float(action[0]))
        obs, reward, terminated, _, _ = self.env.step(int(action[0] > 0))
        return np.asarray(obs, np.float32), float(reward), terminated


class ReacherFailedActuator(HiddenParamSystem):
    """Reacher-v5 one of whose two actuators may deliver no torque (-1: none failed)."""

    env_id, values, period, kind = "Reacher-v5", (-1.0, 0.0, 1.0), 25, "failed actuator"
    output = Output(delta_obs=(6, 7))  # joint velocities

    def act(self, action: np.ndarray) -> np.ndarray:
        return action * (np.arange(len(action)) != self.value)


class HalfCheetahTorsoMass(HiddenParamSystem):
    """HalfCheetah-v5 whose torso mass is scaled by a hidden factor."""

    env_id, values, period, episode_steps, kind = "HalfCheetah-v5", (0.3, 1.0, 3.0), 200, 600, "mass"
    output = Output(delta_obs=(9, 10))  # vertical and pitch velocity of the torso

    def __init__(self) -> None:
        super().__init__()
        self.default_mass = float(self.env.model.body_mass[1])

    def apply(self, value: float) -> None:
        super().apply(value)
        self.env.model.body_mass[1] = value * self.default_mass


class HalfCheetahRewardSign(HiddenParamSystem):
    """HalfCheetah-v5 whose forward reward is multiplied by a hidden sign and scale."""

    env_id, values, period, episode_steps, kind = "HalfCheetah-v5", (-1.0, 1.0, 3.0), 250, 600, "reward sign and scale"
    output = Output(reward=True)

    def reward(self, reward: float, info: dict[str, Any]) -> float:
        return self.value * info["reward_forward"] + info["reward_ctrl"]


DEV: dict[str, Callable[[], HiddenParamSystem]] = {
    "pendulum_gain": PendulumGain,
    "mountaincar_offset": MountainCarOffset,
    "reacher_reward_scale": ReacherRewardScale,
    "halfcheetah_joint_friction": HalfCheetahJointFriction,
}
HELD_OUT: dict[str, Callable[[], HiddenParamSystem]] = {
    "cartpole_length": CartPoleLength,
    "reacher_failed_actuator": ReacherFailedActuator,
    "halfcheetah_torso_mass": HalfCheetahTorsoMass,
    "halfcheetah_reward_sign": HalfCheetahRewardSign,
}
SYSTEMS = {**DEV, **HELD_OUT}


def collect(system: HiddenParamSystem, steps: int, seed: int) -> tuple[HistoryLayout, tuple[np.ndarray, ...], np.ndarray]:
    """
    :return: the history layout, ``(histories, actions, next_obs, rewards)`` and the parameter of each step
    """
    rng = np.random.default_rng(seed)
    obs_dim, act_dim = system.env.observation_space.shape[0], system.env.action_space.shape[0] if system.env_id != "CartPole-v1" else 1
    layout = HistoryLayout(obs_dim, act_dim, HISTORY_LENGTH)
    histories = np.empty((steps, layout.size), np.float32)
    actions = np.empty((steps, act_dim), np.float32)
    next_obs = np.empty((steps, obs_dim), np.float32)
    rewards, params = np.empty(steps, np.float32), np.empty(steps, np.float32)
    t = system.episode_steps
    for i in range(steps):
        if t == system.episode_steps:
            obs, _ = system.env.reset(seed=int(rng.integers(2**31)))
            history, t = layout.initial(np.asarray(obs, np.float32)), 0
        if t % system.period == 0:
            system.apply(float(rng.choice(system.values)))
        obs = layout.split(history)[0]
        actions[i] = system.policy(obs, rng)
        next_obs[i], rewards[i], terminated = system.step(actions[i])
        histories[i], params[i] = history, system.value
        history, t = layout.shift(history, actions[i], rewards[i], next_obs[i]), t + 1
        if terminated:
            t = system.episode_steps
    return layout, (histories, actions, next_obs, rewards), params


def scores(model: DynamicsModel, data: tuple[np.ndarray, ...], columns: list[int]) -> tuple[float, float]:
    """
    :return: the MAE of the elites' mean prediction on ``columns`` of the targets (each in units of its spread in
        ``data``) and their mean NLL (original units), averaged over ``columns``
    """
    histories, actions, next_obs, rewards = data
    targets = np.column_stack([next_obs - model.history_layout.split(histories)[0], rewards])[:, columns]
    with th.no_grad():
        mean, _ = model(th.as_tensor(histories), th.as_tensor(actions))
        prediction = (mean[model.elites].mean(dim=0) * model.target_std + model.target_mean).numpy()[:, columns]
    mae = (np.abs(prediction - targets).mean(axis=0) / targets.std(axis=0)).mean()
    return float(mae), float(model.nll(*data, per_output=True)[columns].mean())


def oracle_inputs(data: tuple[np.ndarray, ...], params: np.ndarray, layout: HistoryLayout) -> tuple[np.ndarray, ...]:
    """The oracle's transitions: no past, the parameter appended to the action."""
    histories, actions, next_obs, rewards = data
    oracle_layout = HistoryLayout(layout.obs_dim, layout.act_dim + 1, 1)
    return oracle_layout.initial(layout.split(histories)[0]), np.column_stack([actions, params]), next_obs, rewards


def evaluate_system(
    name: str,
    seed: int,
    train_steps: int,
    test_steps: int,
    hidden_units: int,
    meta_class: type[DynamicsModel] = MetaDynamicsModel,
    models: tuple[str, ...] = ("meta", "non-adaptive", "oracle"),
    meta_fit_kwargs: dict[str, Any] | None = None,
    meta_model_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """
    Fit the three models on one system and seed, each with its default ``fit`` but for ``meta_fit_kwargs``,
    arguments of the meta-model's; ``meta_model_kwargs`` are further arguments of the meta-model's class.

    :return: per model its ``mae``, ``nll``, ``epochs`` and ``seconds``
    """
    system = SYSTEMS[name]()
    layout, train, train_params = collect(system, train_steps, seed)
    _, test, test_params = collect(system, test_steps, seed + 1000)
    columns = system.output.columns(layout.obs_dim)
    result: dict[str, Any] = dict(system=name, seed=seed, kind=system.kind, period=system.period)
    for model_name in models:
        th.manual_seed(seed)
        if model_name == "oracle":
            oracle_layout = HistoryLayout(layout.obs_dim, layout.act_dim + 1, 1)
            model, fit_data, test_data = (
                DynamicsModel(oracle_layout, hidden_units=hidden_units, device="cpu"),
                oracle_inputs(train, train_params, layout),
                oracle_inputs(test, test_params, layout),
            )
        else:
            model_class = meta_class if model_name == "meta" else DynamicsModel
            model_kwargs = (meta_model_kwargs or {}) if model_name == "meta" else {}
            model, fit_data, test_data = model_class(layout, hidden_units=hidden_units, device="cpu", **model_kwargs), train, test
        start = time.perf_counter()
        fit_kwargs = (meta_fit_kwargs or {}) if model_name == "meta" else {}
        info = ModelTrainer(model).fit(*fit_data, rng=np.random.default_rng(seed), **fit_kwargs)
        mae, nll = scores(model, test_data, columns)
        result[model_name] = dict(mae=mae, nll=nll, epochs=info["epochs"], seconds=time.perf_counter() - start)
    return result


def gap_closed(result: dict[str, Any], metric: str) -> float:
    """(non-adaptive - meta) / (non-adaptive - oracle) of ``metric``."""
    baseline = result["non-adaptive"][metric]
    return (baseline - result["meta"][metric]) / (baseline - result["oracle"][metric])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", nargs="+", default=["dev"], help="dev, held_out, all or system names")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--train-steps", type=int, default=4000)
    parser.add_argument("--test-steps", type=int, default=2000)
    parser.add_argument("--hidden-units", type=int, default=400, help="width of the ensembles' two hidden layers (shipped: 400)")
    parser.add_argument("--meta-fit-kwargs", type=json.loads, default={}, help='the meta-model\'s fit arguments, e.g. \'{"max_epochs_since_update": 20}\'')
    parser.add_argument("--meta-model-kwargs", type=json.loads, default={}, help='further arguments of the meta-model, e.g. \'{"action_effect_inputs": true}\'')
    parser.add_argument("--json", help="append each result as a JSON line to this file")
    args = parser.parse_args()
    th.set_num_threads(1)
    groups = dict(dev=list(DEV), held_out=list(HELD_OUT), all=list(SYSTEMS))
    names = [name for entry in args.systems for name in groups.get(entry, [entry])]
    print(f"{'system':26} seed  {'MAE meta / non-adaptive / oracle':34} gap   {'NLL meta / non-adaptive / oracle':34} gap   epochs  s")
    for name in names:
        for seed in args.seeds:
            result = evaluate_system(
                name, seed, args.train_steps, args.test_steps, args.hidden_units, meta_fit_kwargs=args.meta_fit_kwargs, meta_model_kwargs=args.meta_model_kwargs
            )
            models = ("meta", "non-adaptive", "oracle")
            mae = " / ".join(f"{result[m]['mae']:.3f}" for m in models)
            nll = " / ".join(f"{result[m]['nll']:.3f}" for m in models)
            epochs = "/".join(str(result[m]["epochs"]) for m in models)
            seconds = sum(result[m]["seconds"] for m in models)
            print(
                f"{name:26} {seed:4}  {mae:34} {gap_closed(result, 'mae'):5.2f} {nll:34} {gap_closed(result, 'nll'):5.2f} {epochs:7} {seconds:.0f}",
                flush=True,
            )
            if args.json:
                with open(args.json, "a") as file:
                    file.write(json.dumps(dict(result, meta_fit_kwargs=args.meta_fit_kwargs, meta_model_kwargs=args.meta_model_kwargs)) + "\n")


if __name__ == "__main__":
    main()
