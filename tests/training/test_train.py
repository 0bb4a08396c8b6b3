"""Training on a real MNIST slice: it learns, keeps the best epoch's weights, stops on NaN, trains by
steps, averages weights as TF does, decays the learning rate at the right step, and augments."""

from __future__ import annotations

import math
import sys

import keras
import numpy as np
import pytest
from helpers import ROOT

from search.errors import TrialFailed
from search.space import schema
from search.training import datasets, models, optimizers, train

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


def test_trials_share_the_data_on_the_device_and_skip_long_lived_objects_in_gc(small_mnist) -> None:
    import gc

    config = schema.resolve(MLP)
    train.reset(0)
    assert gc.get_freeze_count() > 0  # start-up objects frozen: clear_session's collection skips them
    train.CompiledLoop(models.build(config), optimizers.make_optimizer(config), config, small_mnist)
    images = train.on_device(small_mnist)[0]
    train.reset(1)
    train.CompiledLoop(models.build(config), optimizers.make_optimizer(config), config, small_mnist)
    assert train.on_device(small_mnist)[0] is images  # copied to the device once, not per trial
    other = datasets.load("mnist", train_size=500)
    assert train.on_device(other)[0].shape[0] == 500  # another data set replaces it
    assert train.on_device(small_mnist)[0] is not images


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_each_optimizer_trains(small_mnist, optimizer: str) -> None:
    config = {**MLP, "optimizer": optimizer, "learning_rate": 0.05 if optimizer == "sgd" else 1e-3,
              "momentum": 0.9 if optimizer == "sgd" else 0.0, "epochs": 1}
    train.reset(0)
    assert train.fit(models.build(config), config, small_mnist).val_accuracy > 0.7


class Recorder(keras.callbacks.Callback):
    """Per step (with one step per execution): the learning rate a step uses and the raw weights after it."""

    def __init__(self) -> None:
        super().__init__()
        self.rates: list[float] = []
        self.weights: list[list[np.ndarray]] = []

    def on_train_begin(self, logs=None) -> None:
        self.weights.append([np.array(w) for w in self.model.trainable_weights])

    def on_train_batch_begin(self, batch, logs=None) -> None:
        self.rates.append(float(self.model.optimizer.learning_rate))

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.weights.append([np.array(w) for w in self.model.trainable_weights])


def fit_recorded(config: dict, data, monkeypatch) -> tuple[train.FitResult, Recorder]:
    monkeypatch.setattr(train, "BATCHES_PER_CALL", 1)  # so batch callbacks see every step
    recorder = Recorder()
    train.reset(0)
    return train.fit(models.build(config), config, data, callbacks=[recorder]), recorder


def test_plan_splits_steps_into_rounds_of_about_an_epoch() -> None:
    s3 = schema.resolve({"model": "mlp", "batch_size": 100, "steps": 30_000})
    assert train.plan(s3, 55_000) == train.Plan(rounds=50, steps_per_round=600, steps_per_epoch=550,
                                                total_steps=30_000)
    s1 = train.plan(schema.resolve({"model": "softmax", "batch_size": 100, "steps": 1000}), 55_000)
    assert (s1.rounds, s1.steps_per_round) == (2, 500)
    by_epochs = train.plan(schema.resolve({"model": "mlp", "epochs": 3}), 55_000)
    assert (by_epochs.rounds, by_epochs.steps_per_round) == (3, None)
    shifted = train.plan(schema.resolve({"model": "mlp", "batch_size": 100, "augment": "shift_flip"}), 55_000)
    assert shifted.steps_per_epoch == 3300  # six versions of each image


def test_training_by_steps_runs_exactly_that_many(small_mnist) -> None:
    config = {**MLP, "batch_size": 50, "steps": 70}  # 40 steps an epoch: 2 rounds of 35, 7 per execution
    train.reset(0)
    result = train.fit(models.build(config), config, small_mnist)
    assert int(result.model.optimizer.iterations) == 70
    assert result.epochs_run == 2 and result.val_accuracy > 0.7


