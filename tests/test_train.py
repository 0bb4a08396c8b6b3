"""Training on a real MNIST slice: it learns, keeps the best epoch's weights, and stops on NaN."""

from __future__ import annotations

import numpy as np
import pytest

from search import models, train
from search.errors import TrialFailed

MLP = {"model": "mlp", "layers": [{"units": 64}], "learning_rate": 3e-3, "batch_size": 64, "epochs": 2}


def test_mlp_learns_well_above_chance(small_mnist) -> None:
    train.reset(0)
    result = train.fit(models.build(MLP), MLP, small_mnist)
    assert result.epochs_run == 2 and len(result.val_history) == 2
    assert result.val_accuracy > 0.85
    assert train.evaluate(result.model, small_mnist.test_images, small_mnist.test_labels) > 0.85


def test_best_epoch_weights_are_restored(small_mnist) -> None:
    # A learning rate that overshoots makes later epochs worse than the best one; whichever epoch
    # was best, the returned model must score exactly that epoch's validation accuracy.
    config = {**MLP, "optimizer": "sgd", "learning_rate": 1.0, "momentum": 0.9, "epochs": 4}
    train.reset(3)
    result = train.fit(models.build(config), config, small_mnist)
    assert result.best_epoch < result.epochs_run, result.val_history  # the case this test is about
    assert result.val_accuracy == max(result.val_history)
    assert result.best_epoch == result.val_history.index(max(result.val_history)) + 1
    restored = train.evaluate(result.model, small_mnist.val_images, small_mnist.val_labels)
    assert restored == pytest.approx(result.val_accuracy, abs=1e-6)


def test_nan_loss_fails_the_trial(small_mnist) -> None:
    config = {**MLP, "optimizer": "sgd", "learning_rate": 1e30}
    train.reset(0)
    with pytest.raises(TrialFailed, match="loss became NaN at epoch 1"):
        train.fit(models.build(config), config, small_mnist)


def test_seed_makes_initial_weights_repeatable() -> None:
    train.reset(7)
    first = models.build(MLP).get_weights()
    train.reset(7)
    second = models.build(MLP).get_weights()
    train.reset(8)
    third = models.build(MLP).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not np.array_equal(first[0], third[0])


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_each_optimizer_trains(small_mnist, optimizer: str) -> None:
    config = {**MLP, "optimizer": optimizer, "learning_rate": 0.05 if optimizer == "sgd" else 1e-3,
              "momentum": 0.9 if optimizer == "sgd" else 0.0, "epochs": 1}
    train.reset(0)
    assert train.fit(models.build(config), config, small_mnist).val_accuracy > 0.7
