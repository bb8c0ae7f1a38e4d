"""The trainer of the models of :mod:`m3po_sb3.models.networks` (mbrl-lib's ``ModelTrainer``): maximum-likelihood
fits with a holdout, early stopping and elites.

Training follows MBPO (jannerm/mbpo ``bnn.py``) and mbrl-lib (``ModelTrainer``) wherever the seed is silent:

- each member trains on its own bootstrap of the training split; the holdout is at most 5 000 rows;
- no epoch cap: training stops once no member's held-out error has improved by 1 % (relative) for 5 epochs
  (MBPO's ``> 5`` stops after a sixth: M2PO's :data:`MBPO_FIT_KWARGS`), and the ``E`` members with the lowest
  held-out error are the *elites* that rollouts sample from.

Where this differs from MBPO, and why:

- Each member of M2PO's model is restored to its own best epoch, as MBPO's snapshots do. The meta-model's members
  share the GRU, which that would pair with heads of another epoch: its best *whole model* (the last epoch at
  which some member improved) is restored instead, as mbrl-lib's trainer does. The parameters no member owns
  (the log-variance bounds) are those of that last epoch in both cases.
- The meta-model's targets are standardised (the reward and ``Δo`` have very different scales;
  ``standardise_targets=False``, M2PO's default, leaves them raw as MBPO does) with the statistics of the first
  fit, kept afterwards: refitting them rescales what every output unit means, and the previous weights, which
  the next fit starts from, become much worse (on Pendulum their held-out NLL jumped to 10–213). Inputs are
  refitted every fit, as MBPO and mbrl-lib do (their statistics move slowly as ``D_env`` grows).
- The held-out error is the geometric mean over output dimensions of the mean squared error, not MBPO's
  arithmetic mean: with targets as unequally predictable as a noisy reward and near-deterministic
  observation changes, a 1 % gain of the arithmetic mean is in effect a gain on the least predictable
  output alone, and fits can stop while the other errors still fall. For one output the rules are the same.
- An epoch is one pass over each member's bootstrap, as MBPO's, but at least ``min_epoch_rows`` and at most
  ``epoch_rows`` rows of it. The cap (a fresh random window of a large ``D_env``) stops a fit's cost from
  growing with ``D_env`` (MBPO bounds it with a time cap). An epoch capped to a fraction ``f`` of a
  pass must gain ``f`` of the 1 % asked of a pass (the threshold's log scaled by ``f``): asking 1 % per
  20 000-row window of 160 000 training rows is asking 8 % per pass, and fits stopped while the held-out error
  still fell (warm refits plateaued at a test NLL 0.17 nats above the uncapped fit's, benchmarks/README.md). The
  floor keeps the patience meaningful on a small ``D_env``: MBPO first fits on 5 000 real steps, 16 minibatches per epoch, but an agent with
  ``E = 250`` first fits on 200 training rows, one minibatch, and 5 epochs without a 1 % gain are then 5
  updates: measured on ``Pendulum-v1``, fits stopped after 6 epochs at held-out NLL 24.8 and 0.8 (−3.5 once
  the data had grown), and the policy learned nothing until then. With 10 minibatches per epoch the
  same agents' fits ended at −3.3 to −4.1 from the first on.
- Optional, off by default (MBPO has none): ``fit(calibrate=True)`` rescales each member's variance of each
  output so that its mean squared standardised error on the holdout is 1 (temperature scaling, Kuleshov et
  al., ICML 2018). The stopping rule watches the mean's error only, so the variances go on shrinking on the
  training rows: on random-action ``AntCrippledLeg-v0`` data both models' held-out variances were too small by
  e^0.5 to e^1.6, the meta-model's most (it trains longest), which made its NLL the worse one although its mean
  was the better (benchmarks/README.md). Off by default because it also changes the rollouts' noise (wider on
  the Ant's random-action data, narrower on most outputs of HalfCheetah agent data), which learning runs
  have judged in one setting only.
"""

import copy
import math
from typing import Any, Optional

import numpy as np
import torch as th

from m3po_sb3.models.networks import DynamicsModel, fit_statistics, gaussian_nll, logvar_bound_penalty

# MBPO's patience (``bnn.py`` stops once more than 5 epochs brought no progress): ``fit`` arguments of M2PO.
MBPO_FIT_KWARGS: dict[str, Any] = dict(max_epochs_since_update=6)


