"""The config keys that models and training understand, with their defaults and allowed values.

Sits between the space file and the builders: `checks.validate` checks a whole space against these
keys before anything trains (so a typo like `activaton` or `optimizer: "adamw"` stops the run with
one line), and `resolve` fills the defaults into each concrete config the builders receive. Kept
free of TensorFlow so that loading and showing a space is instant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from search.errors import SpaceError
from search.space.dimensions import Float

IMAGE_SIZE = 28  # the digits' height and width: conv blocks' pooling must leave at least one pixel
MODELS = ("softmax", "mlp", "cnn")
ACTIVATIONS = ("relu", "selu", "elu", "gelu", "swish", "tanh", "sigmoid", "linear")
OPTIMIZERS = ("adam", "sgd", "rmsprop")
POOLINGS = ("max", "avg", "none")
INITS = ("glorot", "he", "lecun", "zeros", "truncated_normal")
# "l2_axis1" is S5's `keras.utils.normalize(x, axis=1)`: on (N, 28, 28) images axis 1 runs down the
# image, so each pixel column is divided by its L2 norm (the tutorial's text says rows).
SCALINGS = ("unit", "l2_axis1")
SCHEDULES = ("constant", "exponential", "cosine")
# shift: each epoch sees the originals and copies shifted by shift_pixels left, right, up and down
# (x5); shift_flip adds horizontal flips (x6, S4's set); random: a fresh random shift of up to
# shift_pixels and rotation of up to rotation_degrees for every image in every epoch (x1).
AUGMENTS = ("none", "shift", "shift_flip", "random")


@dataclass(frozen=True)
class Key:
    """What one config key accepts: a kind, and bounds or allowed values."""

    kind: str  # "choice" | "int" | "float" | "bool" | "list"
    default: Any = None
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None  # exclusive for floats, inclusive for ints
    items: dict[str, Key] = field(default_factory=dict)  # for lists of blocks
    help: str = ""

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(map(repr, self.values))
        if self.kind == "bool":
            return "True or False"
        if self.kind == "list":
            return "a list of blocks with keys " + ", ".join(self.items)
        low = "" if self.low is None else f">= {self.low:g}"
        high = "" if self.high is None else (f"<= {self.high:g}" if self.kind == "int" else f"< {self.high:g}")
        return f"{'an int' if self.kind == 'int' else 'a number'} {' and '.join(filter(None, [low, high]))}".strip()


# Upper bounds keep a typo (Int(1, 10**9)) from asking for a model no machine could build; each is
# far past what pays on 28x28 digits.
LAYER = {"units": Key("int", low=1, high=16_384, help="width of a dense layer")}
CONV_BLOCK = {
    "filters": Key("int", low=1, high=1_024, help="feature maps of the block's convolution"),
    "kernel_size": Key("int", default=3, low=1, high=28),
    "pooling": Key("choice", default="max", values=POOLINGS, help="pooling after the block (VALID padding)"),
    "pool_size": Key("int", default=2, low=1, high=28, help="pooling window"),
    "pool_stride": Key("int", default=2, low=1, high=28, help="pooling stride"),
}

KEYS: dict[str, Key] = {
    "model": Key("choice", values=MODELS, help="softmax regression, dense network or CNN"),
    "layers": Key("list", default=[], items=LAYER, help="hidden dense layers (the head, for a CNN)"),
    "conv_blocks": Key("list", default=[], items=CONV_BLOCK, help="convolution blocks (CNN only)"),
    "activation": Key("choice", default="relu", values=ACTIVATIONS),
    "conv_activation": Key("choice", default=None, values=(None, *ACTIVATIONS),
                           help="of the conv blocks; None: the same as activation"),
    "dropout": Key("float", default=0.0, low=0.0, high=1.0, help="after each hidden dense layer"),
    "batch_norm": Key("bool", default=False, help="after each hidden layer and conv block"),
    "batch_norm_momentum": Key("float", default=0.99, low=0.0, high=1.0, help="of the moving mean and variance"),
    "init": Key("choice", default="glorot", values=INITS,
                help="kernel initializer (glorot and he uniform, lecun normal, truncated_normal at init_stddev)"),
    "init_stddev": Key("float", default=0.1, low=1e-12, help="for init truncated_normal (cut at 2 stddev)"),
    "bias_init": Key("float", default=0.0, help="constant every bias starts at"),
    "input_scaling": Key("choice", default="unit", values=SCALINGS, help="unit: /255; l2_axis1: as S5"),
    "l2": Key("float", default=0.0, low=0.0, help="L2 penalty l2 * sum(w**2) on kernel weights"),
    "optimizer": Key("choice", default="adam", values=OPTIMIZERS),
    "learning_rate": Key("float", default=1e-3, low=1e-12, help="the initial one when a schedule decays it"),
    "momentum": Key("float", default=0.0, low=0.0, high=1.0, help="for sgd and rmsprop"),
    "schedule": Key("choice", default="constant", values=SCHEDULES, help="of the learning rate, per step"),
    "decay_rate": Key("float", default=0.96, low=1e-12, help="exponential: factor per decay_steps"),
    "decay_steps": Key("int", default=0, low=0,
                       help="0: one epoch's steps (exponential), the whole run's (cosine)"),
    "staircase": Key("bool", default=False, help="exponential: decay in whole steps of decay_steps"),
    "warmup": Key("float", default=0.0, low=0.0, high=1.0,
                  help="cosine: the share of the run the rate first climbs over, from a tenth of it (one-cycle)"),
    "weight_decay": Key("float", default=0.0, low=0.0, high=1.0,
                        help="decoupled weight decay of every weight, per step times the rate (adam: AdamW)"),
    "label_smoothing": Key("float", default=0.0, low=0.0, high=0.5, help="of the cross-entropy's targets"),
    "ema": Key("float", default=0.0, low=0.0, high=1.0,
               help="0: off; else evaluate a moving average of the weights, decay min(ema, (1+t)/(10+t))"),
    "augment": Key("choice", default="none", values=AUGMENTS, help="training images only, in the input pipeline"),
    "shift_pixels": Key("int", default=1, low=0, high=14, help="for shift, shift_flip and random"),
    "rotation_degrees": Key("float", default=0.0, low=0.0, high=180.0, help="for random: up to +- this"),
    "batch_size": Key("int", default=128, low=1, high=60_000),
    "epochs": Key("int", default=10, low=1, high=10_000, help="passes over the (augmented) training set"),
    "steps": Key("int", default=0, low=0, high=100_000_000, help="0: train by epochs; else exactly this many batches"),
}


def resolve(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Check a concrete config and return it with every default filled in."""
    check_config(config, source, "")
    resolved = {key: spec.default for key, spec in KEYS.items()}
    resolved.update(config)
    for key, spec in KEYS.items():
        if spec.kind == "list":
            resolved[key] = [
                {name: block.get(name, item.default) for name, item in spec.items.items()}
                for block in resolved[key]
            ]
    return resolved


