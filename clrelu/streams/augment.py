"""Augmentation of training batches of images, on the whole batch at once (`stream.augment`).

`crop_flip` is the usual CIFAR augmentation (torchvision's RandomCrop(32, padding=4) and
RandomHorizontalFlip() before ToTensor and Normalize) as tensor operations on a batch of flat,
already normalised rows: each image is padded by 4 pixels of black (its normalised value per
channel), cropped back to its size at a random offset, and mirrored with probability 1/2. The
random numbers come from the generator the trainer passes (the one that orders the batches), so
a seed gives the same augmented batches, and a resumed run continues them exactly.
"""

from __future__ import annotations

import torch

from clrelu import checks

AUGMENTS = ("none", "crop_flip")


class CropFlip:
    """Random crop with `padding` (filled with `fill`, one value per channel) and a random horizontal flip."""

    def __init__(self, image_shape: tuple[int, int, int], fill: torch.Tensor, padding: int = 4):
        self.image_shape = tuple(image_shape)
        self.fill = fill.float().view(-1, 1, 1)
        self.padding = padding

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, (c, h, w), p = len(x), self.image_shape, self.padding
        top = torch.randint(0, 2 * p + 1, (n,), generator=generator).to(x.device)
        left = torch.randint(0, 2 * p + 1, (n,), generator=generator).to(x.device)
        flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        padded = self.fill.to(x.device).expand(c, h + 2 * p, w + 2 * p).repeat(n, 1, 1, 1)
        padded[:, :, p:p + h, p:p + w] = x.view(n, c, h, w)
        rows = top[:, None] + torch.arange(h, device=x.device)  # n x h
        cols = left[:, None] + torch.arange(w, device=x.device)  # n x w
        cols = torch.where(flip[:, None], cols.flip(1), cols)  # a flip reads the columns right to left
        samples = torch.arange(n, device=x.device)[:, None, None, None]
        channels = torch.arange(c, device=x.device)[None, :, None, None]
        return padded[samples, channels, rows[:, None, :, None], cols[:, None, None, :]].reshape(n, c * h * w)


def make_augment(name: str, image_shape: tuple[int, int, int], fill: torch.Tensor) -> CropFlip | None:
    """The augmentation `stream.augment` names, or None for `none`."""
    return CropFlip(image_shape, fill) if checks.choice("stream.augment", name, AUGMENTS) == "crop_flip" else None