class ModelTrainer:
    """
    Fits a :class:`~m3po_sb3.models.networks.DynamicsModel` (or the meta-model) on real transitions with the
    model's own optimizer, so that the optimizer's state is saved and loaded with the model.

    :param model: the model to train in place
    """

    def __init__(self, model: DynamicsModel):
        self.model = model

    def fit(
        self,
        histories: np.ndarray,
        actions: np.ndarray,
        next_obs: np.ndarray,
        rewards: np.ndarray,
        *,
        holdout_ratio: float = 0.2,
        max_holdout: int = 5000,
        batch_size: int = 256,
        max_epochs: Optional[int] = None,
        max_epochs_since_update: int = 5,
        improvement_threshold: float = 0.01,
        min_epoch_rows: int = 2_560,
        epoch_rows: Optional[int] = 20_000,
        first_epoch_counts: bool = True,
        calibrate: bool = False,
        rng: np.random.Generator,
    ) -> dict[str, Any]:
        """
        Maximum-likelihood training, MBPO's way (module docstring), starting from the current weights: a
        random holdout split; each member trains on its own bootstrap of the training split; after every
        epoch each member's held-out error (geometric mean over outputs of the mean squared error of the
        normalised targets) is measured, and training stops once no member has improved by
        ``improvement_threshold`` (relative) for ``max_epochs_since_update`` epochs; the first epoch
        always counts. Each member of a model whose members share no weights is restored to its own best epoch,
        any other model to the last epoch at which some member improved; its ``num_elites`` best members on
        the holdout become the elites.

        :param histories: flat histories ``h_t``, shape ``(N, size)``
        :param actions: actions ``a_t``, shape ``(N, act_dim)``
        :param next_obs: observations ``o_{t+1}``, shape ``(N, obs_dim)``
        :param rewards: rewards ``r_t``, shape ``(N,)``
        :param holdout_ratio: fraction of the transitions held out for early stopping and the elites
        :param max_holdout: cap on the held-out rows (MBPO's 5 000)
        :param batch_size: minibatch size per member
        :param max_epochs: cap on the epochs; ``None``: none, the patience rule alone stops (MBPO)
        :param max_epochs_since_update: patience of the early stopping, in epochs
        :param improvement_threshold: relative decrease of a member's held-out error that counts as progress
            in a pass over its training rows (in an epoch capped by ``epoch_rows`` to a fraction ``f`` of a pass,
            a decrease by a factor ``(1 - improvement_threshold) ** f``)
        :param min_epoch_rows: rows each member sees per epoch at least (several passes over a small training
            split; default 10 minibatches of 256), so that the patience counts more than a few updates
        :param epoch_rows: cap on the rows of its bootstrap each member sees per epoch (a random window of it);
            ``None``: no cap. It bounds the cost of a fit as ``D_env`` grows
        :param first_epoch_counts: count the first epoch as progress, so that the weights before this call are
            never restored (MBPO's ``bnn.py``, whose snapshots start each fit at a loss of 1e10). ``False``: they
            compete with the epochs' (mbrl-lib's rule), and a warm refit whose epochs do not beat them keeps them
            (0.012-0.016 nats worse test NLL after a run's refits to 200 000 rows, benchmarks/README.md)
        :param calibrate: after training, shift each member's log-variance of each output by the log of its
            mean squared standardised error on the holdout (module docstring; the returned ``holdout_nll`` is then
            the calibrated model's, on the rows it was calibrated on); otherwise any earlier shift is dropped
        :param rng: source of the split, bootstraps and shuffling
        :return: ``holdout_nll`` and ``train_nll`` (at most ``max_holdout`` training rows) of the returned
            model's elites, ``holdout_score`` of each member, ``elites``, ``epochs`` trained of ``rows_per_epoch``
            rows per member, ``best_epoch`` (0: the weights before this call, kept; only with ``first_epoch_counts=False``) and ``holdout_curve`` (each
            member's held-out score, the log of its error, after each epoch, from 0)
        """
        model = self.model
        tensors = model.as_tensors(histories, actions, next_obs, rewards)
        n = len(tensors[0])
        n_holdout, rows_per_epoch = fit_sizes(n, holdout_ratio, max_holdout, min_epoch_rows, epoch_rows)
        permutation = th.as_tensor(rng.permutation(n), device=model.device)
        holdout = [x[permutation[:n_holdout]] for x in tensors]
        train = [x[permutation[n_holdout:]] for x in tensors]
        self.fit_normalisers(*train)
        model.logvar_offset.zero_()  # training and the stopping rule see the raw variances
        real_next_obs = model.history_layout.split(tensors[0])[0] + tensors[2][:, :-1]
        model.obs_low.copy_(real_next_obs.min(dim=0).values)
        model.obs_high.copy_(real_next_obs.max(dim=0).values)

        best_score, _ = model.evaluate(*holdout)
        curve = [best_score.tolist()]
        if first_epoch_counts:
            best_score = th.full_like(best_score, math.inf)
        best_state, best_epoch = copy.deepcopy(model.state_dict()), 0
        # Without a shared encoder each member keeps its own best weights (MBPO's snapshots).
        member_wise = model.history_encoder is None
        best_members = {name: weights.clone() for name, weights in model.ensemble.state_dict().items()} if member_wise else None
        bootstrap = rng.integers(len(train[0]), size=(model.ensemble_size, len(train[0])))
        pass_fraction = min(1.0, rows_per_epoch / len(train[0]))
        min_gain = -math.log(1.0 - improvement_threshold) * pass_fraction
        epoch = 0
        while max_epochs is None or epoch < max_epochs:
            epoch += 1
            self._train_epoch(*train, th.as_tensor(_epoch_order(bootstrap, rows_per_epoch, rng), device=model.device), batch_size)
            score, _ = model.evaluate(*holdout)
            curve.append(score.tolist())
            improved = best_score - score > min_gain
            if improved.any():
                best_score = th.where(improved, score, best_score)
                best_state, best_epoch = copy.deepcopy(model.state_dict()), epoch
                if best_members is not None:
                    for name, weights in model.ensemble.state_dict().items():
                        best_members[name][improved] = weights[improved]
            elif epoch - best_epoch >= max_epochs_since_update:
                break
        model.load_state_dict(best_state)
        if best_members is not None:
            model.ensemble.load_state_dict(best_members)
        holdout_score, _ = model.evaluate(*holdout)
        model.elites.copy_(holdout_score.argsort()[: model.num_elites].sort().values)
        if calibrate:
            self.calibrate(*holdout)
        return dict(
            holdout_nll=model.elite_nll(*holdout).mean().item(),
            train_nll=model.elite_nll(*(x[:max_holdout] for x in train)).mean().item(),
            holdout_score=holdout_score.tolist(),
            elites=model.elites.tolist(),
            epochs=epoch,
            rows_per_epoch=rows_per_epoch,
            best_epoch=best_epoch,
            holdout_curve=curve,
        )

    def fit_normalisers(self, histories: th.Tensor, actions: th.Tensor, targets: th.Tensor) -> None:
        """Refit the input statistics; the target statistics only at the first fit, if the model standardises them (module docstring)."""
        model = self.model
        data = dict(obs=model.history_layout.split(histories)[0], act=actions)
        if model.standardise_targets and not model.targets_standardised:
            data["target"] = targets
            model.targets_standardised.fill_(True)
        for name, values in data.items():
            fit_statistics(getattr(model, f"{name}_mean"), getattr(model, f"{name}_std"), values)

    def _train_epoch(self, histories: th.Tensor, actions: th.Tensor, targets: th.Tensor, member_indices: th.Tensor, batch_size: int) -> None:
        """One pass over ``member_indices (B, n)``, each member's rows of the training split in order."""
        model = self.model
        targets = (targets - model.target_mean) / model.target_std
        epoch_loss = th.zeros((), device=model.device)
        for start in range(0, member_indices.shape[1], batch_size):
            batch = member_indices[:, start : start + batch_size]
            loss = self._loss(*model(histories[batch], actions[batch]), targets[batch])
            model.optimizer.zero_grad()
            loss.backward()
            model.optimizer.step()
            epoch_loss += loss.detach()
        # Checked once per epoch, not per step, to avoid a device synchronisation per minibatch.
        if not th.isfinite(epoch_loss):
            raise ValueError("dynamics model training produced a non-finite loss")

    def _loss(self, mean: th.Tensor, logvar: th.Tensor, targets: th.Tensor) -> th.Tensor:
        """Members' (β-)NLLs summed, plus MBPO's penalty that keeps the learned log-variance bounds tight."""
        model = self.model
        nll = gaussian_nll(mean, logvar, targets)
        if model.nll_beta > 0:
            nll = nll * th.exp(model.nll_beta * logvar.detach())
        nll = nll.mean(dim=(1, 2)).sum()
        return nll + logvar_bound_penalty(model.min_logvar, model.max_logvar)

    @th.no_grad()
    def calibrate(self, histories: th.Tensor, actions: th.Tensor, targets: th.Tensor) -> None:
        """Set ``logvar_offset`` so that each member's mean squared standardised error of each output on these rows is 1."""
        model = self.model
        model.logvar_offset.zero_()
        mean, logvar = model(histories, actions)
        standardised_error = ((mean - (targets - model.target_mean) / model.target_std) ** 2 / logvar.exp()).mean(dim=1, keepdim=True)
        model.logvar_offset.copy_(standardised_error.clamp_min(th.finfo(standardised_error.dtype).tiny).log())


