"""Augmented training batches: transformations applied to each batch as it is gathered.

`train.CompiledLoop` calls `gather` inside its traced step. Nothing copies the data set: an epoch
is a shuffled sequence of indices into the original uint8 images, and a batch is gathered and
transformed when it is needed. The fixed sets multiply the epoch: with `shift` an index picks an
original or one of its four copies moved by `shift_pixels` left, right, up or down (zeros moved in,
as scipy's `ndimage.shift(..., cval=0)` that S4 used); `shift_flip` adds the horizontal mirror
image (S4's `cv2.flip(image, 1)`, faithful to the tutorial although a mirrored 2, 3 or 7 is no
digit). `random` moves every image by a fresh random whole number of pixels (up to
`shift_pixels` each way) and rotates it by up to `rotation_degrees`, in one bilinear resampling,
every epoch. Labels are never touched; images stay uint8 28x28, what the models take.
"""

from __future__ import annotations

import math
from typing import Any

import tensorflow as tf

COPIES = {"none": 1, "random": 1, "shift": 5, "shift_flip": 6}


def copies(config: dict[str, Any]) -> int:
    """How many versions of each training image one epoch holds."""
    return COPIES[config["augment"]]


def shift(images: tf.Tensor, dy: int, dx: int) -> tf.Tensor:
    """A batch of (N, H, W) images moved down by dy and right by dx pixels, zeros moved in."""
    height, width = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [abs(dy), abs(dy)], [abs(dx), abs(dx)]])
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[:, top : top + height, left : left + width]


def fixed_variants(images: tf.Tensor, variant: tf.Tensor, pixels: int, flip: bool) -> tf.Tensor:
    """Image i as its variant[i]: 0 original, 1-4 shifted left, right, up, down, 5 mirrored."""
    versions = [images, shift(images, 0, -pixels), shift(images, 0, pixels),
                shift(images, -pixels, 0), shift(images, pixels, 0)]
    if flip:
        versions.append(tf.reverse(images, axis=[2]))
    return tf.gather(tf.stack(versions, axis=1), variant, batch_dims=1)


def random_shift_rotate(images: tf.Tensor, pixels: int, degrees: float) -> tf.Tensor:
    """Each image moved by whole pixels in [-pixels, pixels] on both axes and rotated by an angle in
    [-degrees, degrees] about its centre; bilinear, zeros outside, rounded back to uint8."""
    count = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    moves = tf.cast(tf.random.uniform([count, 2], -pixels, pixels + 1, dtype=tf.int32), tf.float32)
    angles = tf.random.uniform([count], -degrees, degrees) * (math.pi / 180)
    cos, sin = tf.cos(angles), tf.sin(angles)
    # The transform maps each output pixel to the input point it samples: undo the move, then the
    # rotation about the centre (cx, cy).
    cx, cy = (width - 1) / 2, (height - 1) / 2
    x0, y0 = cx + moves[:, 0], cy + moves[:, 1]
    zeros = tf.zeros_like(cos)
    transforms = tf.stack([cos, sin, cx - cos * x0 - sin * y0,
                           -sin, cos, cy + sin * x0 - cos * y0, zeros, zeros], axis=1)
    moved = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(images, tf.float32)[..., None], transforms=transforms,
        output_shape=tf.constant([height, width]), fill_value=tf.constant(0.0),
        interpolation="BILINEAR", fill_mode="CONSTANT")[..., 0]
    return tf.cast(tf.clip_by_value(tf.round(moved), 0, 255), tf.uint8)


def gather(images: tf.Tensor, index: tf.Tensor, config: dict[str, Any]) -> tf.Tensor:
    """The training images an epoch's indices name, as the config augments them: index i is version
    i // N of image i % N (N images; version 0 is the original), then, with `random`, moved and
    rotated afresh. What the training loop feeds the model, batch by batch."""
    count = images.shape[0]
    batch = tf.gather(images, index % count)
    if copies(config) > 1:
        batch = fixed_variants(batch, index // count, config["shift_pixels"], config["augment"] == "shift_flip")
    if config["augment"] == "random":
        batch = random_shift_rotate(batch, config["shift_pixels"], config["rotation_degrees"])
    return batch
