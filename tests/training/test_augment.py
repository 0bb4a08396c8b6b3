"""Augmented training batches on real MNIST images, as the training loop gathers them (`augment.gather`):
shifts move pixels by exactly the asked amount, S4's fixed set holds each original and its five
versions once per epoch, random moves stay in range, and labels and shapes never change."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import tensorflow as tf

from search.space import schema
from search.training import augment


def moved(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """numpy reference: image moved down dy and right dx, zeros moved in."""
    out = np.zeros_like(image)
    h, w = image.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[max(-dy, 0) : h - max(dy, 0),
                                                                           max(-dx, 0) : w - max(dx, 0)]
    return out


def epoch(images: np.ndarray, labels: np.ndarray, config: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """One epoch's batches as the training loop gathers them: a shuffled order of every index of every
    version, cut into batches; each batch's labels are its source images' own."""
    order = np.random.default_rng(0).permutation(len(images) * augment.copies(config)).astype(np.int32)
    size = config["batch_size"]
    return [(augment.gather(tf.constant(images), tf.constant(order[i:i + size]), config).numpy(),
             labels[order[i:i + size] % len(images)]) for i in range(0, len(order), size)]


@pytest.fixture(scope="module")
def digits(small_mnist) -> tuple[np.ndarray, np.ndarray]:
    return np.array(small_mnist.train_images[:12]), np.array(small_mnist.train_labels[:12])


@pytest.mark.parametrize(("dy", "dx"), [(0, -1), (0, 1), (-1, 0), (1, 0), (2, -3)])
def test_shift_moves_every_pixel_by_the_amount(digits, dy: int, dx: int) -> None:
    images, _ = digits
    shifted = augment.shift(tf.constant(images), dy, dx).numpy()
    assert shifted.shape == images.shape and shifted.dtype == np.uint8
    for original, result in zip(images, shifted, strict=True):
        np.testing.assert_array_equal(result, moved(original, dy, dx))
    # One pixel right moves the ink's centre of mass one column right (MNIST digits have blank borders).
    if (dy, dx) == (0, 1):
        columns = np.arange(28)
        centre = (images.sum(axis=1) * columns).sum(axis=1) / images.sum(axis=(1, 2))
        centre_after = (shifted.sum(axis=1) * columns).sum(axis=1) / shifted.sum(axis=(1, 2))
        np.testing.assert_allclose(centre_after - centre, 1.0, atol=1e-9)


def test_s4_set_holds_each_original_and_its_five_versions_once_per_epoch(digits) -> None:
    images, labels = digits
    config = schema.resolve({"model": "cnn", "conv_blocks": [{"filters": 4}], "augment": "shift_flip",
                             "batch_size": 7})
    batches = list(epoch(images, labels, config))
    assert all(x.shape[1:] == (28, 28) and x.dtype == np.uint8 and len(x) == len(y) for x, y in batches)
    got = Counter((x.tobytes(), int(y)) for xs, ys in batches for x, y in zip(xs, ys, strict=True))
    want = Counter()
    for image, label in zip(images, labels, strict=True):
        for version in (image, moved(image, 0, -1), moved(image, 0, 1), moved(image, -1, 0), moved(image, 1, 0),
                        image[:, ::-1]):
            want[(np.ascontiguousarray(version).tobytes(), int(label))] += 1
    assert got == want and sum(got.values()) == 6 * len(images)


def test_shift_without_flip_has_five_versions(digits) -> None:
    images, labels = digits
    config = schema.resolve({"model": "mlp", "augment": "shift", "batch_size": 100})
    (batch,) = epoch(images, labels, config)
    assert len(batch[0]) == 5 * len(images)
    assert Counter(batch[1].tolist()) == Counter((labels.tolist()) * 5)


def test_random_shifts_are_whole_pixels_within_range(digits) -> None:
    images, _ = digits
    tf.random.set_seed(0)
    seen = set()
    for _ in range(3):
        result = augment.random_shift_rotate(tf.constant(images), pixels=2, degrees=0.0).numpy()
        for original, out in zip(images, result, strict=True):
            offsets = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                       if np.array_equal(out, moved(original, dy, dx))]
            assert offsets, "not a whole-pixel shift of at most 2"
            seen.add(offsets[0])
    assert len(seen) > 5  # shifts really vary


def test_random_pipeline_keeps_each_image_with_its_label(digits) -> None:
    images, labels = digits  # with no move and no rotation the pipeline must hand back the pairs as they were
    config = schema.resolve({"model": "mlp", "augment": "random", "shift_pixels": 0, "batch_size": 5})
    batches = list(epoch(images, labels, config))
    got = Counter((x.tobytes(), int(y)) for xs, ys in batches for x, y in zip(xs, ys, strict=True))
    assert got == Counter((x.tobytes(), int(y)) for x, y in zip(images, labels, strict=True))


def test_random_rotation_keeps_shape_and_ink(digits) -> None:
    images, _ = digits
    tf.random.set_seed(1)
    rotated = augment.random_shift_rotate(tf.constant(images), pixels=0, degrees=15.0).numpy()
    assert rotated.shape == images.shape and rotated.dtype == np.uint8
    for original, out in zip(images, rotated, strict=True):
        assert not np.array_equal(original, out)
        assert abs(int(out.sum()) - int(original.sum())) < 0.1 * int(original.sum())  # resampled, not lost
        assert np.corrcoef(original.ravel(), out.ravel())[0, 1] > 0.5  # at most 15 degrees: still alike
