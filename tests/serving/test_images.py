"""Preparing image files as MNIST was made (grayscale, inverted if light, cropped, 20 px, centred by mass),
any colour mode and EXIF orientation, and the real MNIST samples a newcomer tries: no model runs here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from drawing import centre_of_mass, dark_on_light, reference
from PIL import Image

from search.errors import InputError
from search.serving import predict
from search.training import datasets

pytestmark = pytest.mark.fast  # starts no TensorFlow, no worker, no server


def test_samples_are_real_test_digits_dark_on_light_at_varied_sizes(tmp_path: Path, mnist: datasets.Dataset) -> None:
    paths = predict.write_samples(tmp_path / "samples", n=20, seed=1)
    labels = json.loads((tmp_path / "samples" / "labels.json").read_text())
    assert sorted(labels) == sorted(path.name for path in paths) and len(paths) == 20
    sizes = set()
    for path in paths:
        entry = labels[path.name]
        assert entry["label"] == mnist.test_labels[entry["index"]]
        with Image.open(path) as image:
            assert image.format == "PNG"
            pixels = np.asarray(image.convert("L"))
        assert pixels[0, 0] == 255 and pixels.min() < 64  # white paper, dark ink
        sizes.add(pixels.shape)
    assert len(sizes) > 10
    assert any(height != width for height, width in sizes)  # some carry uneven margins
    assert predict.write_samples(tmp_path / "again", n=20, seed=1)[0].name == paths[0].name


@pytest.mark.parametrize("n", [0, -3, 10_001])
def test_sample_count_out_of_range_is_an_input_error(tmp_path: Path, n: int) -> None:
    with pytest.raises(InputError, match="between 1 and 10000"):
        predict.write_samples(tmp_path, n=n)
    assert not any(tmp_path.iterdir())


def test_prepare_rebuilds_mnist_geometry_from_a_big_dark_on_light_digit(tmp_path: Path, digit: np.ndarray) -> None:
    path = tmp_path / "seven.png"
    page = Image.new("L", (260, 200), 255)
    page.paste(dark_on_light(digit), (90, 20))  # 5x, off centre on a wide page
    page.save(path)
    prepared = predict.prepare(path)
    assert prepared.shape == (28, 28) and prepared.dtype == np.uint8
    row, col = centre_of_mass(prepared)
    assert abs(row - 14) <= 1 and abs(col - 14) <= 1
    rows, cols = np.nonzero(prepared > 0.25 * 255)
    assert max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) in (19, 20, 21)
    assert prepared[0].max() == 0 and prepared.max() >= 250  # white ink on black, full contrast
    assert np.abs(prepared.astype(int) - digit).mean() < 10


def test_light_on_dark_image_is_not_inverted(tmp_path: Path, digit: np.ndarray) -> None:
    path = tmp_path / "mnist-style.png"
    Image.fromarray(digit).resize((84, 84), Image.Resampling.LANCZOS).save(path)
    prepared = predict.prepare(path).astype(int)
    assert np.abs(prepared - digit).mean() < 10
    assert np.abs(prepared - (255 - digit)).mean() > 100


def _rgba_on_transparent(digit: np.ndarray) -> Image.Image:
    # Black ink whose coverage is the alpha channel, on a fully transparent (0, 0, 0, 0) background:
    # read without compositing, the whole image is black and the digit disappears.
    paper_and_ink = np.asarray(dark_on_light(digit))
    rgba = np.zeros((*paper_and_ink.shape, 4), dtype=np.uint8)
    rgba[..., 3] = 255 - paper_and_ink
    return Image.fromarray(rgba)


def _palette_with_transparent_paper(digit: np.ndarray) -> Image.Image:
    image = dark_on_light(digit).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    paper = int(np.asarray(image)[0, 0])
    palette = image.getpalette() or []
    palette[3 * paper : 3 * paper + 3] = [0, 0, 0]  # paper's colour is black, but transparent
    image.putpalette(palette)
    image.info["transparency"] = paper
    return image


@pytest.mark.parametrize(("mode", "make"), [
    ("RGB", lambda d: dark_on_light(d).convert("RGB")),
    ("RGBA", _rgba_on_transparent),
    ("LA", lambda d: dark_on_light(d).convert("LA")),
    ("P", lambda d: dark_on_light(d).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)),
    ("P", _palette_with_transparent_paper),
    ("I;16", lambda d: Image.fromarray(np.asarray(dark_on_light(d)).astype(np.uint16) * 257)),
])
def test_every_colour_mode_gives_the_same_digit(tmp_path: Path, digit: np.ndarray, mode: str, make) -> None:
    expected = reference(tmp_path, digit)
    path = tmp_path / f"digit-{mode.replace(';', '')}.png"
    make(digit).save(path)
    with Image.open(path) as image:
        assert image.mode == mode
    assert np.abs(predict.prepare(path).astype(int) - expected).mean() < 2


def test_exif_orientation_is_applied(tmp_path: Path, digit: np.ndarray) -> None:
    expected = reference(tmp_path, digit)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display", as a phone held upright writes it
    path = tmp_path / "phone.png"
    dark_on_light(digit).rotate(90, expand=True).save(path, exif=exif)
    assert np.abs(predict.prepare(path).astype(int) - expected).mean() < 1


def test_uniform_dark_image_is_blank_too(tmp_path: Path) -> None:
    path = tmp_path / "night.png"
    Image.new("L", (50, 50), 20).save(path)
    with pytest.raises(predict.ImageProblem, match="blank image"):
        predict.prepare(path)
