"""Builders: exact parameter counts of known configs, the uint8 input contract, unbuildable configs."""

from __future__ import annotations

import numpy as np
import pytest

from search import models
from search.errors import TrialFailed

S2 = {"model": "mlp", "layers": [{"units": 512}, {"units": 256}, {"units": 128}]}
CNN = {"model": "cnn", "conv_blocks": [{"filters": 32}, {"filters": 64}]}


@pytest.mark.parametrize(("config", "expected"), [
    ({"model": "softmax"}, 784 * 10 + 10),
    ({"model": "mlp", "layers": [{"units": 128}, {"units": 128}]}, (784 * 128 + 128) + (128 * 128 + 128) + (128 * 10 + 10)),
    (S2, (784 * 512 + 512) + (512 * 256 + 256) + (256 * 128 + 128) + (128 * 10 + 10)),
    # Batch norm drops the dense bias and adds gamma, beta, moving mean and variance (4 per unit).
    ({**S2, "batch_norm": True}, 784 * 512 + 512 * 256 + 256 * 128 + 4 * (512 + 256 + 128) + 128 * 10 + 10),
    # 3x3 convs with SAME padding, two 2x2 max pools: 28 -> 14 -> 7, flatten 7*7*64 = 3136.
    (CNN, (9 * 1 * 32 + 32) + (9 * 32 * 64 + 64) + (7 * 7 * 64 * 10 + 10)),
    ({"model": "cnn", "conv_blocks": [{"filters": 8, "kernel_size": 5, "pooling": "none"}], "layers": [{"units": 16}]},
     (25 * 8 + 8) + (28 * 28 * 8 * 16 + 16) + (16 * 10 + 10)),
])
def test_exact_parameter_counts(config: dict, expected: int) -> None:
    assert models.count_params(config) == expected


def test_model_takes_uint8_images_and_returns_probabilities() -> None:
    model = models.build(CNN)
    images = np.random.default_rng(0).integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    probabilities = np.asarray(model(images))
    assert probabilities.shape == (4, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_dropout_and_activation_are_in_the_graph() -> None:
    model = models.build({**S2, "dropout": 0.3, "activation": "selu"})
    assert [layer.rate for layer in model.layers if layer.__class__.__name__ == "Dropout"] == [0.3, 0.3, 0.3]
    assert {layer.get_config()["activation"] for layer in model.layers if layer.name.endswith("_act")} == {"selu"}


def test_too_much_pooling_fails_the_trial_with_the_reason() -> None:
    config = {"model": "cnn", "conv_blocks": [{"filters": 4}] * 5}  # 28 -> 14 -> 7 -> 3 -> 1 -> 0
    with pytest.raises(TrialFailed, match=r"conv_blocks.4: pooling shrinks the 28x28 image below 1x1"):
        models.build(config)


def test_invalid_concrete_config_fails_the_trial() -> None:
    with pytest.raises(TrialFailed, match="conv_blocks: a cnn needs at least one conv block"):
        models.build({"model": "cnn", "conv_blocks": []})