def check_config(config: dict[str, Any], source: str, path: str) -> None:
    """A concrete config: known keys, valid values, and what its model kind needs."""
    where = f"{path}." if path else ""
    if "model" not in config:
        raise SpaceError(source, path or "SPACE", f"'model' is required ({KEYS['model'].describe()})")
    for key, value in config.items():
        spec = key_spec(KEYS, key, source, f"{where}{key}")
        check_value(spec, value, source, f"{where}{key}")
    if config["model"] == "cnn" and not config.get("conv_blocks"):
        raise SpaceError(source, f"{where}conv_blocks", "a cnn needs at least one conv block")
    if config["model"] == "cnn":
        shrunk = pooling_problem([{**defaults(CONV_BLOCK), **block} for block in config["conv_blocks"]])
        if shrunk:
            raise SpaceError(source, f"{where}conv_blocks.{shrunk[0]}", shrunk[1])
    if config["model"] != "cnn" and config.get("conv_blocks"):
        raise SpaceError(source, f"{where}conv_blocks", f"only a cnn has conv blocks, not a {config['model']}")
    if config["model"] == "softmax" and config.get("layers"):
        raise SpaceError(source, f"{where}layers", "softmax regression has no hidden layers")


def defaults(keys: dict[str, Key]) -> dict[str, Any]:
    return {key: spec.default for key, spec in keys.items()}


