"""Config keys: the training-feature keys default to yesterday's behaviour and are validated through
`space.validate` like every other key."""

from __future__ import annotations

import math

import pytest

from search.errors import SpaceError
from search.space import Choice, Float, Int, schema, validate

pytestmark = pytest.mark.fast  # starts no TensorFlow, no worker, no server


def test_new_keys_default_to_the_old_behaviour() -> None:
    resolved = schema.resolve({"model": "cnn", "conv_blocks": [{"filters": 8}]})
    assert {key: resolved[key] for key in ("init", "bias_init", "input_scaling", "schedule", "ema", "steps",
                                           "augment", "conv_activation", "batch_norm_momentum")} == {
        "init": "glorot", "bias_init": 0.0, "input_scaling": "unit", "schedule": "constant", "ema": 0.0,
        "steps": 0, "augment": "none", "conv_activation": None, "batch_norm_momentum": 0.99}
    assert resolved["conv_blocks"] == [{"filters": 8, "kernel_size": 3, "pooling": "max", "pool_size": 2,
                                        "pool_stride": 2}]


def test_a_space_may_search_the_new_keys() -> None:
    validate({
        "model": "cnn", "conv_blocks": [{"filters": 8, "pool_size": Int(2, 3), "pool_stride": 2}],
        "init": Choice(["glorot", "zeros", "truncated_normal"]), "init_stddev": Float(0.01, 0.2),
        "bias_init": Float(-0.1, 0.1), "input_scaling": Choice(["unit", "l2_axis1"]),
        "schedule": Choice({"constant": {}, "exponential": {"decay_rate": Float(0.8, 0.99), "staircase": True,
                                                            "decay_steps": Int(100, 1000)}, "cosine": {}}),
        "ema": Choice([0.0, 0.99, 0.999]), "steps": Int(500, 5000), "conv_activation": Choice([None, "relu"]),
        "augment": Choice({"none": {}, "random": {"shift_pixels": Int(1, 3), "rotation_degrees": Float(0, 15)}}),
    })


@pytest.mark.parametrize(("space", "message"), [
    ({"init": "orthogonal"}, "init: 'orthogonal': expected one of 'glorot', 'he', 'lecun', 'zeros'"),
    ({"ema": Float(0.9, 1.5)}, "ema: Float(0.9, 1.5): values must be a number >= 0 and < 1"),
    ({"ema": 1.0}, "ema: 1.0: expected a number >= 0 and < 1"),
    ({"schedule": Choice(["constant", "step"])}, "schedule: 'step': expected one of 'constant', 'exponential'"),
    ({"augment": "flip"}, "augment: 'flip': expected one of 'none', 'shift', 'shift_flip', 'random'"),
    ({"steps": -5}, "steps: -5: expected an int >= 0"),
    ({"steps": Float(1, 10)}, "steps: Float(1, 10): expected an int"),
    ({"staircase": "yes"}, "staircase: 'yes': expected True or False"),
    ({"input_scaling": "l2_rows"}, "input_scaling: 'l2_rows': expected one of 'unit', 'l2_axis1'"),
    ({"rotation_degrees": Float(0, 360)}, "rotation_degrees: Float(0, 360): values must be a number >= 0 and < 180"),
    ({"conv_blocks": [{"filters": 8, "pool_stride": 0}]}, "conv_blocks.0.pool_stride: 0: expected an int >= 1"),
])
def test_bad_values_of_new_keys_are_one_line(space: dict, message: str) -> None:
    with pytest.raises(SpaceError) as caught:
        validate({"model": "cnn", "conv_blocks": [{"filters": 8}], **space}, "space.py")
    assert str(caught.value).startswith("space.py: ") and message in str(caught.value), str(caught.value)


FLOAT_KEYS = [key for key, spec in schema.KEYS.items() if spec.kind == "float"]
NOT_FINITE = [math.inf, -math.inf, math.nan]


def spaces_holding(key: str, value: float) -> list[dict]:
    """Every place a space file can put a number for `key`: fixed, among a Choice's values, as a Float's
    bound, and in a baseline's config (a config of its own)."""
    finite = schema.KEYS[key].default or 0.5
    return [{key: value}, {key: Choice([finite, value])}, {key: Float(finite, value)}, {key: Float(value, finite)}]


@pytest.mark.parametrize("key", FLOAT_KEYS)
@pytest.mark.parametrize("value", NOT_FINITE, ids=repr)
def test_inf_and_nan_are_refused_for_every_float_key_wherever_they_stand(key: str, value: float) -> None:
    for space in spaces_holding(key, value):
        with pytest.raises(SpaceError) as caught:
            validate({"model": "mlp", **space}, "space.py")
        assert str(caught.value).startswith(f"space.py: {key}: ") and "\n" not in str(caught.value), space
    with pytest.raises(SpaceError) as caught:
        schema.resolve({"model": "mlp", key: value}, "S9")  # a baseline's config
    assert str(caught.value) == (f"S9: {key}: {value!r}: not a finite number; expected "
                                 f"{schema.KEYS[key].describe()}")


@pytest.mark.parametrize("key", FLOAT_KEYS)
def test_every_float_key_takes_its_default(key: str) -> None:
    validate({"model": "mlp", key: schema.KEYS[key].default}, "space.py")