def test_ema_evaluates_the_step_dependent_average(small_mnist, monkeypatch) -> None:
    config = {**MLP, "optimizer": "sgd", "learning_rate": 0.1, "batch_size": 100, "steps": 20, "ema": 0.9}
    result, recorder = fit_recorded(config, small_mnist, monkeypatch)
    # TF's ExponentialMovingAverage(0.9, num_updates): shadow starts at the initial weights and after
    # update t (0-based) moves with decay min(0.9, (1 + t) / (10 + t)).
    shadow = [w.astype(np.float64) for w in recorder.weights[0]]
    for step, weights in enumerate(recorder.weights[1:]):
        decay = min(0.9, (1 + step) / (10 + step))
        shadow = [decay * s + (1 - decay) * w for s, w in zip(shadow, weights, strict=True)]
    assert len(recorder.weights) == 21
    evaluated = [np.array(w) for w in result.model.trainable_weights]
    for got, want, raw in zip(evaluated, shadow, recorder.weights[-1], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
        assert not np.allclose(got, raw, atol=1e-4)  # the averaged weights, not the trained ones
    # The validation accuracy that was reported (and kept) is the averaged model's.
    assert train.evaluate(result.model, small_mnist.val_images, small_mnist.val_labels) == pytest.approx(
        result.val_accuracy, abs=1e-6)


def test_exponential_staircase_decay_steps_down_exactly_at_the_boundary(small_mnist, monkeypatch) -> None:
    config = {**MLP, "optimizer": "sgd", "learning_rate": 0.5, "batch_size": 200, "steps": 12,
              "schedule": "exponential", "decay_rate": 0.5, "decay_steps": 5, "staircase": True}
    _, recorder = fit_recorded(config, small_mnist, monkeypatch)
    assert recorder.rates == pytest.approx([0.5] * 5 + [0.25] * 5 + [0.125] * 2)
    smooth = {**config, "staircase": False}
    _, recorder = fit_recorded(smooth, small_mnist, monkeypatch)
    assert recorder.rates == pytest.approx([0.5 * 0.5 ** (step / 5) for step in range(12)], rel=1e-5)


def test_s3_schedule_decays_once_an_epoch() -> None:
    from search.space.tutorials import TUTORIALS

    rate = optimizers.learning_rate(schema.resolve(TUTORIALS["S3"].config), steps_per_epoch=550, total_steps=30_000)
    assert [float(rate(step)) for step in (0, 549, 550, 1099, 1100)] == pytest.approx(
        [0.8, 0.8, 0.8 * 0.99, 0.8 * 0.99, 0.8 * 0.99**2])


def test_cosine_schedule_runs_to_zero_over_the_whole_run(small_mnist, monkeypatch) -> None:
    config = {**MLP, "optimizer": "sgd", "learning_rate": 0.2, "batch_size": 200, "steps": 10, "schedule": "cosine"}
    _, recorder = fit_recorded(config, small_mnist, monkeypatch)
    assert recorder.rates == pytest.approx([0.1 * (1 + math.cos(math.pi * step / 10)) for step in range(10)], abs=1e-6)


@pytest.mark.parametrize("augment", ["shift", "shift_flip", "random"])
def test_augmented_training_learns(small_mnist, augment: str) -> None:
    config = {**MLP, "augment": augment, "shift_pixels": 1, "rotation_degrees": 10.0, "epochs": 1}
    train.reset(0)
    result = train.fit(models.build(config), config, small_mnist)
    assert result.val_accuracy > 0.8


@pytest.mark.parametrize("name", ["adam", "sgd", "rmsprop"])
def test_fused_optimizers_take_exactly_keras_steps(name: str) -> None:
    # The fused kernels must be Keras's own arithmetic: same weights after the same gradients.
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(30, 20)).astype("float32"), rng.normal(size=(20,)).astype("float32")]
    grads = [[rng.normal(size=w.shape).astype("float32") for w in start] for _ in range(6)]
    options = {} if name == "adam" else {"momentum": 0.9}
    stock_class = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}[name]
    fused, stock = optimizers.OPTIMIZERS[name](0.01, **options), stock_class(0.01, **options)
    assert type(fused) is not type(stock)
    results = []
    for optimizer in (fused, stock):
        variables = [keras.Variable(w) for w in start]
        for step in grads:
            optimizer.apply([keras.ops.convert_to_tensor(g) for g in step], variables)
        results.append([np.array(v) for v in variables])
    for got, want, first in zip(*results, start, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        assert not np.allclose(got, first)


def test_compiled_loop_runs_every_batch_including_the_short_last_one(small_mnist, monkeypatch) -> None:
    monkeypatch.setattr(train, "BATCHES_PER_CALL", 5)  # 32 batches an epoch: calls of 5, 5, ..., 2
    config = {**MLP, "batch_size": 64, "epochs": 2}  # 2,000 images: 31 full batches and one of 16
    train.reset(0)
    result = train.fit(models.build(config), config, small_mnist)
    assert int(result.model.optimizer.iterations) == 64


def test_batch_norm_and_dropout_train_in_the_compiled_loop(small_mnist) -> None:
    config = {**MLP, "batch_norm": True, "dropout": 0.3, "epochs": 2}
    train.reset(0)
    result = train.fit(models.build(config), config, small_mnist)
    moving_mean = result.model.get_layer("dense_0_bn").moving_mean
    assert np.abs(np.array(moving_mean)).max() > 0  # updated in training mode; starts at zeros
    assert result.val_accuracy > 0.85
    # Inference is deterministic (dropout off, moving statistics used): two evaluations agree.
    first = train.evaluate(result.model, small_mnist.val_images, small_mnist.val_labels)
    assert first == train.evaluate(result.model, small_mnist.val_images, small_mnist.val_labels)
    assert first == pytest.approx(result.val_accuracy, abs=1e-9)


def test_compiled_loop_and_model_fit_reach_the_same_accuracy() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))  # model.fit, as benchmarks/keras_fit.py runs it
    from keras_fit import fit_keras

    from search.training import datasets

    # Long enough to converge, so that the two trainers' different shuffles matter little (measured
    # over seeds 0-2: 96.13/96.14, 96.14/96.13, 95.97/95.86% test).
    mnist = datasets.load("mnist", train_size=20_000)
    config = {"model": "mlp", "layers": [{"units": 256}], "learning_rate": 1e-3, "batch_size": 128, "epochs": 6}
    accuracies = {}
    for name, trainer in (("compiled", train.fit), ("model.fit", fit_keras)):
        train.reset(0)
        result = trainer(models.build(config), config, mnist)
        accuracies[name] = result.accuracy(mnist.test_images, mnist.test_labels)
        assert result.epochs_run == 6
    assert accuracies["compiled"] > 0.955, accuracies
    assert abs(accuracies["compiled"] - accuracies["model.fit"]) <= 0.005, accuracies


def test_bfloat16_training_reaches_float32_accuracy_and_hands_back_a_float32_model() -> None:
    from search.training import datasets

    mnist = datasets.load("mnist", train_size=20_000)  # as above: long enough to converge
    config = {"model": "mlp", "layers": [{"units": 256}], "learning_rate": 1e-3, "batch_size": 128, "epochs": 6}
    accuracies = {}
    for precision in ("float32", "bfloat16"):
        train.reset(0)
        trained = models.build(config, precision)
        result = train.fit(trained, config, mnist)
        accuracies[precision] = result.accuracy(mnist.test_images, mnist.test_labels)
        # What is tested and kept is a float32 model holding the trained weights, so rebuilding it
        # from the config and those weights (as export does) gives exactly the recorded accuracy.
        assert models.precision_of(result.model) == "float32"
        rebuilt = models.build(config)
        rebuilt.set_weights(result.model.get_weights())
        assert train.evaluate(rebuilt, mnist.test_images, mnist.test_labels) == accuracies[precision]
    assert models.precision_of(trained) == "bfloat16"
    assert accuracies["bfloat16"] > 0.955, accuracies
    assert abs(accuracies["bfloat16"] - accuracies["float32"]) <= 0.005, accuracies