def pooled_size(size: int, block: dict[str, Any]) -> int | None:
    """The height and width of a `size` x `size` map after a conv block (SAME convolution, VALID
    pooling: 28 -> 13 for S4's 3x3 stride-2 pool); None when its pooling window does not fit."""
    if block["pooling"] == "none":
        return size
    if size < block["pool_size"]:
        return None
    return (size - block["pool_size"]) // block["pool_stride"] + 1


def pooling_problem(blocks: list[dict[str, Any]]) -> tuple[int, str] | None:
    """The first conv block (its index, and why) whose pooling window no longer fits the image, if any."""
    size: int | None = IMAGE_SIZE
    for index, block in enumerate(blocks):
        shrunk = pooled_size(size, block) if size is not None else None
        if shrunk is None:
            poolings = sum(b["pooling"] != "none" for b in blocks)
            window = block["pool_size"]
            return index, (f"pooling shrinks the {IMAGE_SIZE}x{IMAGE_SIZE} image below 1x1 ({poolings} poolings; a "
                           f"{size}x{size} map cannot take a {window}x{window} window)")
        size = shrunk
    return None


def key_spec(keys: dict[str, Key], key: str, source: str, where: str) -> Key:
    if key not in keys:
        known = ", ".join(sorted(keys))
        raise SpaceError(source, where, f"unknown option {key!r} (known: {known})")
    return keys[key]


def check_range(spec: Key, dim: Any, source: str, where: str) -> None:
    if spec.kind not in ("int", "float") or (spec.kind == "int" and isinstance(dim, Float)):
        raise SpaceError(source, where, f"{dim!r}: expected {spec.describe()}")
    for bound in (dim.low, dim.high):
        _finite(bound, spec, source, where)
    too_low = spec.low is not None and dim.low < spec.low
    too_high = spec.high is not None and (dim.high > spec.high if spec.kind == "int" else dim.high >= spec.high)
    if too_low or too_high:
        raise SpaceError(source, where, f"{dim!r}: values must be {spec.describe()}")


def check_value(spec: Key, value: Any, source: str, where: str) -> None:
    ok: bool
    if spec.kind == "choice":
        ok = value in spec.values
    elif spec.kind == "bool":
        ok = isinstance(value, bool)
    elif spec.kind == "list":
        if not isinstance(value, list) or not all(isinstance(block, dict) for block in value):
            raise SpaceError(source, where, f"expected {spec.describe()}, got {value!r}")
        for index, block in enumerate(value):
            for name, item in block.items():
                check_value(key_spec(spec.items, name, source, f"{where}.{index}.{name}"), item, source,
                             f"{where}.{index}.{name}")
            missing = [name for name, item in spec.items.items() if item.default is None and name not in block]
            if missing:
                raise SpaceError(source, f"{where}.{index}", f"missing {', '.join(missing)}")
        return
    else:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number:
            _finite(value, spec, source, where)
        ok = number and (spec.kind == "float" or isinstance(value, int))
        if ok and spec.low is not None:
            ok = value >= spec.low
        if ok and spec.high is not None:
            ok = value <= spec.high if spec.kind == "int" else value < spec.high
    if not ok:
        raise SpaceError(source, where, f"{value!r}: expected {spec.describe()}")


def _finite(value: Any, spec: Key, source: str, where: str) -> None:
    """One rule for every numeric key, bounded or not: inf and nan train nothing (a NaN loss, or a
    model that cannot be built), so they are refused where the space is read."""
    if isinstance(value, float) and not math.isfinite(value):
        raise SpaceError(source, where, f"{value!r}: not a finite number; expected {spec.describe()}")
