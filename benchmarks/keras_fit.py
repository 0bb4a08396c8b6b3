"""The harness's training through Keras's own `model.fit`: what the compiled loop is measured against.

`fit_keras` trains a config as `search.training.train.fit` does (same optimizer, schedule, loss,
weight averaging, best epoch kept), but through `model.fit` with `STEPS_PER_EXECUTION` steps per
call and, when the config augments or counts steps, a tf.data pipeline of `augment.gather` batches.
`benchmarks/throughput.py` measures both, and tests/training/test_train.py pins that they reach the
same accuracy.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from search.space import schema
from search.training import augment, train
from search.training.datasets import Dataset
from search.training.optimizers import AveragedWeights, make_optimizer

# Batches per call into Keras's compiled train step: on small MNIST models most of the time of plain
# fit() is Python overhead per step, and batching steps removes most of it.
STEPS_PER_EXECUTION = 32


def train_dataset(images: Any, labels: Any, config: dict[str, Any], repeat: bool) -> tf.data.Dataset:
    """Shuffled batches of (images, labels) for one epoch (copies() x len(images) examples), or an
    endless stream of them when `repeat`; reshuffled every epoch."""
    count, versions = len(images), augment.copies(config)
    source_images, source_labels = tf.constant(images), tf.constant(labels)
    order = tf.data.Dataset.range(count * versions).shuffle(count * versions, reshuffle_each_iteration=True)
    if repeat:
        order = order.repeat()

    def load(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return augment.gather(source_images, index, config), tf.gather(source_labels, index % count)

    return order.batch(config["batch_size"]).map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE)


def fit_keras(model: keras.Model, config: dict[str, Any], data: Dataset,
              callbacks: list[keras.callbacks.Callback] | None = None, log: train.EpochLog | None = None
              ) -> train.FitResult:
    """`train.fit`'s training through `model.fit`."""
    config = schema.resolve(config)
    log = log if log is not None else train.EpochLog()
    steps = train.plan(config, len(data.train_images))
    # Keras runs whole executions: one that divides the round keeps a config's step count exact.
    per_execution = STEPS_PER_EXECUTION if steps.steps_per_round is None else max(
        d for d in range(1, STEPS_PER_EXECUTION + 1) if steps.steps_per_round % d == 0)
    optimizer = make_optimizer(config, steps.steps_per_epoch, steps.total_steps)
    model.compile(optimizer=optimizer, loss=train.loss_function(config), metrics=["accuracy"],
                  steps_per_execution=per_execution, jit_compile=train.JIT_COMPILE)
    averaging = [AveragedWeights(optimizer)] if config["ema"] > 0 else []
    if config["augment"] != "none" or config["steps"] > 0:
        inputs: dict[str, Any] = {"x": train_dataset(data.train_images, data.train_labels, config,
                                                     repeat=steps.steps_per_round is not None),
                                  "shuffle": False}  # the pipeline shuffles
    else:  # the arrays themselves: Keras's own shuffling and batching is the fastest path here
        inputs = {"x": data.train_images, "y": data.train_labels, "batch_size": config["batch_size"], "shuffle": True}
    model.fit(**inputs, epochs=steps.rounds, steps_per_epoch=steps.steps_per_round,
              validation_data=(data.val_images, data.val_labels), validation_batch_size=train.EVAL_BATCH_SIZE,
              verbose=0, callbacks=[log, *averaging, *(callbacks or [])])
    return train.fit_result(model, config, log)

