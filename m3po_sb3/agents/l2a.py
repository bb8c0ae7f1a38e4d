"""Learning to Adapt (Nagabandi, Clavera et al., ICLR 2019): GrBAL and ReBAL, the paper's model-based meta-RL
baseline, as stable-baselines3 agents (:class:`~m3po_sb3.planning.mpc.ModelPredictiveControl`).

Both learn a model of ``Δs = s' − s`` and of the reward (the planner's reward, see :mod:`m3po_sb3.planning.mpc`)
from z-scored ``[s, a]``, with targets z-scored too; the statistics are those of **all** the real data,
recomputed at every refit (learning_to_adapt recomputed them from the newest batch while the older data kept the
old ones). Online, the model adapts to the window of the history observation, then MPPI plans with it.

**GrBAL** (:class:`GrBALModel`): an MLP (3 × 512 ReLU in the authors' run script) meta-trained by full
second-order MAML. A task is a window of ``M + K`` consecutive real steps of one episode: one plain-SGD inner step
(``inner_learning_rate``) on the MSE of the first ``M`` steps, the outer MSE of the adapted weights on the next
``K``, differentiated through the inner step (``torch.func``: ``functional_call``, ``grad`` and ``vmap`` over the
windows); Adam on
the mean outer loss of ``meta_batch_size`` windows. Early stopping on the **post-adaptation** validation loss
(learning_to_adapt stopped on the pre-adaptation loss), keeping the best weights. Online, at every step: start
from the meta-trained weights, one gradient step on the last ``M`` real transitions of the history, plan.

**ReBAL** (:class:`ReBALModel`): one LSTM layer (256 units, tanh) and a linear head, trained by sequence
regression with truncated backpropagation through time (chunks of ``chunk_length = 100`` steps from a zero state;
Adam 1e-2). Adaptation is the recurrent state alone: run over the history's window, then carried along each
candidate's predicted rollout.

Choices where the paper and its code leave room, or do not fit here:

- **Validation**: ``validation_fraction`` of the data, in blocks of one window length (so that validation
  windows do not overlap training windows), redrawn at each refit.
- **Epoch** (GrBAL): ``T / (meta_batch_size · (M + K))`` meta-updates, so each real step is seen about once; up
  to ``max_epochs`` epochs, stopped after ``patience`` epochs without a better validation loss. ReBAL: ``T /
  (batch_size · chunk_length)`` updates per epoch, chunks starting at random steps (an episode's last chunk is
  masked past its end, so short, terminated episodes are used too).
- **Window**: ``M`` must not exceed the history length ``L``; at an episode start GrBAL adapts on the real steps
  the window holds (none: no adaptation), ReBAL's state starts from zero.
- The optimizer's state persists across refits (as in the authors' TensorFlow code) and is saved with the agent.
"""

from collections.abc import Callable
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.torch_layers import create_mlp
from stable_baselines3.common.type_aliases import GymEnv
from torch import nn
from torch.func import functional_call, grad, vmap

from m3po_sb3.history.layout import HistoryLayout
from m3po_sb3.planning.mpc import MPCPolicy, ModelPredictiveControl, PlanningModel, Standardizer, TransitionData, Window
from m3po_sb3.planning.planners import check_positive_integers

Params = dict[str, th.Tensor]


