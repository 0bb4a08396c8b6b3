"""A point of a space given by its parameters: checked as a warm start or a hand-written configuration is."""

from __future__ import annotations

import pytest

from search.space import Choice, Float, Int, PointError, Repeat, config_of

SPACE = {
    "model": "mlp",
    "layers": Repeat(Int(1, 2), {"units": Int(32, 128, log=True)}),
    "optimizer": Choice({"adam": {"learning_rate": Float(1e-4, 1e-2, log=True)},
                         "sgd": {"learning_rate": Float(1e-2, 1.0, log=True), "momentum": 0.9}}),
    "batch_norm": Choice([False, True]),
    "batch_size": Choice([64, 128]),
}
POINT = {"layers.count": 2, "layers.0.units": 64, "layers.1.units": 32, "optimizer": "sgd",
         "optimizer.sgd.learning_rate": 0.1, "batch_norm": True, "batch_size": 128}


@pytest.mark.fast
def test_a_point_of_the_space_gives_the_config_sampling_would() -> None:
    assert config_of(SPACE, POINT) == {"model": "mlp", "layers": [{"units": 64}, {"units": 32}], "optimizer": "sgd",
                                       "learning_rate": 0.1, "momentum": 0.9, "batch_norm": True, "batch_size": 128}
    one_layer = {**POINT, "layers.count": 1}
    del one_layer["layers.1.units"]
    assert config_of(SPACE, one_layer)["layers"] == [{"units": 64}]


@pytest.mark.fast
@pytest.mark.parametrize(("change", "message"), [
    ({"layers.0.units": None}, "layers.0.units: missing"),
    ({"layers.0.units": 700}, "layers.0.units: 700 is out of Int(32, 128, log=True)"),
    ({"layers.0.units": 64.5}, "layers.0.units: 64.5 is not an integer"),
    ({"layers.count": 3}, "layers.count: 3 is out of Int(1, 2)"),
    ({"optimizer": "rmsprop"}, "optimizer: 'rmsprop' is not among Choice(['adam', 'sgd'])"),
    ({"optimizer": "adam"}, "optimizer.adam.learning_rate: missing"),
    ({"batch_norm": 1}, "batch_norm: 1 is not among Choice([False, True])"),
    ({"batch_size": 256}, "batch_size: 256 is not among Choice([64, 128])"),
    ({"optimizer.sgd.learning_rate": "fast"}, "optimizer.sgd.learning_rate: 'fast' is not a number"),
    ({"dropout": 0.2}, "dropout: not a parameter of this space"),
    ({"layers.count": 1}, "layers.1.units: not a parameter of this space"),  # the second block is not there
], ids=lambda value: str(value) if isinstance(value, dict) else None)
def test_a_point_the_space_cannot_express_names_the_parameter_and_why(change: dict, message: str) -> None:
    point = {name: value for name, value in {**POINT, **change}.items() if value is not None}
    with pytest.raises(PointError) as raised:
        config_of(SPACE, point)
    assert str(raised.value).startswith(message), raised.value
