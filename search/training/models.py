"""Keras models from a concrete config dict: the build stage (config -> model).

Takes the plain dict that `space.sample` produced (or a baseline, a replay, a test's literal),
never an Optuna trial, so one builder serves every engine. Every model takes a batch of raw
28x28 uint8 images and returns ten class probabilities: input scaling (/255, or S5's
`keras.utils.normalize(x, axis=1)` as a built-in `UnitNormalization` layer) is part of the model,
so an exported model needs neither preprocessing code nor `search` beside it. A config that cannot
be built (say, more pooling than a 28x28 image allows) raises `TrialFailed` with the reason.

`precision` "bfloat16" builds the same layers under Keras's mixed_bfloat16 policy (bfloat16
arithmetic, float32 weights) with the output layer in float32, and a dense layer's batch norm and
non-fused activation in float32 too (`_tail_dtype`), for training only: the trainer
hands back, keeps and tests a float32 model with the trained weights (`plain_twin`), so what is
exported and served never depends on the precision a trial trained in. A model built `for_training`
likewise normalizes conv maps with TensorFlow's fused batch norm kernel, and comes back as the plain
build too.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from search.errors import SpaceError, TrialFailed
from search.space import schema

IMAGE_SIZE = schema.IMAGE_SIZE
NUM_CLASSES = 10
INITIALIZERS = {"glorot": "glorot_uniform", "he": "he_uniform", "lecun": "lecun_normal", "zeros": "zeros"}


POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


class FusedBatchNormalization(layers.BatchNormalization):  # type: ignore[misc]
    """Keras's BatchNormalization of a conv block's (N, H, W, C) maps that, in training, normalizes
    with TensorFlow's fused kernel (`FusedBatchNormV3`, oneDNN's on the CPU) instead of Keras's
    dozen elementwise and reduction ops, and takes bfloat16 maps as they are instead of casting them
    to float32 and back. Same weights, same arithmetic: the batch's mean and biased variance
    normalize, and the moving averages move as Keras's do. Inference is Keras's own. It trains conv
    blocks with batch norm faster (docs/design.md has the measurement); oneDNN's kernel rounds
    differently from Keras's ops, so the two are close, not equal. It is for training only, like
    bfloat16: the model that is tested, kept and exported is `plain_twin`'s, with Keras's own layer,
    so it loads without `search`.
    """

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        rank = len(inputs.shape)
        if not (training and self.trainable) or mask is not None or rank != 4 or self.axis not in (-1, 3):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        normalized, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, tf.cast(self.gamma, "float32"), tf.cast(self.beta, "float32"), epsilon=self.epsilon,
            is_training=True)
        count = tf.cast(tf.size(inputs) // inputs.shape[-1], "float32")
        variance = variance * (count - 1.0) / count  # the kernel's is Bessel-corrected; Keras's is not
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(normalized, self.compute_dtype)


def build(config: dict[str, Any], precision: str = "float32", for_training: bool = False) -> keras.Model:
    """Softmax regression, MLP or CNN, as `config["model"]` says, computing in `precision`.

    `for_training` gives conv blocks' batch norm the fused kernel (`FusedBatchNormalization`): a model
    to train, whose weights `plain_twin` then puts in the plain build."""
    try:
        resolved = schema.resolve(config)
    except SpaceError as err:
        raise TrialFailed(f"config cannot be built: {err.path}: {err.problem}") from err
    # Every layer takes the policy from here (Keras's global policy is reset by clear_session).
    resolved = {**resolved, "dtype": POLICIES[precision], "fused_norm": for_training}
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE), dtype="uint8", name="image")
    x = layers.Rescaling(1.0 / 255, name="scale", dtype=resolved["dtype"])(inputs)
    if resolved["input_scaling"] == "l2_axis1":
        x = _l2_axis1(x, resolved["dtype"])
    if resolved["model"] == "cnn":
        x = _conv_blocks(x, resolved)
    x = layers.Flatten(name="flatten", dtype=resolved["dtype"])(x)
    for index, block in enumerate(resolved["layers"]):
        x = _dense(x, block["units"], resolved, f"dense_{index}")
    # float32 probabilities whatever the precision: the loss and its softmax stay exact.
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="digits",
                           **{**_weights(resolved), "dtype": "float32"})(x)
    return keras.Model(inputs, outputs, name=resolved["model"])


def precision_of(model: keras.Model) -> str:
    """"bfloat16" if any layer of `model` computes in bfloat16, else "float32"."""
    return "bfloat16" if any(layer.compute_dtype == "bfloat16" for layer in model.layers) else "float32"


def is_plain(model: keras.Model) -> bool:
    """Whether `model` is what `build(config)` gives: float32, Keras's own layers only."""
    return precision_of(model) == "float32" and not any(
        isinstance(layer, FusedBatchNormalization) for layer in model.layers)


def plain_twin(model: keras.Model, config: dict[str, Any]) -> keras.Model:
    """`model` itself if `is_plain`; else the plain float32 build of `config` holding its weights
    (mixed precision keeps every weight in float32, and the fused batch norm has Keras's weights, so
    they carry over unchanged)."""
    if is_plain(model):
        return model
    twin = build(config)
    twin.set_weights(model.get_weights())
    return twin


