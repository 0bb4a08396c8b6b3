"""Keras models from a concrete config dict: the build stage (config -> model).

Takes the plain dict that `space.sample` produced (or a baseline, a replay, a test's literal),
never an Optuna trial, so one builder serves every engine. Every model takes a batch of raw
28x28 uint8 images and returns ten class probabilities: scaling to [0, 1] is the model's first
layer, so an exported model needs no preprocessing code beside it. A config that cannot be built
(say, more pooling than a 28x28 image allows) raises `TrialFailed` with the reason.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from search import schema
from search.errors import SpaceError, TrialFailed

IMAGE_SIZE = 28
NUM_CLASSES = 10


def build(config: dict[str, Any]) -> keras.Model:
    """Softmax regression, MLP or CNN, as `config["model"]` says."""
    try:
        resolved = schema.resolve(config)
    except SpaceError as err:
        raise TrialFailed(f"config cannot be built: {err.path}: {err.problem}") from err
    regularizer = keras.regularizers.L2(resolved["l2"]) if resolved["l2"] > 0 else None
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE), dtype="uint8", name="image")
    x = layers.Rescaling(1.0 / 255, name="scale")(inputs)
    if resolved["model"] == "cnn":
        x = _conv_blocks(x, resolved, regularizer)
    x = layers.Flatten(name="flatten")(x)
    for index, block in enumerate(resolved["layers"]):
        x = _dense(x, block["units"], resolved, regularizer, f"dense_{index}")
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", kernel_regularizer=regularizer, name="digits")(x)
    return keras.Model(inputs, outputs, name=resolved["model"])


def _dense(x: Any, units: int, config: dict[str, Any], regularizer: Any, name: str) -> Any:
    batch_norm = config["batch_norm"]
    # With batch norm right after it, the layer's bias is redundant (BN has its own shift).
    x = layers.Dense(units, use_bias=not batch_norm, kernel_regularizer=regularizer, name=name)(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    x = layers.Activation(config["activation"], name=f"{name}_act")(x)
    if config["dropout"] > 0:
        x = layers.Dropout(config["dropout"], name=f"{name}_dropout")(x)
    return x


def _conv_blocks(x: Any, config: dict[str, Any], regularizer: Any) -> Any:
    x = layers.Reshape((IMAGE_SIZE, IMAGE_SIZE, 1), name="channels")(x)
    size = IMAGE_SIZE
    for index, block in enumerate(config["conv_blocks"]):
        name = f"conv_{index}"
        batch_norm = config["batch_norm"]
        x = layers.Conv2D(
            block["filters"], block["kernel_size"], padding="same", use_bias=not batch_norm,
            kernel_regularizer=regularizer, name=name,
        )(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"{name}_bn")(x)
        x = layers.Activation(config["activation"], name=f"{name}_act")(x)
        if block["pooling"] != "none":
            size //= 2
            if size < 1:
                raise TrialFailed(
                    f"config cannot be built: conv_blocks.{index}: pooling shrinks the 28x28 image below 1x1"
                    f" ({sum(b['pooling'] != 'none' for b in config['conv_blocks'])} poolings of 2x2)"
                )
            pool = layers.MaxPooling2D if block["pooling"] == "max" else layers.AveragePooling2D
            x = pool(2, name=f"{name}_pool")(x)
    return x


def count_params(config: dict[str, Any]) -> int:
    """Trainable and non-trainable weights of the model a config builds."""
    return int(build(config).count_params())
