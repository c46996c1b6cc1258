"""model=transfer with a torchvision backbone: frozen, its feature width, its input conversion, weights read
from torchvision's cache with weights_only=True, and one line when they are neither cached nor downloadable."""

import os
import subprocess
import sys
import urllib.error

import pytest
import torch
from torch.nn import functional as F

from clrelu.errors import ConfigError, DataError
from clrelu.models.transfer import TransferHead
from clrelu.streams.base import HeadLayout

torchvision = pytest.importorskip("torchvision", reason="the vision extra is not installed")

LAYOUT = HeadLayout("task", n_tasks=2, classes_per_task=2)
RESNET18_FILE = "resnet18-f37072fd.pth"  # torchvision's name for ResNet18_Weights.IMAGENET1K_V1


def backbone(image_shape=(3, 32, 32), **kw):
    args = {"backbone": "torchvision", "backbone_name": "resnet18", "backbone_weights": None, "backbone_size": 32,
            "image_shape": image_shape}
    return TransferHead(int(torch.tensor(image_shape).prod()), LAYOUT, **{**args, **kw})


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torchvision cache, and no network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_random_weights_frozen_with_the_feature_width_and_a_learning_head():
    torch.manual_seed(0)
    model = backbone()
    assert model.trunk_width == 512 and model.heads.layers[0].in_features == 512
    assert not any(p.requires_grad for p in model.trunk.parameters())
    before = {k: v.clone() for k, v in model.trunk.net.state_dict().items()}
    model.begin_task(0)
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    head = model.heads.layers[0].weight.detach().clone()
    for _ in range(3):
        loss, _ = model.loss_and_logits(torch.randn(8, 3 * 32 * 32), torch.randint(0, 2, (8,)), 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert torch.isfinite(loss)
    after = model.trunk.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # batch norm statistics included
    assert not model.trunk.net.training  # eval mode even while the model trains
    assert not torch.equal(model.heads.layers[0].weight, head)


def test_other_architectures_give_their_own_width():
    model = backbone(backbone_name="mobilenet_v3_small")
    assert model.trunk_width == 1024  # the input of its last linear layer


def test_grey_images_are_repeated_resized_and_normalised():
    torch.manual_seed(0)
    model = backbone(image_shape=(1, 28, 28), backbone_size=40)
    x = torch.rand(3, 784)
    images = x.view(3, 1, 28, 28).repeat(1, 3, 1, 1)
    images = F.interpolate(images, size=(40, 40), mode="bilinear", align_corners=False)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])  # ImageNet's
    expected = model.trunk.net((images - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
    torch.testing.assert_close(model.trunk(x), expected, rtol=1e-4, atol=1e-5)


def test_the_default_size_is_the_weights_crop():
    assert backbone(backbone_size=None).trunk.size == 224


def test_offline_and_not_cached_is_one_line(torch_home):
    with pytest.raises(DataError) as caught:
        backbone(backbone_weights="IMAGENET1K_V1")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("model.backbone_weights=IMAGENET1K_V1:")
    assert RESNET18_FILE in message and str(torch_home) in message and "Name or service not known" in message


def test_cached_weights_are_loaded(torch_home):
    torch.manual_seed(1)
    weights = torchvision.models.resnet18().state_dict()
    torch_home.mkdir(parents=True)
    torch.save(weights, torch_home / RESNET18_FILE)
    model = backbone(backbone_weights="IMAGENET1K_V1")
    loaded = model.trunk.net.state_dict()
    assert torch.equal(loaded["conv1.weight"], weights["conv1.weight"])
    assert torch.equal(loaded["layer4.1.bn2.running_var"], weights["layer4.1.bn2.running_var"])
    assert backbone(backbone_weights="DEFAULT").trunk.net.state_dict()["conv1.weight"].equal(weights["conv1.weight"])


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_hostile_weights_file_runs_nothing(torch_home, tmp_path):
    marker = tmp_path / "pwned"
    torch_home.mkdir(parents=True)
    torch.save({"conv1.weight": Payload(marker)}, torch_home / RESNET18_FILE)
    with pytest.raises(DataError) as caught:
        backbone(backbone_weights="IMAGENET1K_V1")
    assert "weights_only=True" in str(caught.value) and "\n" not in str(caught.value)
    assert not marker.exists()
    # the payload is real: torch.load without weights_only runs it
    unsafe = f"import torch; torch.load({str(torch_home / RESNET18_FILE)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", unsafe], check=True, capture_output=True)
    assert marker.exists()


@pytest.mark.parametrize("kw, expected", [
    ({"backbone_name": "resnet1"}, "model.backbone_name=resnet1: unknown choice; valid choices are"),
    ({"backbone_weights": "IMAGENET"},
     "model.backbone_weights=IMAGENET: unknown choice; valid choices are null, IMAGENET1K_V1, DEFAULT"),
    ({"trunk": "cnn"}, "model.trunk=cnn: model.backbone=torchvision brings its own trunk"),
    ({"finetune_last": 1}, "model.finetune_last=1: a torchvision backbone stays frozen whole"),
    ({"image_shape": (2, 8, 8)}, "model.backbone=torchvision: needs a stream of grey or colour images"),
])
def test_bad_values_name_the_key(kw, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(")):
        backbone(**kw)
