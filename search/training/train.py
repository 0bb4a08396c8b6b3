"""Training one model on in-memory data: the fit stage (model + config -> best-epoch model).

`fit` trains with `CompiledLoop`: the training images sit on the device as one uint8 tensor, and
one traced TensorFlow function runs up to `BATCHES_PER_CALL` batches per call (gather, augment,
forward, loss with L2 penalties, gradients, optimizer step), so Python runs once per 64 batches
instead of once per batch; validation is one traced call too. Optimizer, learning-rate schedule
and weight averaging come from `optimizers.py` (Keras optimizers whose Adam, SGD-momentum
and RMSprop updates use TensorFlow's fused kernels). Between calls and after every epoch the Keras
callbacks it is given run as under `model.fit`: the study passes optuna-integration's
`KerasPruningCallback` (so this module knows nothing of Optuna) and the trial timeout.
`EpochLog` keeps the learning curve and the best epoch's weights, restored before returning; a NaN
loss stops training and fails the trial. With `ema` the validation, the kept weights and the
returned model are the averaged weights. Given a folder, `fit` keeps the run's state there as it goes
and can go on from a kept one (checkpoint.py). Test accuracy is measured once, after training, by the
result's own `accuracy` (already traced): the search itself only ever sees validation accuracy.

Training by `steps` (S1-S3 count batches, not epochs) still validates, reports and may be pruned in
rounds of about one epoch: `plan` splits the steps into equal rounds, each as close to one pass
over the training set as a divisor of `steps` allows (S3's 30,000 steps of 100 -> 50 rounds of
600), so exactly `steps` batches run and the pruner sees a round where it would see an epoch.
"""

from __future__ import annotations

import functools
import gc
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from search.errors import TrialFailed
from search.space import schema
from search.training import augment, checkpoint, models
from search.training.datasets import Dataset
from search.training.optimizers import AveragedWeights, make_optimizer

# XLA made the loop slower on the CPU, and its compile time is paid again for every trial's new
# model (docs/design.md).
JIT_COMPILE = False
EVAL_BATCH_SIZE = 1000
# The compiled loop returns to Python after this many batches: often enough for the trial timeout
# and Ctrl-C to act within a second or two, rarely enough that the call costs nothing measurable.
BATCHES_PER_CALL = 64
# A run given a folder keeps its state there before every CHECKPOINT_EVERY-th round (checkpoint.py):
# one file write a round, small beside the round itself (benchmarks/checkpoint_cost.py measures it).
CHECKPOINT_EVERY = 1


class EpochLog(keras.callbacks.Callback):
    """Validation accuracy of each epoch, the best epoch's weights, and NaN detection."""

    def __init__(self, monitor: str = "val_accuracy", last: bool = False) -> None:
        super().__init__()
        self.monitor = monitor
        self.last = last  # keep the last epoch, not the best (validation not held out: a final model)
        self.val_history: list[float] = []
        self.loss_history: list[float] = []
        self.best_epoch = 0  # 1-based; 0 until an epoch finishes
        self.best_weights: list[np.ndarray] | None = None
        self.nan_epoch: int | None = None
        self.started = time.perf_counter()
        self.seconds = 0.0  # training time up to the last finished epoch

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.started = time.perf_counter()

    @property
    def best_value(self) -> float:
        return self.val_history[self.best_epoch - 1] if self.best_epoch else float("nan")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        self.seconds = time.perf_counter() - self.started
        loss = float(logs.get("loss", float("nan")))
        value = float(logs.get(self.monitor, float("nan")))
        self.loss_history.append(loss)
        self.val_history.append(value)
        if not math.isfinite(loss):
            self.nan_epoch = epoch + 1
            self.model.stop_training = True
            return
        if not self.best_epoch or value > self.best_value or self.last:
            self.best_epoch = epoch + 1
            self.best_weights = [np.array(w) for w in self.model.get_weights()]


@dataclass
class FitResult:
    """What one training run produced; `model` holds the best epoch's weights."""

    model: keras.Model
    val_accuracy: float
    best_epoch: int
    epochs_run: int
    train_seconds: float
    val_history: list[float]
    accuracy: Any = None  # accuracy(images, labels) of `model`, compiled and already traced


