"""Rotated streams (Lopez-Paz & Ranzato 2017, GEM): every task is the whole dataset rotated by an angle of its own."""

from __future__ import annotations

import functools
import math

import torch

from clrelu import checks
from clrelu.data.datasets import ImageData
from clrelu.errors import ConfigError
from clrelu.streams.base import Stream, as_float, take_columns
from clrelu.streams.transformed import transformed_stream

INTERPOLATIONS = ("nearest", "bilinear")


@functools.lru_cache(maxsize=8)
def rotation_taps(degrees: float, height: int, width: int, interpolation: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each output pixel of a rotated image reads the input, and with what weight: (index, weight), each
    k x (height * width), k = 1 (nearest) or 4 (bilinear); a tap outside the image has weight 0.

    The rotation is counter-clockwise on screen (row 0 at the top), about the image's centre, as
    PIL's `Image.rotate` turns it. Coordinates are computed in double precision with the cosine and
    sine rounded to 12 decimals, so that multiples of 90 degrees land exactly on pixel centres.
    """
    angle = math.radians(degrees)
    cos, sin = round(math.cos(angle), 12), round(math.sin(angle), 12)
    rows, cols = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                                indexing="ij")
    cy, cx = (height - 1) / 2, (width - 1) / 2
    y, x = rows - cy, cols - cx
    source_y, source_x = cos * y + sin * x + cy, -sin * y + cos * x + cx
    if interpolation == "nearest":
        taps = [(torch.floor(source_y + 0.5), torch.floor(source_x + 0.5), torch.ones_like(y))]
    else:
        y0, x0 = torch.floor(source_y), torch.floor(source_x)
        fy, fx = source_y - y0, source_x - x0
        taps = [(y0, x0, (1 - fy) * (1 - fx)), (y0, x0 + 1, (1 - fy) * fx),
                (y0 + 1, x0, fy * (1 - fx)), (y0 + 1, x0 + 1, fy * fx)]
    indices, weights = [], []
    for ty, tx, weight in taps:
        inside = (ty >= 0) & (ty < height) & (tx >= 0) & (tx < width)
        indices.append(torch.where(inside, ty * width + tx, 0).long().flatten())
        weights.append(torch.where(inside, weight, 0).float().flatten())
    return torch.stack(indices), torch.stack(weights)


class Rotation:
    """Rotate every image (a row of `shape` = (channels, height, width) pixels) by `degrees`, counter-clockwise;
    pixels that come from outside the image are 0."""

    def __init__(self, degrees: float, shape: tuple[int, int, int], interpolation: str):
        self.degrees = degrees
        self.shape = shape
        self.interpolation = interpolation

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Rows of the pool's dtype in. With nearest taps uint8 rows stay uint8 (the rotation only moves pixels and
        blanks those from outside the image, so the pixels are gathered as bytes, not as 4-byte floats); bilinear
        taps mix pixels, so their rows are made float32 in [0, 1] (`as_float`) once, before the taps are gathered."""
        channels, height, width = self.shape
        index, weight = rotation_taps(self.degrees, height, width, self.interpolation)
        n = len(x)
        x = (x if self.interpolation == "nearest" else as_float(x)).reshape(n * channels, height * width)
        out = None
        for tap, tap_weight in zip(index, weight):  # one tap at a time: an evaluation chunk needs no 4x buffer
            term = take_columns(x, tap.to(x.device), tap.numpy())
            term.mul_(tap_weight.to(x.device, x.dtype))  # nearest: exactly 1 inside the image and 0 outside
            out = term if out is None else out.add_(term)
        return out.view(n, channels * height * width)

    def to(self, device: torch.device) -> None:
        """Nothing to move: the taps are made (and cached) on the CPU and moved with each batch."""


def rotated_stream(dataset: str, root: str, scenario: str, n_tasks: int, seed: int, train_limit: int | None,
                   test_limit: int | None, min_angle: float = 0.0, max_angle: float = 180.0,
                   interpolation: str = "nearest", active_classes: str = "seen", test_cache: float = 1.0) -> Stream:
    """`n_tasks` tasks, task t rotating every image by an angle drawn uniformly from the t-th of `n_tasks` equal
    parts of [min_angle, max_angle) degrees (GEM's protocol: 20 tasks over 0-180, task t in [9t, 9t + 9)); the
    rotated test images of the tasks first evaluated kept in `test_cache` times the dataset's size."""
    min_angle = checks.number("stream.min_angle", min_angle)
    max_angle = checks.number("stream.max_angle", max_angle)
    if max_angle < min_angle:
        raise ConfigError(f"stream.max_angle={max_angle}: must be at least stream.min_angle ({min_angle})")
    interpolation = checks.choice("stream.interpolation", interpolation, INTERPOLATIONS)
    n = checks.integer("stream.n_tasks", n_tasks, minimum=1)

    def draw(t: int, data: ImageData, generator: torch.Generator) -> Rotation:
        u = torch.rand((), generator=generator, dtype=torch.float64).item()
        return Rotation(min_angle + (t + u) * (max_angle - min_angle) / n, data.image_shape, interpolation)

    return transformed_stream(dataset, root, scenario, n, seed, train_limit, test_limit, active_classes, draw,
                              test_cache)
