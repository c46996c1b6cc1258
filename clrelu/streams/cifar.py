"""Split CIFAR-10 and CIFAR-100: the classes cut into tasks as in every split stream, the images kept once as uint8
and normalised per channel when a batch is read, and the optional augmentation of training batches."""

from __future__ import annotations

import torch

from clrelu import checks
from clrelu.data.cifar import CIFAR, load_cifar
from clrelu.data.datasets import ImageData
from clrelu.streams.augment import AUGMENTS, make_augment
from clrelu.streams.base import ACTIVE_CLASSES, SCENARIOS, Stream
from clrelu.streams.split import SplitPlan


class ChannelNormalise:
    """uint8 rows of C x H x W images to float32 `(x / 255 - mean_c) / std_c`, one mean and std per channel."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, image_shape: tuple[int, int, int]):
        positions = image_shape[1] * image_shape[2]
        self.scale = (1 / (255 * std)).float().repeat_interleave(positions)
        self.shift = (-mean / std).float().repeat_interleave(positions)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().mul_(self.scale).add_(self.shift)

    def to(self, device: torch.device) -> None:
        self.scale, self.shift = self.scale.to(device), self.shift.to(device)


def channel_stats(data: ImageData) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and standard deviation of each channel over every pixel of the training images, in [0, 1] units
    (exact, from a histogram of the 256 pixel values; float64)."""
    values = torch.arange(256, dtype=torch.float64) / 255
    rows = data.x_train.view(len(data.x_train), data.image_shape[0], -1)
    mean, std = [], []
    for c in range(data.image_shape[0]):
        counts = torch.bincount(rows[:, c].flatten(), minlength=256).double()
        m = (counts * values).sum() / counts.sum()
        mean.append(m)
        std.append(((counts * (values - m) ** 2).sum() / counts.sum()).sqrt())
    return torch.stack(mean), torch.stack(std)


def split_cifar_stream(dataset: str, root: str, scenario: str, n_tasks: int | None, classes_per_task: int,
                       class_order, seed: int, train_limit: int | None, test_limit: int | None,
                       active_classes: str = "seen", augment: str = "none", test_cache: float = 1.0) -> Stream:
    """Split CIFAR-10 or CIFAR-100 into tasks of `classes_per_task` classes (all of them when `n_tasks` is null),
    normalised with the per-channel mean and std of the whole training set; `augment` crop_flip augments every
    training batch; the normalised test images of the tasks first evaluated kept in `test_cache` times the
    dataset's size."""
    checks.choice("stream.dataset", dataset, CIFAR)
    checks.choice("stream.augment", augment, AUGMENTS)
    checks.choice("stream.scenario", scenario, SCENARIOS)  # before the files are read (or downloaded)
    checks.choice("stream.active_classes", active_classes, ACTIVE_CLASSES)
    plan = SplitPlan.checked(CIFAR[dataset].n_classes, n_tasks, classes_per_task, class_order, seed, train_limit,
                             test_limit, test_cache)
    data = load_cifar(dataset, root)
    mean, std = channel_stats(data)
    stream = plan.stream(data, scenario, active_classes, ChannelNormalise(mean, std, data.image_shape))
    stream.normalisation = (tuple(mean.tolist()), tuple(std.tolist()))
    stream.augment = make_augment(augment, data.image_shape, -mean / std)  # pads with black, normalised
    return stream