@dataclass(frozen=True)
class Plan:
    """How a config's training is cut up: `rounds` validations (what Keras and the pruner call
    epochs) of `steps_per_round` batches each (None: one pass over the data)."""

    rounds: int
    steps_per_round: int | None
    steps_per_epoch: int  # batches in one pass over the (augmented) training set
    total_steps: int


def plan(config: dict[str, Any], train_size: int) -> Plan:
    """The training plan of a resolved config on `train_size` training images."""
    steps_per_epoch = math.ceil(train_size * augment.copies(config) / config["batch_size"])
    if not config["steps"]:
        return Plan(config["epochs"], None, steps_per_epoch, config["epochs"] * steps_per_epoch)
    total = config["steps"]
    per_round = min(_divisors(total), key=lambda d: abs(math.log(d / steps_per_epoch)))
    return Plan(total // per_round, per_round, steps_per_epoch, total)


def _divisors(number: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(number) + 1) if number % d == 0]
    return sorted({*small, *(number // d for d in small)})


def reset(seed: int) -> None:
    """Free the previous trial's graph (so memory does not grow with trials) and seed everything.

    The first call also freezes what is alive then (TensorFlow's and Keras's modules, the data, the
    study): Keras's `clear_session` runs a full garbage collection, which walked all of that again
    for every trial, a large part of its fixed cost; frozen, it walks only what trials made.
    """
    keras.backend.clear_session()
    if not gc.get_freeze_count():
        gc.freeze()
    keras.utils.set_random_seed(seed)


def loss_function(config: dict[str, Any]) -> Any:
    """The mean cross-entropy of a batch of integer labels and probabilities, with the config's label
    smoothing (Keras's sparse cross-entropy has none, so smoothed targets are one-hot)."""
    smoothing = config["label_smoothing"]

    def loss(labels: Any, probabilities: Any) -> Any:
        if not smoothing:
            return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(labels, probabilities))
        targets = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(labels, (-1,)), "int32"), models.NUM_CLASSES)
        return keras.ops.mean(keras.losses.categorical_crossentropy(targets, probabilities,
                                                                    label_smoothing=smoothing))

    return loss


def training_model(config: dict[str, Any], precision: str = "float32") -> keras.Model:
    """The model a trial trains for `config`: built in `precision` ("float32" or "bfloat16";
    `runtime.training_precision` says which this process uses) and `for_training` (the fused conv
    batch norm); `fit` hands back its plain twin."""
    return models.build(config, precision, for_training=True)


def fit(
    model: keras.Model,
    config: dict[str, Any],
    data: Dataset,
    callbacks: list[keras.callbacks.Callback] | None = None,
    log: EpochLog | None = None,
    last: bool = False,
    progress: Path | None = None,
    resume: checkpoint.State | None = None,
) -> FitResult:
    """Train `model` as `config` says with the compiled loop; callbacks see `val_accuracy` after
    every epoch (round), and `on_train_batch_end` after every call of `BATCHES_PER_CALL` batches.

    Pass your own `log` to read the learning curve even when a callback (a pruner) raises. The model
    comes back with its best epoch's weights by validation, or with `last` its last epoch's. With
    `progress` a folder, the run's state is kept there as it goes (checkpoint.py); with `resume` (see
    `resumable`) the run goes on from that state's next round, its curve and time carried over.
    """
    config = schema.resolve(config)
    log = log if log is not None else EpochLog(last=last)
    steps = plan(config, len(data.train_images))
    optimizer = make_optimizer(config, steps.steps_per_epoch, steps.total_steps)
    # Nothing is traced here: compiling only records the optimizer and loss on the model, as
    # model.fit would leave them, for code that reads `model.optimizer` afterwards.
    model.compile(optimizer=optimizer, loss=loss_function(config), jit_compile=JIT_COMPILE)
    loop = CompiledLoop(model, optimizer, config, data)
    averaging = [AveragedWeights(optimizer)] if config["ema"] > 0 else []
    batches = steps.steps_per_round or steps.steps_per_epoch
    hooks = keras.callbacks.CallbackList([*averaging, log, *(callbacks or [])], model=model,
                                         epochs=steps.rounds, steps=batches, verbose=0)
    order = IndexStream(len(data.train_images) * augment.copies(config), config["batch_size"],
                        by_steps=steps.steps_per_round is not None)
    model.stop_training = False
    hooks.on_train_begin()
    resumed_at = _restore(resume, model, optimizer, log, order) if resume is not None else 0
    for epoch in range(resumed_at, steps.rounds):
        hooks.on_epoch_begin(epoch)
        if progress is not None and epoch > resumed_at and epoch % CHECKPOINT_EVERY == 0:
            checkpoint.save(progress, _state(config, epoch, model, optimizer, log, order))
        indices = order.next_round(batches)
        total_loss, seen = 0.0, 0
        for first in range(0, batches, BATCHES_PER_CALL):
            hooks.on_train_batch_begin(first)
            chunk = indices[first * config["batch_size"]:(first + BATCHES_PER_CALL) * config["batch_size"]]
            total_loss += float(loop.train(chunk))
            seen += len(chunk)
            hooks.on_train_batch_end(min(first + BATCHES_PER_CALL, batches) - 1)
            if model.stop_training:  # --trial-timeout: the trial fails, no need to validate
                break
        if model.stop_training:
            break
        hooks.on_test_begin()  # the averaged weights go in, when averaging
        logs = {"loss": total_loss / seen, "val_accuracy": loop.accuracy(*loop.validation)}
        hooks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    hooks.on_train_end()
    return fit_result(model, config, log, loop.accuracy)


