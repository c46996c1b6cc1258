"""crop_flip: each image is its padded copy cropped at a random offset and mirrored half the time, drawn from the
generator it is given."""

import pytest
import torch

from clrelu.errors import ConfigError
from clrelu.streams.augment import CropFlip, make_augment

SHAPE = (3, 8, 8)
FILL = torch.tensor([-1.0, -2.0, -3.0])


def expected(x, generator):
    """The same augmentation written one image at a time, replaying the generator's draws in their order."""
    n = len(x)
    top = torch.randint(0, 9, (n,), generator=generator)
    left = torch.randint(0, 9, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    out = []
    for image, t, s, f in zip(x.view(n, *SHAPE), top.tolist(), left.tolist(), flip.tolist()):
        padded = FILL.view(3, 1, 1).repeat(1, 16, 16)
        padded[:, 4:12, 4:12] = image
        crop = padded[:, t:t + 8, s:s + 8]
        out.append((crop.flip(2) if f else crop).reshape(-1))
    return torch.stack(out), top, left, flip


def test_each_image_is_a_padded_crop_mirrored_half_the_time():
    x = torch.randn(64, 3 * 8 * 8)
    got = CropFlip(SHAPE, FILL)(x, torch.Generator().manual_seed(5))
    want, top, left, flip = expected(x, torch.Generator().manual_seed(5))
    assert torch.equal(got, want)
    assert got.shape == x.shape and got.dtype == x.dtype
    assert 0 < flip.sum() < 64 and len(set(top.tolist())) > 3 and len(set(left.tolist())) > 3
    corner = got.view(64, *SHAPE)[(top == 0) & (left == 0) & ~flip]
    assert len(corner) == 0 or torch.equal(corner[:, :, :4, :4], FILL.view(3, 1, 1).expand(len(corner), 3, 4, 4))


def test_same_seed_same_batch():
    x = torch.randn(32, 3 * 8 * 8)
    augment = CropFlip(SHAPE, FILL)
    a = augment(x, torch.Generator().manual_seed(1))
    b = augment(x, torch.Generator().manual_seed(1))
    c = augment(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_the_choices():
    assert make_augment("none", SHAPE, FILL) is None
    assert isinstance(make_augment("crop_flip", SHAPE, FILL), CropFlip)
    with pytest.raises(ConfigError, match="stream.augment=flip: unknown choice; valid choices are none, crop_flip"):
        make_augment("flip", SHAPE, FILL)
