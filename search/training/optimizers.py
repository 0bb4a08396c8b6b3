"""Optimizers, learning-rate schedules and weight averaging: the parts of the fit stage that step.

`train.fit` asks `make_optimizer` for the config's optimizer at its learning rate, decayed per step
by a Keras schedule when `schedule` says so (exponential with optional staircase, as TF's
`exponential_decay`, or cosine). With `ema` > 0 the optimizer also keeps an exponential moving
average of the trainable weights after every step with TensorFlow's step-dependent decay
`min(ema, (1 + t) / (10 + t))` (t = updates before this one; `tf.train.ExponentialMovingAverage`
with `num_updates`), starting from the initial weights as TF's shadow variables do. Keras's own
`use_ema` has a constant decay and swaps the average in only when `fit` ends, so validation would
see the raw weights; `AveragedWeights` swaps the average in for every validation pass and back
for training, so the learning curve, the pruner and the kept best epoch all see averaged weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from keras import ops

from search.errors import TrialFailed
from search.internals import of_keras


class FusedAdam(keras.optimizers.Adam):  # type: ignore[misc]
    """Keras's Adam, with each weight's update done by TensorFlow's fused `ResourceApplyAdam` kernel:
    the same arithmetic (lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon)) in one pass over
    the weight instead of about ten elementwise ops, each writing a temporary the size of the weight:
    on small dense models Keras's version cost more than the backward pass (docs/design.md)."""

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if keras.backend.backend() != "tensorflow" or self.amsgrad:
            super().update_step(gradient, variable, learning_rate)
            return
        import tensorflow as tf

        dtype = variable.dtype
        step = ops.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=of_keras.slot(self, variable, "momentums").handle,
            v=of_keras.slot(self, variable, "velocities").handle,
            beta1_power=ops.power(beta_1, step), beta2_power=ops.power(beta_2, step),
            lr=ops.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=ops.cast(self.epsilon, dtype), grad=ops.cast(gradient, dtype))


class FusedSGD(keras.optimizers.SGD):  # type: ignore[misc]
    """Keras's SGD; with momentum (not Nesterov) the update is TensorFlow's fused
    `ResourceApplyKerasMomentum`, Keras's own arithmetic: m = momentum * m - lr * g; w += m."""

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if keras.backend.backend() != "tensorflow" or self.momentum == 0 or self.nesterov:
            super().update_step(gradient, variable, learning_rate)
            return
        import tensorflow as tf

        dtype = variable.dtype
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=variable.handle, accum=of_keras.slot(self, variable, "momentums").handle,
            lr=ops.cast(learning_rate, dtype), grad=ops.cast(gradient, dtype),
            momentum=ops.cast(self.momentum, dtype), use_nesterov=False)


class FusedRMSprop(keras.optimizers.RMSprop):  # type: ignore[misc]
    """Keras's RMSprop; with momentum (not centered) the update is TensorFlow's fused
    `ResourceApplyRMSProp`, Keras's own arithmetic: v = rho * v + (1 - rho) * g^2;
    m = momentum * m + lr * g / sqrt(v + epsilon); w -= m."""

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if keras.backend.backend() != "tensorflow" or self.momentum == 0 or self.centered:
            super().update_step(gradient, variable, learning_rate)
            return
        import tensorflow as tf

        dtype = variable.dtype
        tf.raw_ops.ResourceApplyRMSProp(
            var=variable.handle, ms=of_keras.slot(self, variable, "velocities").handle,
            mom=of_keras.slot(self, variable, "momentums").handle,
            lr=ops.cast(learning_rate, dtype), rho=ops.cast(self.rho, dtype),
            momentum=ops.cast(self.momentum, dtype), epsilon=ops.cast(self.epsilon, dtype),
            grad=ops.cast(gradient, dtype))


OPTIMIZERS: dict[str, Any] = {
    "adam": FusedAdam,
    "sgd": FusedSGD,
    "rmsprop": FusedRMSprop,
}