def resumable(folder: Path, config: dict[str, Any], train_size: int) -> checkpoint.State | None:
    """The state kept in `folder` if `fit` can go on from it for `config`: saved while training this
    same config (an earlier run with another --epochs is not continued) and with rounds left to train."""
    state = checkpoint.load(folder)
    resolved = schema.resolve(config)
    if state is None or state.config != json.loads(json.dumps(resolved)):
        return None
    return state if 0 < state.rounds_done < plan(resolved, train_size).rounds else None


def _state(config: dict[str, Any], rounds_done: int, model: keras.Model, optimizer: Any, log: EpochLog,
           order: IndexStream) -> checkpoint.State:
    return checkpoint.State(json.loads(json.dumps(config)), rounds_done, model.get_weights(),
                            [np.array(v) for v in optimizer.variables], list(log.val_history),
                            list(log.loss_history), log.best_epoch, log.best_weights, log.seconds,
                            tuple(np.random.get_state(legacy=True)), order.left)


def _restore(state: checkpoint.State, model: keras.Model, optimizer: Any, log: EpochLog,
             order: IndexStream) -> int:
    """Put a kept state back (weights, optimizer, curve, time, order of examples); its next round."""
    model.set_weights(state.weights)
    for variable, value in zip(optimizer.variables, state.optimizer, strict=True):
        variable.assign(value)
    log.val_history, log.loss_history = list(state.val_history), list(state.loss_history)
    log.best_epoch, log.best_weights = state.best_epoch, state.best_weights
    log.started -= state.seconds
    log.seconds = state.seconds
    np.random.set_state(state.random_state)
    order.left = state.left
    return state.rounds_done


def fit_result(model: keras.Model, config: dict[str, Any], log: EpochLog, accuracy: Any = None) -> FitResult:
    """Fail on a NaN loss, else put the best epoch's weights back and describe the run. A model that
    trained in mixed precision or with the fused batch norm comes back as its plain twin
    (`models.plain_twin`): what is tested, kept and exported is the plain float32 model, which any
    machine rebuilds exactly."""
    if log.nan_epoch is not None:
        raise TrialFailed(f"loss became NaN at epoch {log.nan_epoch}")
    if log.best_weights is not None:
        model.set_weights(log.best_weights)
    served = models.plain_twin(model, config)
    if served is not model or accuracy is None:
        accuracy = compiled_accuracy(served)
    return FitResult(served, log.best_value, log.best_epoch, len(log.val_history), log.seconds, log.val_history,
                     accuracy)


class IndexStream:
    """The order the training examples are visited in: a fresh permutation each pass (numpy's global
    generator, which `reset` seeds). Training by epochs takes one whole pass a round; training by
    steps takes exactly `batches` full batches a round, running on into the next permutation."""

    def __init__(self, count: int, batch_size: int, by_steps: bool) -> None:
        self.count, self.batch_size, self.by_steps = count, batch_size, by_steps
        self.left = np.empty(0, dtype=np.int32)

    def next_round(self, batches: int) -> np.ndarray:
        if not self.by_steps:
            return np.random.permutation(self.count).astype(np.int32)
        wanted = batches * self.batch_size
        parts, have = [self.left], len(self.left)
        while have < wanted:
            parts.append(np.random.permutation(self.count).astype(np.int32))
            have += self.count
        joined = np.concatenate(parts)
        self.left = joined[wanted:]
        return joined[:wanted]


