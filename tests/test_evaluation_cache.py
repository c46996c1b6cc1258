"""The test images kept ready between evaluations (streams/base.py EvaluationCache), and the rotation that gathers
bytes: the same values as reading every chunk again, within the budget, and the same run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import fake_dataset, run_in_process

from clrelu.errors import ConfigError
from clrelu.streams.base import EvaluationCache, Split
from clrelu.streams.permuted import permuted_stream
from clrelu.streams.rotated import Rotation, rotated_stream, rotation_taps
from clrelu.streams.split import split_stream
from clrelu.streams.validation import carve_validation

SIDE, N_TRAIN, N_TEST = 6, 120, 90
TEST_BYTES = N_TEST * SIDE * SIDE  # one task's test images as uint8
DATASET_BYTES = (N_TRAIN + N_TEST) * SIDE * SIDE


@pytest.fixture
def root(tmp_path):
    fake_dataset(tmp_path, n_train=N_TRAIN, n_test=N_TEST, side=SIDE)
    return str(tmp_path)


def make(kind: str, root: str, **kw):
    args = {"dataset": "mnist", "root": root, "scenario": "domain", "n_tasks": 4, "seed": 0, "train_limit": None,
            "test_limit": None, **kw}
    if kind == "split":
        return split_stream(**{**args, "scenario": "task", "classes_per_task": 2, "class_order": None})
    return permuted_stream(**args) if kind == "permuted" else rotated_stream(**args)


def bits(x: torch.Tensor) -> torch.Tensor:
    """float32 values as their bit patterns, so that equality is bit for bit (-0.0 differs from 0.0)."""
    return x.contiguous().view(torch.int32)


def read_all(split, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    parts = list(split.chunks(size))
    return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_a_rotation_gives_the_float_pixels_gathered_and_weighted_tap_by_tap(interpolation):
    """The expected rows: the pixels as float32 / 255, then each output pixel the sum, tap by tap in order, of the
    pixel it reads times its weight (numpy, from the taps): what rotating float rows did before bytes were
    gathered."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(7, 2 * 9 * 9), dtype=np.uint8)
    index, weight = rotation_taps(31.7, 9, 9, interpolation)
    pixels = images.reshape(14, 81).astype(np.float32) / np.float32(255)
    expected = np.zeros_like(pixels)
    for k, (tap, w) in enumerate(zip(index.numpy(), weight.numpy())):
        term = pixels[:, tap] * w
        expected = term if k == 0 else expected + term
    out = Rotation(31.7, (2, 9, 9), interpolation)(torch.from_numpy(images))
    assert out.dtype == (torch.uint8 if interpolation == "nearest" else torch.float32)
    got = out.float().div_(255) if out.dtype == torch.uint8 else out
    assert torch.equal(bits(got), bits(torch.from_numpy(expected.reshape(7, -1))))


@pytest.mark.parametrize("kind, interpolation, kept", [("permuted", None, torch.uint8), ("rotated", "nearest", torch.uint8),
                                                        ("rotated", "bilinear", torch.float32),
                                                        ("split", None, torch.float32)])
def test_kept_test_images_are_bit_for_bit_those_read_chunk_by_chunk(root, kind, interpolation, kept):
    """Kept as the transform makes them (permuted, rotated), or as float32 pixels (a split stream's tasks)."""
    extra = {"interpolation": interpolation} if interpolation else {}
    cached, plain = make(kind, root, test_cache=10, **extra), make(kind, root, test_cache=0, **extra)
    assert plain.tasks[0].test.cache is None
    for task, reference in zip(cached.tasks, plain.tasks):
        n = len(task.test)
        expected_x, expected_y = read_all(reference.test, 25)
        for size in (25, 40, 1000):  # the first read keeps them; later reads, in other chunk sizes, slice them
            x, y = read_all(task.test, size)
            assert torch.equal(bits(x), bits(expected_x)) and torch.equal(y, expected_y)
        assert task.test.kept is not None and task.test.kept.dtype == kept
        assert torch.equal(bits(task.test.gather(torch.arange(n))[0]), bits(expected_x))
    assert cached.tasks[0].train.kept is None and cached.tasks[0].train.cache is None  # training reads are not kept


def test_the_budget_keeps_the_tasks_first_evaluated_and_no_more(root):
    stream = make("rotated", root, test_cache=2.5 * TEST_BYTES / DATASET_BYTES)  # room for two tasks' test images
    cache = stream.tasks[0].test.cache
    assert cache.budget == int(2.5 * TEST_BYTES)
    for t in (2, 0, 3, 1):  # evaluated in this order
        read_all(stream.tasks[t].test, 50)
    assert [t.test.kept is not None for t in stream.tasks] == [True, False, True, False]
    assert cache.used == 2 * TEST_BYTES <= cache.budget
    assert sum(t.test.kept.numel() * t.test.kept.element_size() for t in stream.tasks if t.test.kept is not None) \
        == cache.used


def test_a_read_stopped_early_keeps_nothing_and_gives_the_budget_back(root):
    stream = make("permuted", root)
    test = stream.tasks[0].test
    chunks = test.chunks(30)
    next(chunks)
    chunks.close()
    assert test.kept is None and test.cache.used == 0
    read_all(test, 30)
    assert test.kept is not None and test.cache.used == TEST_BYTES


@pytest.mark.parametrize("kind", ["permuted", "rotated", "split"])
def test_the_default_budget_is_the_dataset_s_size_and_a_bad_one_is_refused(root, kind):
    assert make(kind, root).tasks[0].test.cache.budget == DATASET_BYTES
    with pytest.raises(ConfigError, match="stream.test_cache=-1: must be at least 0"):
        make(kind, root, test_cache=-1)


def test_float_rows_without_a_transform_are_not_kept():
    """Rows that are float32 already (synthetic data, features): a kept copy would spare nothing."""
    split = Split.of(torch.randn(30, 8), torch.arange(30) % 3)
    split.cache = EvaluationCache(10**6)
    read_all(split, 7)
    assert split.kept is None and split.cache.used == 0


def test_a_run_with_kept_test_images_ends_with_the_same_accuracy_matrix(tmp_path):
    fake_dataset(tmp_path / "data", n_train=N_TRAIN, n_test=N_TEST, side=SIDE)
    common = ["stream=rotated_mnist", f"data.root={tmp_path / 'data'}", "stream.n_tasks=3", "model.hidden=[16]",
              "plasticity.probe_size=20"]
    kept = run_in_process(tmp_path / "kept", *common)
    chunked = run_in_process(tmp_path / "chunked", *common, "stream.test_cache=0")
    assert np.array_equal(kept.R, chunked.R, equal_nan=True)


def test_a_validation_split_is_kept_like_the_test_split_it_replaces(root):
    cached = carve_validation(make("split", root, test_cache=10), 0.25, seed=0)
    plain = carve_validation(make("split", root, test_cache=0), 0.25, seed=0)
    for task, reference in zip(cached.tasks, plain.tasks):
        expected_x, expected_y = read_all(reference.test, 9)
        for size in (9, 100):
            x, y = read_all(task.test, size)
            assert torch.equal(bits(x), bits(expected_x)) and torch.equal(y, expected_y)
        assert task.test.kept is not None and len(task.test.kept) == len(task.test)
