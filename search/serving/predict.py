"""Digits in image files: the predict stage, after export (image file -> MNIST-style 28x28 -> digit).

`prepare` turns one PNG/JPEG/BMP of any colour mode and up to 89 megapixels into what MNIST itself
is made of: grayscale, white ink on black (inverted when the background is light, as the S2
tutorial did), cropped to the digit's edges (found to a fraction of a pixel), its longer side scaled
to 20 px and its centre of mass moved to (14, 14) of a 28x28 canvas. The format is the one Pillow
detects in the file, not its name. `predict` runs every file that prepares in one model call and
keeps a one-line reason for each file that does not, so one bad file never stops the rest.
The model comes from `results.loading.load_model` (LiteRT for an export folder: no TensorFlow).
`write_samples` writes real MNIST test digits as dark-on-light PNGs for a newcomer to try.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from rich.table import Table
from rich.text import Text

from search.errors import InputError, first_line
from search.serving.files import BATCH, Classifier

FORMATS = ("PNG", "JPEG", "MPO", "BMP")  # MPO: a phone's JPEG with a second picture, named apart by Pillow
READS = "predict reads PNG, JPEG or BMP"
# Pillow's own decompression-bomb bound: above it Pillow warns (in two lines), above twice it refuses.
# An image this size already takes about 1 GB and 1-3 s to prepare; a digit needs a few hundred pixels.
MAX_PIXELS = 89_478_485
MEGA = 1_000_000
SIZE, BOX, CENTRE = 28, 20, 14.0  # MNIST: 20x20 box, centre of mass at pixel (14, 14) of 28x28
INK = 32  # a digit must stand this many grey levels above the background, else the image is blank
# Ink fainter than this fraction of the darkest stroke only locates the edges, never defines them:
# resampling halos and JPEG noise reach a few percent.
FAINT = 0.15
EDGE_PIXEL = 0.6  # how far in (in MNIST pixels) to look for the outermost pixel's strength
MAX_SAMPLES = 10_000


class ImageProblem(Exception):
    """Why one image file cannot be read as a digit (one line)."""


@dataclass
class Prediction:
    path: str
    digit: int | None = None
    probability: float | None = None
    runner_up: int | None = None
    runner_up_probability: float | None = None
    error: str | None = None


def prepare(path: str | Path) -> np.ndarray:
    """The image at `path` as an MNIST digit: (28, 28) uint8, white ink on black."""
    ink = _ink(_grayscale(Path(path)))
    rows, cols = ink.max(axis=1), ink.max(axis=0)
    # One MNIST pixel in this image's pixels: the digit's longer side becomes 20 of them.
    mnist_pixel = max(np.ptp(np.nonzero(profile > FAINT * 255.0)[0]) + 1 for profile in (rows, cols)) / BOX
    top, bottom = _edges(rows, mnist_pixel)
    left, right = _edges(cols, mnist_pixel)
    scale = BOX / max(bottom - top, right - left)
    height, width = max(1, round((bottom - top) * scale)), max(1, round((right - left) * scale))
    # Resample the source box that maps onto whole output pixels at exactly `scale` (no aspect
    # change), centred on the digit; pad first so that box may reach a little past the image.
    pad = math.ceil(1 / scale) + 1
    row, col = (top + bottom - height / scale) / 2, (left + right - width / scale) / 2
    r0, c0 = max(0, math.floor(row)), max(0, math.floor(col))
    window = np.pad(ink[r0 : math.ceil(bottom) + 1, c0 : math.ceil(right) + 1], pad)
    source = (col - c0 + pad, row - r0 + pad, col - c0 + pad + width / scale, row - r0 + pad + height / scale)
    # LANCZOS on float pixels: antialiased when shrinking, no 8-bit rounding before the model's.
    digit = Image.fromarray(window).resize((width, height), Image.Resampling.LANCZOS, box=source)
    box = np.clip(np.asarray(digit), 0.0, 255.0)  # it rings a little below 0 and above 255
    ys, xs = np.indices(box.shape)
    # MNIST moved its 20x20 box by whole pixels (its centres of mass spread +-0.5 around 14, in
    # index coordinates), so round the shift too; a sub-pixel shift measured worse.
    top_row = int(np.clip(round(CENTRE - (ys * box).sum() / box.sum()), 0, SIZE - height))
    left_col = int(np.clip(round(CENTRE - (xs * box).sum() / box.sum()), 0, SIZE - width))
    canvas = np.zeros((SIZE, SIZE), dtype=np.float32)
    canvas[top_row : top_row + height, left_col : left_col + width] = box
    return np.round(canvas).astype(np.uint8)


def _ink(gray: np.ndarray) -> np.ndarray:
    """Ink as MNIST has it: 0 for the background, 255 for the darkest stroke, float32."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 127:  # light background: dark ink on paper, the opposite of MNIST
        gray, border = 255.0 - gray, 255.0 - border
    ink = np.clip(gray - np.median(border), 0.0, None)  # grey paper or a lit background becomes 0
    if ink.max() < INK:
        raise ImageProblem("blank image: no digit found")
    return np.ascontiguousarray(ink * (255.0 / ink.max()), dtype=np.float32)