class CompiledLoop:
    """One model's training and evaluation as two TensorFlow functions, each traced once.

    `train(indices)` runs every batch of `indices` (batch_size at a time; the last one may be short)
    inside one `tf.function`: it gathers the batch from the training images, which live as one
    uint8 tensor on the device, augments it when the config says so, and takes an optimizer step
    (loss plus the layers' L2 penalties; batch norm and dropout in training mode; the optimizer's
    schedule and weight averaging as in `model.fit`). It returns the summed loss of the examples.
    `accuracy(images, labels)` counts correct predictions in batches of `EVAL_BATCH_SIZE`, also in
    one call. Python runs once per call, not once per batch: that per-step overhead is most of what
    plain `model.fit` spends on models this small.
    """

    def __init__(self, model: keras.Model, optimizer: Any, config: dict[str, Any], data: Dataset) -> None:
        import tensorflow as tf

        self.model, self.optimizer = model, optimizer
        images, labels, self.validation = on_device(data)
        count, batch_size = len(data.train_images), config["batch_size"]
        criterion = loss_function(config)
        variables = model.trainable_variables
        optimizer.build(variables)

        def step(index: Any) -> Any:
            x, y = augment.gather(images, index, config), tf.gather(labels, index % count)
            with tf.GradientTape() as tape:
                probabilities = model(x, training=True)
                loss = criterion(y, probabilities)
                penalties = model.losses  # computed from the weights on each access: once per step
                penalty = tf.add_n([tf.cast(term, loss.dtype) for term in penalties]) if penalties else 0.0
                total = loss + penalty
            optimizer.apply(tape.gradient(total, variables), variables)
            return total * tf.cast(tf.shape(index)[0], total.dtype)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)], jit_compile=JIT_COMPILE)
        def train(indices: Any) -> Any:
            size = tf.shape(indices)[0]
            summed = tf.constant(0.0)
            for first in tf.range(0, size, batch_size):
                summed += step(indices[first:first + batch_size])
            return summed

        self.train = train
        self.accuracy = compiled_accuracy(model)


@functools.lru_cache(maxsize=1)
def on_device(data: Dataset) -> tuple[Any, Any, tuple[Any, Any]]:
    """Training images and labels, and the validation pair, as tensors on the device: copied once per
    process for the data set in use (a worker trains every trial on the same one), not per trial.
    Only the latest data set is held, so a process that switches data sets does not accumulate them."""
    import tensorflow as tf

    return (tf.constant(data.train_images), tf.constant(data.train_labels.astype(np.int32)),
            (tf.constant(data.val_images), tf.constant(data.val_labels.astype(np.int32))))


def compiled_accuracy(model: keras.Model) -> Any:
    """`accuracy(images, labels)`: the top-1 accuracy of `model` (inference mode), computed in
    batches of `EVAL_BATCH_SIZE` inside one traced TensorFlow function; a Python float."""
    import tensorflow as tf

    shape = [None, *model.inputs[0].shape[1:]]

    @tf.function(input_signature=[tf.TensorSpec(shape, model.inputs[0].dtype), tf.TensorSpec([None], tf.int32)])
    def correct(images: Any, labels: Any) -> Any:
        hits = tf.constant(0, tf.int64)
        for first in tf.range(0, tf.shape(images)[0], EVAL_BATCH_SIZE):
            predicted = tf.argmax(model(images[first:first + EVAL_BATCH_SIZE], training=False), axis=1,
                                  output_type=tf.int32)
            hits += tf.reduce_sum(tf.cast(predicted == labels[first:first + EVAL_BATCH_SIZE], tf.int64))
        return hits

    def accuracy(images: Any, labels: Any) -> float:
        """`images` and `labels`: NumPy arrays, or tensors already on the device."""
        if isinstance(labels, np.ndarray):
            labels = labels.astype(np.int32, copy=False)
        return int(correct(images, labels)) / len(labels)

    return accuracy


def evaluate(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of `model` on the given images (traces a function: a `FitResult` has its own
    `accuracy`, already traced, for the model it trained)."""
    return float(compiled_accuracy(model)(images, labels))
