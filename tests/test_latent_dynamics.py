"""GHP-MDP's latent-variable model: the latent inferred from a window identifies the hidden task and helps predict."""

import numpy as np
import pytest
import torch as th
from hidden_task_systems import SYSTEMS, hidden_task_data

from m3po_sb3.models.latent_dynamics import LatentDynamicsModel

SMALL = dict(ensemble_size=2, hidden_units=64, num_hidden_layers=2, encoder_arch=(64,), learning_rate=3e-3, device="cpu")


@pytest.fixture(scope="module")
def gain_models():
    """The latent model and the latent-free one, trained the same way on the pendulum with a hidden action gain."""
    layout = SYSTEMS["action_gain"][1]
    train = hidden_task_data("action_gain", np.random.default_rng(0), 25, labels=True)
    test = hidden_task_data("action_gain", np.random.default_rng(1), 10, labels=True)
    models = {}
    threads = th.get_num_threads()
    th.set_num_threads(1)  # the autouse fixture of that name is function-scoped and comes after this one
    for latent_dim in (4, 0):
        th.manual_seed(0)
        models[latent_dim] = LatentDynamicsModel(layout, latent_dim=latent_dim, **SMALL)
        models[latent_dim].fit(*train[:4], epochs=30, batch_size=128, rng=np.random.default_rng(0))
    th.set_num_threads(threads)
    return models, train, test


def _full_window(data: tuple[np.ndarray, ...], history_length: int) -> np.ndarray:
    """Rows whose whole window of past transitions belongs to their own task."""
    return data[5] >= history_length


def test_inferred_latent_separates_the_tasks(gain_models):
    models, train, test = gain_models
    model = models[4]
    length = model.history_layout.history_length
    with th.no_grad():
        train_means = model.posterior(th.as_tensor(train[0]))[0].numpy()[_full_window(train, length)]
        test_means = model.posterior(th.as_tensor(test[0]))[0].numpy()[_full_window(test, length)]
    train_tasks, test_tasks = train[4][_full_window(train, length)], test[4][_full_window(test, length)]
    tasks = np.unique(train_tasks)
    centroids = np.stack([train_means[train_tasks == task].mean(axis=0) for task in tasks])
    # Nearest centroid of the training tasks' posterior means, on held-out episodes (chance: 1/3).
    nearest = tasks[np.argmin(((test_means[:, None] - centroids[None]) ** 2).sum(-1), axis=1)]
    accuracy = np.mean(nearest == test_tasks)
    # Measured 0.87-0.92 on data and initialisation seeds 0, 1 and 2.
    assert accuracy > 0.8, accuracy


def test_latent_improves_held_out_prediction_over_the_latent_free_model(gain_models):
    models, _, test = gain_models
    rows = _full_window(test, models[4].history_layout.history_length)
    errors = {latent_dim: model.prediction_error(*test[:4])["delta_mse"][rows].mean() for latent_dim, model in models.items()}
    # The gain's effect on the velocity is what the latent-free model cannot know.
    assert errors[4] < 0.4 * errors[0], errors


def test_the_window_at_an_episode_start_gives_the_prior():
    layout = SYSTEMS["action_gain"][1]
    model = LatentDynamicsModel(layout, latent_dim=3, **SMALL)
    mean, variance = model.posterior(th.as_tensor(layout.initial(np.ones((4, layout.obs_dim), np.float32))))
    th.testing.assert_close(mean, th.zeros(4, 3))
    th.testing.assert_close(variance, th.ones(4, 3))


def test_structured_latents_reach_only_their_own_network():
    layout = SYSTEMS["reward_sign"][1]
    model = LatentDynamicsModel(layout, latent_dim=5, reward_latent_dim=2, **SMALL)
    obs, actions = th.randn(2, 7, layout.obs_dim), th.randn(2, 7, layout.act_dim)
    delta = th.randn(2, 7, layout.obs_dim)
    z = th.randn(2, 7, 5)
    changed_reward_latent, changed_dynamics_latent = z.clone(), z.clone()
    changed_reward_latent[..., 3:] += 1.0
    changed_dynamics_latent[..., :3] += 1.0
    with th.no_grad():
        base, other_goal, other_body = (model.predict(obs, actions, latent, delta=delta) for latent in (z, changed_reward_latent, changed_dynamics_latent))
    th.testing.assert_close(other_goal["delta_mean"], base["delta_mean"])
    assert not th.allclose(other_goal["reward_mean"], base["reward_mean"])
    th.testing.assert_close(other_body["reward_mean"], base["reward_mean"])
    assert not th.allclose(other_body["delta_mean"], base["delta_mean"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(latent_dim=-1), "latent_dim"),
        (dict(latent_dim=4, reward_latent_dim=4), "reward_latent_dim"),
        (dict(latent_dim=4, reward_latent_dim=0), "reward_latent_dim"),
        (dict(ensemble_size=0), "ensemble_size"),
        (dict(kl_weight=float("nan")), "kl_weight"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LatentDynamicsModel(SYSTEMS["action_gain"][1], **{**SMALL, **kwargs})


def test_bad_training_data_raises_clear_errors():
    model = LatentDynamicsModel(SYSTEMS["action_gain"][1], latent_dim=2, **SMALL)
    histories, actions, next_obs, rewards = hidden_task_data("action_gain", np.random.default_rng(0), 1, steps=20)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="rewards contains non-finite"):
        model.fit(histories, actions, next_obs, np.where(np.arange(20) == 3, np.nan, rewards), rng=rng)
    with pytest.raises(ValueError, match="actions must have shape"):
        model.fit(histories, actions[:, :0], next_obs, rewards, rng=rng)
    with pytest.raises(ValueError, match="epochs"):
        model.fit(histories, actions, next_obs, rewards, epochs=0, rng=rng)