def _edges(profile: np.ndarray, mnist_pixel: float) -> tuple[float, float]:
    """Where the ink starts and ends along one axis (pixel i spans [i, i+1)), to a fraction of a pixel."""
    return _edge(profile, mnist_pixel), len(profile) - _edge(profile[::-1], mnist_pixel)


def _edge(profile: np.ndarray, mnist_pixel: float) -> float:
    # MNIST's box is the extent of its antialiased ink, and an antialiased edge sits where the ink
    # reaches half the strength of the outermost pixel. A fixed threshold instead cuts faint edge
    # pixels off or adds resampling halos, and disagreed with the model more often.
    first = int(np.argmax(profile > FAINT * 255.0))
    half = profile[first : first + max(1, round(EDGE_PIXEL * mnist_pixel)) + 1].max() / 2
    index = int(np.argmax(profile > half))
    if index == 0:  # the ink touches the image's border
        return 0.0
    before, after = profile[index - 1], profile[index]
    return index - 0.5 + float((half - before) / (after - before))  # between the two pixel centres


def _grayscale(path: Path) -> np.ndarray:
    """The file's pixels as float grey levels 0..255, transparency shown over white paper."""
    if not path.exists():
        raise ImageProblem("no such file")
    if path.is_dir():
        raise ImageProblem("a folder, not an image file")
    if path.stat().st_size == 0:
        raise ImageProblem("empty file (0 bytes)")
    try:
        with _open(path) as opened:
            image = ImageOps.exif_transpose(opened)  # phones store portrait photos turned
            image.load()
            return _to_gray(image)
    except ImageProblem:
        raise
    except UnidentifiedImageError:
        raise ImageProblem(f"not an image in a format Pillow knows: {READS}") from None
    except Image.DecompressionBombError:  # Pillow refuses twice its bound before the size can be read out
        raise ImageProblem(f"over {2 * MAX_PIXELS // MEGA} megapixels: predict reads up to {MAX_PIXELS // MEGA} "
                           "megapixels") from None
    except Exception as err:  # truncated data, broken EXIF: any decoder fault
        raise ImageProblem(f"cannot read image: {first_line(err)}") from None


def _open(path: Path) -> Image.Image:
    """The image file opened (its header read, no pixels yet), if it is a PNG, JPEG or BMP of at most
    MAX_PIXELS; the format is what Pillow finds in the file, whatever its name says."""
    with warnings.catch_warnings():
        # Above its bound Pillow warns on stderr in two lines; the size check below says it in one.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(path)
    width, height = image.size
    if image.format not in FORMATS:
        problem = f"{image.format or 'unknown'} image: {READS}"
    elif width * height > MAX_PIXELS:
        problem = (f"{width}x{height} image ({width * height / MEGA:.1f} megapixels): predict reads up to "
                   f"{MAX_PIXELS // MEGA} megapixels")
    else:
        return image
    image.close()
    raise ImageProblem(problem)


