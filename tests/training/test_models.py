"""Builders: exact parameter counts of known configs, the uint8 input contract, unbuildable configs."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from search.errors import TrialFailed
from search.training import models

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
    assert models.build(config).count_params() == expected


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


def test_zeros_init_starts_every_weight_at_zero() -> None:
    model = models.build({"model": "softmax", "init": "zeros"})
    assert all(not np.any(weights) for weights in model.get_weights())


def test_truncated_normal_init_and_constant_bias() -> None:
    model = models.build({**S2, "init": "truncated_normal", "init_stddev": 0.1, "bias_init": 0.1})
    kernel, bias = model.get_layer("dense_0").get_weights()
    assert np.abs(kernel).max() <= 0.2 + 1e-6  # redrawn beyond two standard deviations, as TF's
    assert 0.08 < kernel.std() < 0.1  # a normal cut at 2 sigma has std 0.88 sigma
    assert np.all(bias == np.float32(0.1))


def test_l2_axis1_scaling_equals_keras_normalize_on_real_images(small_mnist) -> None:
    import keras

    images = small_mnist.train_images[:64]
    model = models.build({"model": "mlp", "layers": [{"units": 8}], "input_scaling": "l2_axis1"})
    scaled = keras.Model(model.input, model.get_layer("l2_axis1").output)(images)
    np.testing.assert_allclose(np.asarray(scaled), keras.utils.normalize(images, axis=1), atol=1e-6)


def test_conv_activation_and_batch_norm_momentum() -> None:
    model = models.build({**CNN, "conv_activation": "relu", "activation": "selu", "layers": [{"units": 8}],
                          "batch_norm": True, "batch_norm_momentum": 0.9})
    assert model.get_layer("conv_0_act").get_config()["activation"] == "relu"
    assert model.get_layer("dense_0_act").get_config()["activation"] == "selu"
    assert {layer.momentum for layer in model.layers if layer.name.endswith("_bn")} == {0.9}


def test_pool_size_and_stride_give_s4_shapes() -> None:
    block = {"pooling": "max", "pool_size": 3, "pool_stride": 2}
    model = models.build({"model": "cnn", "conv_blocks": [{"filters": 12, **block}, {"filters": 16, **block}]})
    assert model.get_layer("conv_0_pool").output.shape[1:] == (13, 13, 12)
    assert model.get_layer("conv_1_pool").output.shape[1:] == (6, 6, 16)


def test_l2_penalty_is_in_the_loss(small_mnist) -> None:
    images, labels = small_mnist.train_images[:500], small_mnist.train_labels[:500]
    plain = models.build(S2)
    penalised = models.build({**S2, "l2": 1e-3})
    penalised.set_weights(plain.get_weights())
    assert len(penalised.losses) == 4 and not plain.losses  # one per kernel, output layer included
    losses = []
    for model in (plain, penalised):
        model.compile(loss="sparse_categorical_crossentropy")
        losses.append(model.evaluate(images, labels, batch_size=500, verbose=0))
    kernels = sum(float(np.sum(np.square(layer.kernel))) for layer in plain.layers if hasattr(layer, "kernel"))
    assert losses[1] - losses[0] == pytest.approx(1e-3 * kernels, rel=1e-4)


@pytest.mark.filterwarnings("ignore::UserWarning")  # tf.lite.Interpreter announces its move to LiteRT
def test_l2_axis1_survives_tflite_on_blank_columns(small_mnist) -> None:
    import tensorflow as tf

    # MNIST's border columns are all zero: a plain UnitNormalization gives NaN there under TFLite's XNNPACK.
    model = models.build({"model": "mlp", "layers": [{"units": 8}], "input_scaling": "l2_axis1"})
    interpreter = tf.lite.Interpreter(model_content=tf.lite.TFLiteConverter.from_keras_model(model).convert())
    runner = interpreter.get_signature_runner()
    images = small_mnist.test_images[:16]
    (output,) = runner(image=images).values()
    np.testing.assert_allclose(output, np.asarray(model(images)), atol=1e-6)


@pytest.mark.parametrize("config", [
    {"model": "mlp", "layers": [{"units": 32}, {"units": 16}], "batch_norm": True, "dropout": 0.2},
    {"model": "cnn", "conv_blocks": [{"filters": 8, "kernel_size": 3, "pooling": "max"}], "layers": [{"units": 16}],
     "input_scaling": "l2_axis1"},
])
def test_bfloat16_build_computes_in_bfloat16_on_float32_weights(config: dict) -> None:
    mixed, plain = models.build(config, "bfloat16"), models.build(config)
    matmuls = [layer for layer in mixed.layers if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D))]
    assert {layer.compute_dtype for layer in matmuls if layer.name != "digits"} == {"bfloat16"}
    assert mixed.get_layer("digits").compute_dtype == "float32"
    assert {w.dtype for w in mixed.weights} == {"float32"}  # so the float32 build takes them unchanged
    assert [w.shape for w in mixed.weights] == [w.shape for w in plain.weights]
    images = np.zeros((2, 28, 28), np.uint8)
    assert mixed.inputs[0].dtype == "uint8" and mixed(images).dtype == "float32"
    assert models.precision_of(mixed) == "bfloat16" and models.precision_of(plain) == "float32"
    assert {layer.compute_dtype for layer in plain.layers[1:]} == {"float32"}


@pytest.mark.parametrize(("extra", "tail"), [
    ({}, "bfloat16"),  # relu: oneDNN fuses it into the matmul
    ({"activation": "tanh", "dropout": 0.2}, "bfloat16"),
    ({"activation": "gelu"}, "float32"),
    ({"activation": "selu", "dropout": 0.2}, "float32"),
    ({"batch_norm": True}, "float32"),
    ({"batch_norm": True, "activation": "tanh"}, "float32"),
])
def test_bfloat16_dense_tail_computes_in_float32_unless_fused(extra: dict, tail: str) -> None:
    config = {"model": "mlp", "layers": [{"units": 32}, {"units": 16}], **extra}
    mixed = models.build(config, "bfloat16")
    after = [layer for layer in mixed.layers if layer.name.startswith("dense_") and layer.name.count("_") == 2]
    assert {layer.name.rsplit("_", 1)[1] for layer in after} >= {"act"}
    assert {layer.compute_dtype for layer in after} == {tail}
    assert {mixed.get_layer(f"dense_{index}").compute_dtype for index in (0, 1)} == {"bfloat16"}
    # The float32 twin computes everything in float32 and gives the same probabilities to bfloat16's precision.
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    twin = models.plain_twin(mixed, config)
    assert {layer.compute_dtype for layer in twin.layers[1:]} == {"float32"}
    np.testing.assert_allclose(np.asarray(mixed(images)), np.asarray(twin(images)), atol=0.05)


@pytest.mark.parametrize(("precision", "tolerance", "gradients"), [("float32", 1e-4, 2e-2), ("bfloat16", 2e-2, 0.1)])
def test_fused_batch_norm_trains_as_keras_batch_norm(small_mnist, precision: str, tolerance: float,
                                                     gradients: float) -> None:
    import tensorflow as tf

    config = {"model": "cnn", "conv_blocks": [{"filters": 8, "kernel_size": 3, "pooling": "avg"}] * 2,
              "layers": [{"units": 16}], "batch_norm": True, "batch_norm_momentum": 0.9}
    keras.utils.set_random_seed(0)
    fused, plain = models.build(config, precision, for_training=True), models.build(config, precision)
    assert isinstance(fused.get_layer("conv_1_bn"), models.FusedBatchNormalization)
    assert type(plain.get_layer("conv_1_bn")) is keras.layers.BatchNormalization
    assert not models.is_plain(fused) and models.is_plain(models.build(config))
    plain.set_weights(fused.get_weights())
    images, labels = small_mnist.train_images[:64], small_mnist.train_labels[:64]

    def step(model: keras.Model) -> tuple[np.ndarray, list[np.ndarray]]:
        with tf.GradientTape() as tape:
            probabilities = model(images, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, probabilities))
        return np.asarray(probabilities), [np.asarray(g, np.float32) for g in tape.gradient(loss, model.trainable_variables)]

    (fused_out, fused_grads), (plain_out, plain_grads) = step(fused), step(plain)
    np.testing.assert_allclose(fused_out, plain_out, atol=tolerance)
    # Gradients agree as a whole per weight. oneDNN's batch norm kernel rounds differently from Keras's
    # ops (the layer alone agrees to 2e-6, below; with Eigen's kernels this model to 1e-5), which moves
    # the early layers' float32 gradients by up to 0.6% here, and by a few percent through max-pooling.
    for got, want in zip(fused_grads, plain_grads, strict=True):
        assert np.linalg.norm(got - want) <= gradients * np.linalg.norm(want) + 1e-7
    # The moving averages moved, and as Keras's do (the batch's biased variance, momentum 0.9).
    for name in ("conv_0_bn", "conv_1_bn"):
        got, want = fused.get_layer(name), plain.get_layer(name)
        assert not np.allclose(np.asarray(got.moving_variance), 1.0)
        np.testing.assert_allclose(np.asarray(got.moving_mean), np.asarray(want.moving_mean), atol=tolerance)
        np.testing.assert_allclose(np.asarray(got.moving_variance), np.asarray(want.moving_variance),
                                   rtol=tolerance, atol=tolerance)
    # What is kept is the plain float32 build with those weights.
    twin = models.plain_twin(fused, config)
    assert models.is_plain(twin) and type(twin.get_layer("conv_1_bn")) is keras.layers.BatchNormalization
    reference = models.build(config)
    reference.set_weights(fused.get_weights())
    np.testing.assert_array_equal(np.asarray(twin(images)), np.asarray(reference(images)))


def test_fused_batch_norm_keeps_the_biased_batch_variance() -> None:
    # With momentum 0 the moving statistics become the batch's own: on 18 values a channel, the
    # Bessel-corrected variance the fused kernel reports would be 18/17 of Keras's.
    maps = np.random.default_rng(1).normal(2.0, 3.0, (2, 3, 3, 4)).astype(np.float32)
    layer = models.FusedBatchNormalization(momentum=0.0)
    out = np.asarray(layer(maps, training=True))
    np.testing.assert_allclose(np.asarray(layer.moving_mean), maps.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(layer.moving_variance), maps.var(axis=(0, 1, 2)), rtol=1e-5)
    want = (maps - maps.mean(axis=(0, 1, 2))) / np.sqrt(maps.var(axis=(0, 1, 2)) + layer.epsilon)
    np.testing.assert_allclose(out, want, atol=1e-5)


def test_fused_batch_norm_passes_back_keras_batch_norms_gradients() -> None:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    maps = tf.constant(rng.normal(0.3, 2.0, (16, 13, 13, 8)).astype(np.float32))
    upstream = tf.constant(rng.normal(0.0, 1.0, (16, 13, 13, 8)).astype(np.float32))
    grads = []
    for kind in (models.FusedBatchNormalization, keras.layers.BatchNormalization):
        layer = kind(momentum=0.9)
        layer.build(maps.shape)
        layer.gamma.assign(rng.uniform(0.5, 1.5, 8).astype(np.float32) if not grads else grads[0][-1])
        with tf.GradientTape() as tape:
            tape.watch(maps)
            loss = tf.reduce_sum(layer(maps, training=True) * upstream)
        grads.append([*tape.gradient(loss, [maps, layer.gamma, layer.beta]), np.asarray(layer.gamma)])
    for got, want in zip(grads[0][:3], grads[1][:3], strict=True):
        assert np.linalg.norm(got - want) <= 1e-5 * np.linalg.norm(want)
