"""The five classic TensorFlow MNIST tutorials (S1-S5) as concrete configs: the baselines a search must beat.

One source of truth for the tutorials: the space files' `BASELINES` take their configs from
`TUTORIALS` (so a search starts from the tutorial it should beat, labelled on its leaderboard), and
`search baselines` trains them as written (study/references.py). Each config reproduces its
tutorial as written, oddities included; the comments say where the text and the code disagree and
which reading the config follows. Plain data: a space file imports it and still loads instantly.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Tutorial:
    """One tutorial: its leaderboard label, published test accuracy and our config of it."""

    label: str
    published: float
    config: dict[str, Any]


S4_CONV = [  # conv 3x3 SAME, then 3x3 max pooling with stride 2 (VALID): 28 -> 13 -> 6, the
    # stated 13x13x12 and 6x6x16. The text says stride 1, which would keep 26x26: the shapes win.
    {"filters": 12, "kernel_size": 3, "pooling": "max", "pool_size": 3, "pool_stride": 2},
    {"filters": 16, "kernel_size": 3, "pooling": "max", "pool_size": 3, "pool_stride": 2},
]
S4_PLAIN = {
    "model": "cnn", "conv_blocks": S4_CONV,
    # Two SELU layers each about half its input: 6*6*16 = 576 -> 288 -> 144. Convolutions: ReLU (the
    # tutorial names SELU only for the dense layers). Adam at its default rate; batch 100 (not given).
    "layers": [{"units": 288}, {"units": 144}], "conv_activation": "relu", "activation": "selu",
    "optimizer": "adam", "learning_rate": 1e-3, "batch_size": 100, "epochs": 19,
}

TUTORIALS: dict[str, Tutorial] = {
    "S1": Tutorial("S1 softmax regression", 0.92, {
        "model": "softmax", "init": "zeros", "bias_init": 0.0,  # weights and biases start at zero
        "optimizer": "sgd", "learning_rate": 0.5, "batch_size": 100, "steps": 1000,
    }),
    "S2": Tutorial("S2 DigitalOcean 512-256-128 (no activations)", 0.9206, {
        # As its code runs: hidden layers without activation, so the network is linear; the dropout
        # it defines feeds nothing (the output reads the layer before it), so there is none here.
        "model": "mlp", "layers": [{"units": 512}, {"units": 256}, {"units": 128}], "activation": "linear",
        "init": "truncated_normal", "init_stddev": 0.1, "bias_init": 0.1,
        "optimizer": "adam", "learning_rate": 1e-4, "batch_size": 128, "steps": 1000,
    }),
    "S3": Tutorial("S3 784-500 EMA+L2+decay", 0.985, {
        "model": "mlp", "layers": [{"units": 500}], "activation": "relu",
        "init": "truncated_normal", "init_stddev": 0.1, "bias_init": 0.0,
        # TF's l2_regularizer(1e-4) adds 1e-4 * sum(w**2) / 2; Keras's L2(l) adds l * sum(w**2).
        "l2": 5e-5,
        "optimizer": "sgd", "learning_rate": 0.8,
        "schedule": "exponential", "decay_rate": 0.99, "decay_steps": 550, "staircase": True,
        "ema": 0.99, "batch_size": 100, "steps": 30_000,
    }),
    "S4": Tutorial("S4 LeNet-style CNN", 0.9907, S4_PLAIN),
    "S4-aug": Tutorial("S4 CNN+BN+dropout+shift+hflip (flipping digits is dubious)", 0.995, {
        **S4_PLAIN,
        # Dropout rate not given: 0.5 after each dense layer. Batch norm after every conv and dense layer.
        "batch_norm": True, "batch_norm_momentum": 0.9, "dropout": 0.5,
        "augment": "shift_flip", "shift_pixels": 1, "epochs": 29,
    }),
    "S5": Tutorial("S5 Keras 128-128", 0.97, {
        "model": "mlp", "layers": [{"units": 128}, {"units": 128}], "activation": "relu",
        "input_scaling": "l2_axis1",  # keras.utils.normalize(x, axis=1), not /255
        # Keras defaults: Adam 1e-3, batch 32. The blog trains on all 60,000 images; here the last
        # 5,000 stay out for validation, as in every trial.
        "optimizer": "adam", "learning_rate": 1e-3, "batch_size": 32, "epochs": 3,
    }),
}


def baselines(*names: str) -> dict[str, dict[str, Any]]:
    """`BASELINES` for a space file: {label: config} of the named tutorials."""
    return {TUTORIALS[name].label: copy.deepcopy(TUTORIALS[name].config) for name in names}