class _RegressionModel(PlanningModel):
    """
    What GrBAL's and ReBAL's models share: the z-scoring of ``[s, a]`` and ``[Δs, r]``, the masked MSE, the
    validation split, early stopping with the best weights kept and the step's output transform.

    :param history_layout: the histories' layout
    :param learning_rate: Adam's learning rate
    :param max_epochs: epochs per refit at most
    :param patience: epochs without a better validation loss before stopping
    :param validation_fraction: share of the data held out for early stopping
    """

    def __init__(self, history_layout: HistoryLayout, learning_rate: float, max_epochs: int, patience: int, validation_fraction: float):
        super().__init__(history_layout, learning_rate)
        check_positive_integers(max_epochs=max_epochs, patience=patience)
        if not 0.0 < validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction!r}")
        self.max_epochs, self.patience, self.validation_fraction = int(max_epochs), int(patience), float(validation_fraction)
        obs_dim, act_dim = history_layout.obs_dim, history_layout.act_dim
        self.input_scaler = Standardizer(obs_dim + act_dim)
        self.target_scaler = Standardizer(obs_dim + 1)

    def _inputs(self, observations: th.Tensor, actions: th.Tensor) -> th.Tensor:
        return self.input_scaler(th.cat([observations, actions], dim=-1))

    def _targets(self, observations: th.Tensor, rewards: th.Tensor, next_observations: th.Tensor) -> th.Tensor:
        return self.target_scaler(th.cat([next_observations - observations, rewards[..., None]], dim=-1))

    def _outputs(self, observations: th.Tensor, z: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """:return: the next observations and rewards of the network's z-scored output ``z``"""
        delta_reward = self.target_scaler.inverse(z)
        return observations + delta_reward[..., :-1], delta_reward[..., -1]

    @staticmethod
    def _masked_mse(prediction: th.Tensor, target: th.Tensor, mask: th.Tensor) -> th.Tensor:
        """:param mask: ``prediction.shape[:-1]``; the mean over the real rows (0 when there are none)"""
        squared = ((prediction - target) ** 2).mean(-1) * mask
        return squared.sum() / mask.sum().clamp_min(1.0)

    def _validation_rows(self, n: int, window: int) -> th.Tensor:
        """
        :param window: the length of a training or validation window (or chunk)
        :return: ``(n,)`` bool, held-out rows in blocks of ``4 · window`` rows (so that validation windows fit in
            a block; ``window`` rows, then a tenth of the data, while the data are short); at least one whole
            block is held out and one kept
        """
        block = 4 * window if n >= 8 * window else window
        if n < 2 * block:  # short data: small blocks, so that both parts hold rows
            block = max(1, n // 10)
        blocks = (n + block - 1) // block
        held = th.rand(blocks) < self.validation_fraction
        if blocks >= 2:
            held[th.randint(n // block, ())] = True  # a whole block
            if held.all():
                held[-1] = False
        return held.repeat_interleave(block)[:n].to(self.fitted.device)

    def _fit_scalers(self, data: TransitionData) -> None:
        self.input_scaler.fit(th.cat([data.observations, data.actions], dim=-1))
        self.target_scaler.fit(th.cat([data.next_observations - data.observations, data.rewards[:, None]], dim=-1))

    def _early_stopped_training(self, run_epoch: Callable[[], float], validation_loss: Callable[[], float], updates_per_epoch: int) -> dict[str, float]:
        """
        Alternate ``run_epoch()`` (``updates_per_epoch`` updates; returns the mean training loss) and
        ``validation_loss()`` until ``patience`` epochs bring no improvement or ``max_epochs`` have run; restore
        the best weights.
        """
        best_loss, best_state, best_epoch, train_loss = float(validation_loss()), self._weights(), 0, float("nan")
        initial_loss = best_loss
        for epoch in range(1, self.max_epochs + 1):
            train_loss = run_epoch()
            loss = float(validation_loss())
            if not np.isfinite(loss):
                raise ValueError(f"{type(self).__name__}: the validation loss became non-finite at epoch {epoch} (learning rate too high?)")
            if loss < best_loss:
                best_loss, best_state, best_epoch = loss, self._weights(), epoch
            elif epoch - best_epoch >= self.patience:
                break
        self.load_state_dict(best_state)
        self.fitted.fill_(True)
        return dict(
            validation_loss=best_loss,
            initial_validation_loss=initial_loss,
            train_loss=train_loss,
            epochs=epoch,
            best_epoch=best_epoch,
            updates=epoch * updates_per_epoch,
        )

    def _weights(self) -> dict[str, th.Tensor]:
        return {name: value.detach().clone() for name, value in self.state_dict().items()}


class GrBALModel(_RegressionModel):
    """
    GrBAL's dynamics-and-reward MLP, meta-trained by second-order MAML (see the module docstring).

    :param history_layout: the histories' layout (``history_length >= adaptation_steps``)
    :param learning_rate: Adam's (outer) learning rate
    :param hidden_sizes: the MLP's hidden layers (ReLU)
    :param adaptation_steps: ``M``, transitions of the inner step
    :param prediction_steps: ``K``, transitions of the outer loss
    :param inner_learning_rate: plain SGD's step size in the inner step
    :param meta_batch_size: windows per meta-update
    :param max_epochs: epochs per refit at most
    :param patience: epochs without a better validation loss before stopping
    :param validation_fraction: share of the data held out for early stopping
    """

    def __init__(
        self,
        history_layout: HistoryLayout,
        learning_rate: float = 1e-3,
        hidden_sizes: tuple[int, ...] = (512, 512, 512),
        adaptation_steps: int = 16,
        prediction_steps: int = 16,
        inner_learning_rate: float = 1e-3,
        meta_batch_size: int = 10,
        max_epochs: int = 100,
        patience: int = 5,
        validation_fraction: float = 0.1,
    ):
        super().__init__(history_layout, learning_rate, max_epochs, patience, validation_fraction)
        check_positive_integers(adaptation_steps=adaptation_steps, prediction_steps=prediction_steps, meta_batch_size=meta_batch_size)
        if adaptation_steps > history_layout.history_length:
            raise ValueError(
                f"adaptation_steps={adaptation_steps} exceeds the history length L={history_layout.history_length}: "
                "the online adaptation uses the history's window (raise history_length)"
            )
        if not (np.isfinite(inner_learning_rate) and inner_learning_rate > 0):
            raise ValueError(f"inner_learning_rate must be a positive finite number, got {inner_learning_rate!r}")
        self.adaptation_steps, self.prediction_steps = int(adaptation_steps), int(prediction_steps)
        self.inner_learning_rate, self.meta_batch_size = float(inner_learning_rate), int(meta_batch_size)
        obs_dim, act_dim = history_layout.obs_dim, history_layout.act_dim
        self.net = nn.Sequential(*create_mlp(obs_dim + act_dim, obs_dim + 1, list(hidden_sizes), nn.ReLU))
        self.optimizer = th.optim.Adam(self.net.parameters(), lr=self.learning_rate)

    def _loss(self, params: Params, inputs: th.Tensor, targets: th.Tensor, mask: th.Tensor) -> th.Tensor:
        return self._masked_mse(functional_call(self.net, params, (inputs,)), targets, mask)

    def adapted_params(self, inputs: th.Tensor, targets: th.Tensor, mask: th.Tensor) -> Params:
        """
        One plain-SGD step from the meta-trained weights on each window's z-scored transitions, all windows at
        once (``torch.func.vmap`` of ``torch.func.grad``). The step is differentiable: meta-training
        backpropagates through it (the second-order term of MAML); it is computed under ``torch.no_grad`` too.

        :param inputs: ``(B, M, obs_dim + act_dim)``
        :param targets: ``(B, M, obs_dim + 1)``
        :param mask: ``(B, M)``
        :return: the adapted weights of each window, each with a leading dimension ``B``
        """
        params = dict(self.net.named_parameters())
        grads = vmap(grad(self._loss), in_dims=(None, 0, 0, 0))(params, inputs, targets, mask)
        return {name: value - self.inner_learning_rate * grads[name] for name, value in params.items()}

    def _window_loss(self, window: Window) -> th.Tensor:
        """:return: the post-adaptation loss on the last ``K`` steps of each ``M + K`` window, averaged"""
        inputs = self._inputs(window.observations, window.actions)
        targets = self._targets(window.observations, window.rewards, window.next_observations)
        m = self.adaptation_steps
        adapted = self.adapted_params(inputs[:, :m], targets[:, :m], window.mask[:, :m])
        return vmap(self._loss)(adapted, inputs[:, m:], targets[:, m:], window.mask[:, m:]).mean()

    def fit(self, data: TransitionData) -> dict[str, float]:
        length = self.adaptation_steps + self.prediction_steps
        self._fit_scalers(data)
        validation = self._validation_rows(len(data), length)
        train_starts, validation_starts = data.window_starts(length, ~validation), data.window_starts(length, validation)
        if len(validation_starts) == 0 or len(train_starts) == 0:
            # Short or few episodes leave a split without a whole window: hold out windows instead (they may overlap
            # training windows; with more data the blocks above take over).
            starts = data.window_starts(length)
            if len(starts) < 2:
                raise ValueError(
                    f"GrBAL needs episodes of at least M + K = {length} consecutive steps; got {len(data)} transitions "
                    f"with {len(starts)} such windows"
                )
            starts = starts[th.randperm(len(starts))]
            held = max(1, int(self.validation_fraction * len(starts)))
            validation_starts, train_starts = starts[:held], starts[held:]
            validation = th.zeros_like(validation)
        validation_starts = validation_starts[th.randperm(len(validation_starts))[: 10 * self.meta_batch_size]]
        updates = max(1, int((~validation).sum()) // (self.meta_batch_size * length))

        def run_epoch() -> float:
            total = 0.0
            for _ in range(updates):
                starts = train_starts[th.randint(len(train_starts), (self.meta_batch_size,))]
                loss = self._window_loss(data.windows(starts, length))
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                total += loss.item()
            return total / updates

        def validation_loss() -> float:  # in parts: each window holds its own adapted copy of the weights
            with th.no_grad():
                chunks = validation_starts.split(5 * self.meta_batch_size)
                return float(np.mean([self._window_loss(data.windows(starts, length)).item() for starts in chunks]))

        return self._early_stopped_training(run_epoch, validation_loss, updates)

    def adapt(self, window: Window) -> Params:
        m = self.adaptation_steps
        inputs = self._inputs(window.observations[0, -m:], window.actions[0, -m:])
        targets = self._targets(window.observations[0, -m:], window.rewards[0, -m:], window.next_observations[0, -m:])
        params = dict(self.net.named_parameters())
        with th.enable_grad():  # one window: autograd's grad, several times cheaper than vmap's for a single row
            grads = th.autograd.grad(self._loss(params, inputs, targets, window.mask[0, -m:]), list(params.values()))
        return {name: (value - self.inner_learning_rate * g).detach() for (name, value), g in zip(params.items(), grads)}

    def step(self, context: Params, observations: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor, Params]:
        z = functional_call(self.net, context, (self._inputs(observations, actions),))
        next_observations, rewards = self._outputs(observations, z)
        return next_observations, rewards, context


class ReBALModel(_RegressionModel):
    """
    ReBAL's recurrent dynamics-and-reward model (see the module docstring).

    :param history_layout: the histories' layout
    :param learning_rate: Adam's learning rate
    :param hidden_size: LSTM units
    :param chunk_length: steps of truncated backpropagation through time
    :param batch_size: chunks per update
    :param max_epochs: epochs per refit at most
    :param patience: epochs without a better validation loss before stopping
    :param validation_fraction: share of the data held out for early stopping
    """

    def __init__(
        self,
        history_layout: HistoryLayout,
        learning_rate: float = 1e-2,
        hidden_size: int = 256,
        chunk_length: int = 100,
        batch_size: int = 10,
        max_epochs: int = 100,
        patience: int = 5,
        validation_fraction: float = 0.1,
    ):
        super().__init__(history_layout, learning_rate, max_epochs, patience, validation_fraction)
        check_positive_integers(hidden_size=hidden_size, chunk_length=chunk_length, batch_size=batch_size)
        self.chunk_length, self.batch_size = int(chunk_length), int(batch_size)
        obs_dim, act_dim = history_layout.obs_dim, history_layout.act_dim
        self.lstm = nn.LSTM(obs_dim + act_dim, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, obs_dim + 1)
        self.optimizer = th.optim.Adam(self.parameters(), lr=self.learning_rate)

    def _chunks(self, data: TransitionData, starts: th.Tensor, rows: th.Tensor) -> Window:
        """
        Chunks of ``chunk_length`` steps from ``starts``, masked from the first step that leaves the episode, the
        data or the allowed ``rows`` (so that training never sees validation rows, nor validation training rows).
        """
        unclipped = starts[:, None] + th.arange(self.chunk_length, device=starts.device)
        index = unclipped.clamp_max(len(data) - 1)
        inside = (index == unclipped) & (data.episodes[index] == data.episodes[starts][:, None]) & rows[index]
        mask = th.cumprod(inside.float(), dim=1)
        return Window(data.observations[index], data.actions[index], data.rewards[index], data.next_observations[index], mask)

    def _chunk_loss(self, chunks: Window) -> th.Tensor:
        outputs, _ = self.lstm(self._inputs(chunks.observations, chunks.actions))
        targets = self._targets(chunks.observations, chunks.rewards, chunks.next_observations)
        return self._masked_mse(self.head(outputs), targets, chunks.mask)

    def fit(self, data: TransitionData) -> dict[str, float]:
        self._fit_scalers(data)
        validation = self._validation_rows(len(data), self.chunk_length)
        rows = th.arange(len(data), device=validation.device)
        train_starts, validation_starts = rows[~validation], rows[validation][:: max(1, self.chunk_length // 4)]
        if len(train_starts) == 0 or len(validation_starts) == 0:
            raise ValueError(f"ReBAL needs data for training and validation, got {len(data)} transitions")
        validation_chunks = self._chunks(data, validation_starts, validation)
        updates = max(1, len(train_starts) // (self.batch_size * self.chunk_length))

        def run_epoch() -> float:
            total = 0.0
            for _ in range(updates):
                chunks = self._chunks(data, train_starts[th.randint(len(train_starts), (self.batch_size,))], ~validation)
                loss = self._chunk_loss(chunks)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                total += loss.item()
            return total / updates

        def validation_loss() -> float:
            with th.no_grad():
                return self._chunk_loss(validation_chunks).item()

        return self._early_stopped_training(run_epoch, validation_loss, updates)

    def adapt(self, window: Window) -> tuple[th.Tensor, th.Tensor]:
        """:return: the LSTM's state after the window's real steps, from zero (the padding precedes them)"""
        state = tuple(window.observations.new_zeros(1, 1, self.lstm.hidden_size) for _ in range(2))
        real = int(window.mask[0].sum())
        if real == 0:
            return state  # type: ignore[return-value]
        _, state = self.lstm(self._inputs(window.observations[:, -real:], window.actions[:, -real:]), state)
        return state

    def step(self, context: tuple[th.Tensor, th.Tensor], observations: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor, Any]:
        h, c = (part.expand(1, len(observations), -1).contiguous() for part in context)
        outputs, state = self.lstm(self._inputs(observations, actions)[:, None], (h, c))
        next_observations, rewards = self._outputs(observations, self.head(outputs[:, 0]))
        return next_observations, rewards, state


class GrBAL(ModelPredictiveControl):
    """
    Gradient-Based Adaptive Learner (Nagabandi, Clavera et al. 2019) on stable-baselines3: MPPI with a
    meta-learned model adapted by one gradient step on the last ``adaptation_steps`` transitions (see
    :mod:`m3po_sb3.agents.l2a` and :mod:`m3po_sb3.planning.mpc`). The authors' run script: 3 × 512 ReLU, ``M = K =
    16``, inner learning rate 1e-3, Adam 1e-3, meta-batch 10, up to 100 epochs per iteration, 5 000 steps per
    iteration (5 rollouts of 1 000), the first iteration random.

    :param model_kwargs: :class:`GrBALModel`'s arguments
    :param history_length: ``L``, at least ``adaptation_steps`` (default: ``adaptation_steps``)
    :param kwargs: :class:`~m3po_sb3.planning.mpc.ModelPredictiveControl`'s arguments
    """

    model_class = GrBALModel

    def __init__(
        self,
        policy: str | type[MPCPolicy],
        env: GymEnv | str | None,
        model_kwargs: dict[str, Any] | None = None,
        history_length: int | None = None,
        **kwargs: Any,
    ):
        model_kwargs = dict(model_kwargs or {})
        if history_length is None and isinstance(env, str):
            history_length = int(model_kwargs.get("adaptation_steps", 16))
        super().__init__(policy, env, model_kwargs=model_kwargs, history_length=history_length, **kwargs)


class ReBAL(ModelPredictiveControl):
    """
    Recurrence-Based Adaptive Learner (Nagabandi, Clavera et al. 2019) on stable-baselines3: MPPI with an LSTM
    model whose state, run over the history's window, is the adaptation (see :mod:`m3po_sb3.agents.l2a`).

    :param learning_rate: Adam's learning rate (1e-2 in the authors' run script)
    :param model_kwargs: :class:`ReBALModel`'s arguments
    :param kwargs: :class:`~m3po_sb3.planning.mpc.ModelPredictiveControl`'s arguments
    """

    model_class = ReBALModel

    def __init__(
        self,
        policy: str | type[MPCPolicy],
        env: GymEnv | str | None,
        learning_rate: float = 1e-2,
        model_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(policy, env, learning_rate=learning_rate, model_kwargs=model_kwargs, **kwargs)