def fit_sizes(
    n: int, holdout_ratio: float, max_holdout: int, min_epoch_rows: int, epoch_rows: Optional[int]
) -> tuple[int, int]:
    """
    The held-out rows and the rows each member trains on per epoch of :meth:`ModelTrainer.fit` on ``n`` transitions
    (its parameters of the same names), so that a cost model of the fits (benchmarks/bench_wall_time.py) follows it.
    """
    n_holdout = min(int(n * holdout_ratio), max_holdout)
    if not 0 < n_holdout < n:
        raise ValueError(f"holdout_ratio={holdout_ratio} leaves no holdout or no training data for {n} transitions")
    rows_per_epoch = max(n - n_holdout, min_epoch_rows)
    return n_holdout, rows_per_epoch if epoch_rows is None else min(rows_per_epoch, epoch_rows)


def _epoch_order(bootstrap: np.ndarray, rows: int, rng: np.random.Generator) -> np.ndarray:
    """
    :param bootstrap: each member's bootstrap indices, shape ``(B, n)``
    :param rows: rows per member in the epoch
    :return: shape ``(B, rows)``: consecutive independent shuffles of each member's bootstrap, cut at ``rows``
    """
    passes = -(-rows // bootstrap.shape[1])
    return np.concatenate([rng.permuted(bootstrap, axis=1) for _ in range(passes)], axis=1)[:, :rows]
