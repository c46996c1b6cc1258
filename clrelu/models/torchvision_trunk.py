"""A torchvision image model up to its classifier, as a frozen trunk (`model.backbone=torchvision`).

Weights come from torchvision's cache (`$TORCH_HOME/hub/checkpoints`, torch.hub's folder), downloaded
there with torch.hub's hash check when missing; offline and not cached, one line names the file and
the folder. torchvision's builders read their weights files with `weights_only=False`; clrelu
builds them with torch's documented switch `TORCH_FORCE_WEIGHTS_ONLY_LOAD` set, so every weights file
is read with `weights_only=True` (nothing in it can run code), through the builder's own loading
(which some architectures need, such as DenseNet's renamed keys and Inception's input transform).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn
from torch.nn import functional as F

from clrelu import checks
from clrelu.data.vision import import_torchvision
from clrelu.errors import ConfigError, DataError, choices_error

CHUNK = 256  # images per forward pass: 10,000 at 224 x 224 would need tens of GB of activations
FORCE_SAFE, FORCE_UNSAFE = "TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


@contextlib.contextmanager
def weights_only_loads():
    """Within the block, every torch.load reads with weights_only=True, whatever its caller asked for."""
    saved = {key: os.environ.pop(key, None) for key in (FORCE_SAFE, FORCE_UNSAFE)}
    os.environ[FORCE_SAFE] = "1"
    try:
        yield
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value


def cache_folder() -> Path:
    """Where torch.hub, and so torchvision, keeps downloaded weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_weights(weights, name: str) -> Path:
    """The cached file of `weights`, downloaded (hash-checked, through a temporary name) when missing."""
    file = cache_folder() / os.path.basename(urlparse(weights.url).path)
    if file.is_file():
        return file
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        match = torch.hub.HASH_REGEX.search(file.name)
        torch.hub.download_url_to_file(weights.url, str(file), match.group(1) if match else None, progress=False)
    except Exception as exc:  # noqa: BLE001 - no network, a bad hash, an unwritable cache: one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"model.backbone_weights={weights.name}: the weights of {name} ({file.name}) are not in "
                        f"torchvision's cache {file.parent} and could not be downloaded ({reason}); put {file.name} "
                        f"there (from {weights.url}), or point TORCH_HOME at a cache that has it") from None
    return file


def strip_classifier(model: nn.Module, name: str) -> int:
    """Replace the model's classifier (its last linear layer) by the identity; return the feature width."""
    linears = [(path, m) for path, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(f"model.backbone_name={name}: has no linear classifier to remove; choose another model")
    path, last = linears[-1]
    parent_path, _, attribute = path.rpartition(".")
    setattr(model.get_submodule(parent_path) if parent_path else model, attribute, nn.Identity())
    return last.in_features


class TorchvisionTrunk(nn.Module):
    """A torchvision classification model without its classifier, frozen, on a stream's flat images.

    Each batch is viewed as images of `image_shape`, brought back to [0, 1] (undoing the stream's per-channel
    `input_mean`/`input_std`), grey images repeated to three channels, resized (bilinear) to `size` x `size`,
    and normalised with the weights' mean and std. The network always runs in eval mode.
    """

    def __init__(self, name: str, weights: str | None, image_shape: tuple[int, int, int], size: int | None = None,
                 input_mean=(0.0,), input_std=(1.0,)):
        super().__init__()
        tv = import_torchvision("model.backbone=torchvision")
        names = tv.models.list_models(module=tv.models)
        self.name = checks.choice("model.backbone_name", name, names)
        enum = tv.models.get_model_weights(name)
        chosen = None
        if weights is not None:
            try:
                chosen = enum.verify(weights)
            except (KeyError, ValueError, TypeError):
                raise choices_error("model.backbone_weights", weights, ["null", *enum.__members__]) from None
        preset = (enum.DEFAULT if chosen is None else chosen).transforms()  # null weights: the default's input
        if image_shape is None or image_shape[0] not in (1, 3):
            raise ConfigError("model.backbone=torchvision: needs a stream of grey or colour images")
        self.image_shape = tuple(image_shape)
        self.size = preset.crop_size[0] if size is None else checks.integer("model.backbone_size", size, minimum=1)
        file = None if chosen is None else cached_weights(chosen, name)
        try:
            with weights_only_loads():
                self.net = tv.models.get_model(name, weights=chosen)
        except Exception as exc:
            if file is None:
                raise
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"model.backbone_weights={weights}: {file} cannot be read as weights with "
                            f"weights_only=True ({detail}); remove it to download it again") from None
        self.out_features = strip_classifier(self.net, name)
        self.net.requires_grad_(False)
        self.net.eval()
        channels = self.image_shape[0]
        mean, std = torch.tensor(preset.mean), torch.tensor(preset.std)
        in_mean = torch.tensor(input_mean, dtype=torch.float32).expand(channels)
        in_std = torch.tensor(input_std, dtype=torch.float32).expand(channels)
        # one affine map per channel: x * in_std + in_mean gives [0, 1]; then (. - mean) / std
        self.register_buffer("scale", (in_std.repeat(3 // channels) / std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", ((in_mean.repeat(3 // channels) - mean) / std).view(1, 3, 1, 1),
                             persistent=False)

    def train(self, mode: bool = True) -> TorchvisionTrunk:
        super().train(False)  # frozen: batch norm statistics and dropout stay as the weights have them
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._features(part) for part in x.split(CHUNK)])

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        images = x.view(len(x), *self.image_shape)
        if self.image_shape[0] == 1:
            images = images.expand(-1, 3, -1, -1)
        images = images * self.scale + self.shift
        if images.shape[-2:] != (self.size, self.size):
            images = F.interpolate(images, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.net(images).flatten(1)