def _to_gray(image: Image.Image) -> np.ndarray:
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        # 16-bit (or wider) grey: scale to 8 bits; convert("L") would clip everything above 255.
        values = np.asarray(image, dtype=np.float32)
        # Plain "I" or "F" may hold 8-bit values too; only a 16-bit range needs scaling down.
        peak = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        return np.clip(values * np.float32(255.0 / peak), 0.0, 255.0)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        # Transparent pixels show what they were drawn on: paper, not the black of RGBA (0,0,0,0).
        paper = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(paper, image.convert("RGBA"))
    return np.asarray(image.convert("L"), dtype=np.float32)


def predict(model: Classifier, paths: list[str]) -> list[Prediction]:
    """One Prediction per path, in order; files that fail carry an error, the rest a digit."""
    predictions, images = [], []
    for path in paths:
        try:
            images.append(prepare(path))
            predictions.append(Prediction(str(path)))
        except ImageProblem as err:
            predictions.append(Prediction(str(path), error=str(err)))
    if images:
        batch = np.stack(images)
        probabilities = np.concatenate([model(batch[start : start + BATCH]) for start in range(0, len(batch), BATCH)])
        good = [p for p in predictions if p.error is None]
        for prediction, row in zip(good, probabilities, strict=True):
            best, second = np.argsort(row)[::-1][:2]
            prediction.digit, prediction.probability = int(best), float(row[best])
            prediction.runner_up, prediction.runner_up_probability = int(second), float(row[second])
    return predictions


def format_table(predictions: list[Prediction]) -> Table:
    """A rich table, one row per file; a column of reasons appears when any file failed."""
    table = Table("image", "digit", "probability", "runner-up")
    failed = any(p.error for p in predictions)
    if failed:
        table.add_column("error", style="red")
    for p in predictions:
        if p.error is None:
            cells = [str(p.digit), f"{p.probability:.1%}", f"{p.runner_up} ({p.runner_up_probability:.1%})"]
        else:
            cells = ["-", "-", "-"]
        table.add_row(Text(p.path), *cells, *([Text(p.error or "")] if failed else []))
    return table


def to_json(predictions: list[Prediction]) -> str:
    """The predictions as a JSON list of objects, one per file, in the order given."""
    return json.dumps([asdict(p) for p in predictions], indent=2)


def write_samples(out: Path, n: int = 20, seed: int = 0) -> list[Path]:
    """Write `n` random MNIST test digits as dark-on-light PNGs of varied sizes, and labels.json."""
    from search.training import datasets

    if type(n) is not int or not 1 <= n <= MAX_SAMPLES:
        raise InputError(f"--n {n}: must be between 1 and {MAX_SAMPLES}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    mnist = datasets.load("mnist")
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    labels, paths = {}, []
    for index in rng.choice(len(mnist.test_images), size=n, replace=False):
        side = int(rng.integers(56, 281))  # 2x to 10x MNIST's 28 px, as a scan or photo might be
        digit = Image.fromarray(255 - mnist.test_images[index]).resize((side, side), Image.Resampling.LANCZOS)
        # Half get an uneven margin of paper; the rest are MNIST's own 28x28 frame, scaled.
        margins = rng.integers(0, side // 2, size=4) if rng.random() < 0.5 else np.zeros(4, dtype=int)
        left, top, right, bottom = (int(m) for m in margins)
        page = Image.new("L", (side + left + right, side + top + bottom), 255)
        page.paste(digit, (left, top))
        name = f"mnist-test-{index:05d}.png"
        page.save(out / name)
        labels[name] = {"label": int(mnist.test_labels[index]), "index": int(index)}
        paths.append(out / name)
    (out / "labels.json").write_text(json.dumps(labels, indent=2, sort_keys=True) + "\n")
    return paths