def learning_rate(config: dict[str, Any], steps_per_epoch: int, total_steps: int) -> Any:
    """A constant, or a Keras schedule that Keras evaluates at the optimizer's step count."""
    rate, schedule = config["learning_rate"], config["schedule"]
    if schedule == "constant":
        return rate
    if schedule == "exponential":
        # lr * decay_rate ** (step / decay_steps), floored when staircase: S3 decays once an epoch.
        return keras.optimizers.schedules.ExponentialDecay(
            rate, config["decay_steps"] or steps_per_epoch, config["decay_rate"], staircase=config["staircase"])
    if schedule == "cosine":  # with warmup, one-cycle: up from a tenth of the rate, then down to zero
        steps = config["decay_steps"] or total_steps
        warmup = round(config["warmup"] * steps)
        if not warmup:
            return keras.optimizers.schedules.CosineDecay(rate, steps)
        return keras.optimizers.schedules.CosineDecay(rate / 10, steps - warmup, warmup_target=rate,
                                                      warmup_steps=warmup)
    raise TrialFailed(f"unknown schedule {schedule!r}")  # schema validation makes this unreachable


def make_optimizer(config: dict[str, Any], steps_per_epoch: int = 1, total_steps: int = 1) -> Any:
    """The config's optimizer, schedule and (when `ema` > 0) weight averaging."""
    name = config["optimizer"]
    if name not in OPTIMIZERS:
        raise TrialFailed(f"unknown optimizer {name!r}")  # schema validation makes this unreachable
    rate = learning_rate(config, steps_per_epoch, total_steps)
    options: dict[str, Any] = {} if name == "adam" else {"momentum": config["momentum"]}
    if config["weight_decay"] > 0:  # Keras's decoupled decay: w -= rate * weight_decay * w before each update
        options["weight_decay"] = config["weight_decay"]
    if config["ema"] > 0:
        return AVERAGED[name](rate, ema_decay=config["ema"], **options)
    return OPTIMIZERS[name](rate, **options)


@dataclass
class _Shadow:
    """Model variables and their averages; a plain holder, so Keras does not track the model's
    variables as the optimizer's own (only the averages are optimizer state)."""

    model: list[Any] = field(default_factory=list)
    average: list[Any] = field(default_factory=list)


class StepAveraging:
    """Mixin for a Keras optimizer: after every update, average = d * average + (1 - d) * weight."""

    def __init__(self, *args: Any, ema_decay: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ema_decay = ema_decay
        self.shadow = _Shadow()

    def build(self, variables: list[Any]) -> None:
        if getattr(self, "built", False):
            return
        super().build(variables)  # type: ignore[misc]
        self.shadow.model = list(variables)
        self.shadow.average = [self.add_variable_from_reference(v, name="average")  # type: ignore[attr-defined]
                               for v in variables]
        for average, variable in zip(self.shadow.average, variables, strict=True):
            average.assign(variable)  # TF's shadow variables start at the initial values

    def apply(self, grads: Any, trainable_variables: Any = None) -> None:
        super().apply(grads, trainable_variables)  # type: ignore[misc]
        step = ops.cast(self.iterations, "float32") - 1.0  # type: ignore[attr-defined]
        decay = ops.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))
        for average, variable in zip(self.shadow.average, self.shadow.model, strict=True):
            average.assign(decay * average + (1.0 - decay) * ops.cast(variable, average.dtype))

    def averaged_weights(self) -> list[np.ndarray]:
        return [np.array(average) for average in self.shadow.average]


class AveragedAdam(StepAveraging, FusedAdam):  # type: ignore[misc]
    pass


class AveragedSGD(StepAveraging, FusedSGD):  # type: ignore[misc]
    pass


class AveragedRMSprop(StepAveraging, FusedRMSprop):  # type: ignore[misc]
    pass


AVERAGED: dict[str, Any] = {"adam": AveragedAdam, "sgd": AveragedSGD, "rmsprop": AveragedRMSprop}


class AveragedWeights(keras.callbacks.Callback):  # type: ignore[misc]
    """Puts the averaged weights in the model for each validation pass and the raw ones back for
    training; callbacks at the end of an epoch (the best-epoch keeper) see the averaged ones."""

    def __init__(self, optimizer: StepAveraging) -> None:
        super().__init__()
        self.averaging = optimizer
        self.raw_weights: list[np.ndarray] | None = None  # set while the average is swapped in

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.raw_weights is None:
            self.raw_weights = [np.array(v) for v in self.averaging.shadow.model]
            for variable, average in zip(self.averaging.shadow.model, self.averaging.averaged_weights(),
                                         strict=True):
                variable.assign(average)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.raw_weights is not None:
            for variable, raw in zip(self.averaging.shadow.model, self.raw_weights, strict=True):
                variable.assign(raw)
            self.raw_weights = None