def _l2_axis1(x: Any, dtype: str) -> Any:
    """keras.utils.normalize(x, axis=1) of (N, 28, 28) images: each column divided by its L2 norm down
    the 28 rows, an all-zero column left at zero (scale-free, so the /255 before it changes nothing).

    UnitNormalization alone computes that, but TFLite's XNNPACK delegate turns its rsqrt(0) on the
    blank border columns into NaN. A row of 1e-6 stacked on top keeps every norm positive (changing
    the others' by under 1e-7 relative) and is cropped off again; built-in layers only, so an
    exported model still loads without `search`.
    """
    first_row = layers.Cropping1D((0, IMAGE_SIZE - 1), name="l2_axis1_first_row", dtype=dtype)(x)
    floor_row = layers.Rescaling(0.0, offset=1e-6, name="l2_axis1_floor", dtype=dtype)(first_row)
    x = layers.Concatenate(axis=1, name="l2_axis1_stack", dtype=dtype)([floor_row, x])
    x = layers.UnitNormalization(axis=1, name="l2_axis1_unit", dtype=dtype)(x)
    return layers.Cropping1D((1, 0), name="l2_axis1", dtype=dtype)(x)


def _weights(config: dict[str, Any], bias: bool = True) -> dict[str, Any]:
    """Initializers and the L2 penalty of one layer's kernel (and bias), and its dtype policy."""
    if config["init"] == "truncated_normal":  # TF's tf.truncated_normal: redrawn beyond 2 stddev
        kernel: Any = keras.initializers.TruncatedNormal(stddev=config["init_stddev"])
    else:
        kernel = INITIALIZERS[config["init"]]
    arguments: dict[str, Any] = {"kernel_initializer": kernel, "use_bias": bias, "dtype": config["dtype"]}
    if bias:
        arguments["bias_initializer"] = keras.initializers.Constant(config["bias_init"])
    if config["l2"] > 0:
        arguments["kernel_regularizer"] = keras.regularizers.L2(config["l2"])
    return arguments


# Activations TensorFlow's oneDNN kernels fuse into the matmul before them (with its bias), so that
# under mixed precision they are best left in bfloat16 (see `_tail_dtype`).
FUSED_ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")


def _tail_dtype(config: dict[str, Any]) -> str:
    """The policy of what follows a dense layer's matmul (batch norm, activation, dropout).

    Under mixed precision that tail computes in float32 unless it is a bare fused activation:
    TensorFlow's bfloat16 elementwise kernels on the CPU are slower than its float32 ones, and batch
    norm casts to float32 and back inside anyway, so computing the tail in float32 costs no more casts.
    A float32 tail would keep oneDNN from fusing tanh and sigmoid, which therefore stay bfloat16
    (docs/design.md has the measurements).
    """
    if config["dtype"] == "float32" or (not config["batch_norm"] and config["activation"] in FUSED_ACTIVATIONS):
        return str(config["dtype"])
    return "float32"


def _dense(x: Any, units: int, config: dict[str, Any], name: str) -> Any:
    batch_norm, tail = config["batch_norm"], _tail_dtype(config)
    # With batch norm right after it, the layer's bias is redundant (BN has its own shift).
    x = layers.Dense(units, name=name, **_weights(config, bias=not batch_norm))(x)
    if batch_norm:
        x = layers.BatchNormalization(momentum=config["batch_norm_momentum"], name=f"{name}_bn", dtype=tail)(x)
    x = layers.Activation(config["activation"], name=f"{name}_act", dtype=tail)(x)
    if config["dropout"] > 0:
        x = layers.Dropout(config["dropout"], name=f"{name}_dropout", dtype=tail)(x)
    return x


def _conv_blocks(x: Any, config: dict[str, Any]) -> Any:
    dtype = config["dtype"]
    x = layers.Reshape((IMAGE_SIZE, IMAGE_SIZE, 1), name="channels", dtype=dtype)(x)
    batch_norm = config["batch_norm"]
    activation = config["conv_activation"] or config["activation"]
    for index, block in enumerate(config["conv_blocks"]):
        name = f"conv_{index}"
        x = layers.Conv2D(block["filters"], block["kernel_size"], padding="same", name=name,
                          **_weights(config, bias=not batch_norm))(x)
        if batch_norm:
            norm = FusedBatchNormalization if config["fused_norm"] else layers.BatchNormalization
            x = norm(momentum=config["batch_norm_momentum"], name=f"{name}_bn", dtype=dtype)(x)
        x = layers.Activation(activation, name=f"{name}_act", dtype=dtype)(x)
        if block["pooling"] != "none":  # schema.resolve has checked that every window fits
            window, stride = block["pool_size"], block["pool_stride"]
            pool = layers.MaxPooling2D if block["pooling"] == "max" else layers.AveragePooling2D
            x = pool(window, strides=stride, name=f"{name}_pool", dtype=dtype)(x)
    return x


LATENCY_WARMUP, LATENCY_CALLS = 10, 100


def latency_ms(model: keras.Model) -> float:
    """The model's single-image CPU inference latency in milliseconds, measured the same way every time:
    one real-sized uint8 image, a traced call (as a served model runs), 10 calls to warm up, then the
    median of 100, on this process's threads. Weights do not change it, so an untrained build will do."""
    import statistics
    import time

    import numpy as np
    import tensorflow as tf

    call = tf.function(lambda images: model(images, training=False))
    image = tf.constant(np.zeros((1, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8))
    for _ in range(LATENCY_WARMUP):
        call(image).numpy()
    times = []
    for _ in range(LATENCY_CALLS):
        started = time.perf_counter()
        call(image).numpy()
        times.append(time.perf_counter() - started)
    return round(1000 * statistics.median(times), 4)


def ensemble(members: list[keras.Model], names: list[str]) -> keras.Model:
    """One model that averages the ten probabilities of `members` (each taking raw uint8 images), built
    from Keras's own layers so that it saves, exports and loads like a single model."""
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE), dtype="uint8", name="image")
    for member, name in zip(members, names, strict=True):
        member.name = name  # nested models are layers: each needs its own name
    outputs = layers.Average(name="digits")([member(inputs) for member in members])
    return keras.Model(inputs, outputs, name=f"ensemble_of_{len(members)}")
