"""Streams: task counts, class partitions, seeded permutations, scenario targets, sample limits, and the lazy
splits: the same tensors as streams built in advance, in memory that does not grow with the number of tasks."""

import functools

import numpy as np
import pytest
import torch
from conftest import fake_dataset

from clrelu.data.datasets import load_dataset
from clrelu.errors import ConfigError
from clrelu.models.mlp import MLP
from clrelu.rundir.record import RunRecord
from clrelu.strategies.naive import Naive
from clrelu.streams.base import Split, Stream, Task, as_float
from clrelu.streams.permuted import permuted_stream
from clrelu.streams.rotated import Rotation, rotated_stream
from clrelu.streams.split import split_stream
from clrelu.streams.synthetic import synthetic_stream
from clrelu.training.trainer import Trainer, TrainSettings


def everything(split: Split):
    """All samples of a split as two tensors."""
    return split.gather(torch.arange(len(split)))


@pytest.fixture
def root(tmp_path):
    fake_dataset(tmp_path, n_train=400, n_test=200, side=4)
    return str(tmp_path)


def split(root, **kw):
    args = dict(dataset="mnist", root=root, scenario="task", n_tasks=None, classes_per_task=2, class_order=None,
                seed=0, train_limit=None, test_limit=None)
    return split_stream(**{**args, **kw})


def test_split_partitions_the_classes(root):
    stream = split(root)
    assert stream.n_tasks == 5
    groups = [set(t.classes) for t in stream.tasks]
    assert set().union(*groups) == {str(d) for d in range(10)}
    assert sum(len(g) for g in groups) == 10
    for task in stream.tasks:
        assert len(task.train) == 80 and len(task.test) == 40  # 400 / 10 classes x 2


def test_split_class_order_and_local_labels(root):
    stream = split(root, class_order=[9, 3, 0, 1, 2, 4, 5, 6, 7, 8])
    first = stream.tasks[0]
    assert first.classes == ("9", "3")
    # the fake images are bright in the pixel of their digit: label 0 is digit 9, label 1 is digit 3
    x, y = everything(first.train)
    assert (x[y == 0][:, 9] == 1.0).all() and (x[y == 1][:, 3] == 1.0).all()


def test_split_order_is_shuffled_from_the_seed(root):
    a, b, c = split(root, seed=1), split(root, seed=1), split(root, seed=2)
    assert [t.classes for t in a.tasks] == [t.classes for t in b.tasks]
    assert [t.classes for t in a.tasks] != [t.classes for t in c.tasks]


def test_scenario_targets(root):
    order = list(range(10))
    for scenario, expected in (("task", [0, 1]), ("domain", [0, 1]), ("class", [6, 7])):
        stream = split(root, scenario=scenario, class_order=order)
        assert sorted(stream.tasks[3].train.targets().unique().tolist()) == expected, scenario
    layout = split(root, scenario="class").layout
    assert layout.head_width == 10 and layout.n_heads == 1 and list(layout.units_of(3)) == [6, 7]
    assert split(root, scenario="task").layout.n_heads == 5


def test_fewer_tasks_and_bad_values(root):
    assert split(root, n_tasks=3).n_tasks == 3
    with pytest.raises(ConfigError, match="stream.classes_per_task=3: does not divide the 10 classes"):
        split(root, classes_per_task=3)
    with pytest.raises(ConfigError, match="stream.n_tasks=6: must be at most 5"):
        split(root, n_tasks=6)
    with pytest.raises(ConfigError, match="stream.class_order"):
        split(root, class_order=[0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
    with pytest.raises(ConfigError, match="stream.train_limit=0: must be at least 1"):
        split(root, train_limit=0)


def test_train_limit(root):
    stream = split(root, train_limit=25, test_limit=7)
    for task in stream.tasks:
        assert len(task.train) == 25 and len(task.test) == 7
        assert set(task.train.targets().tolist()) == {0, 1}


def permuted(root, **kw):
    args = dict(dataset="mnist", root=root, scenario="domain", n_tasks=3, seed=0, train_limit=None, test_limit=None)
    return permuted_stream(**{**args, **kw})


def test_permutations_are_fixed_by_the_seed(root):
    a, b, c = permuted(root), permuted(root), permuted(root, seed=1)
    for ta, tb in zip(a.tasks, b.tasks):
        assert torch.equal(everything(ta.train)[0], everything(tb.train)[0])
    assert not torch.equal(everything(a.tasks[0].train)[0], everything(c.tasks[0].train)[0])
    assert not torch.equal(everything(a.tasks[0].train)[0], everything(a.tasks[1].train)[0])


def test_permuted_tasks_hold_the_same_pixels_rearranged(root):
    stream = permuted(root)
    (x0, y0), (x1, y1) = everything(stream.tasks[0].train), everything(stream.tasks[1].train)
    assert torch.equal(x0.sort(dim=1).values, x1.sort(dim=1).values)
    assert torch.equal(y0, y1)
    assert len(stream.tasks[0].classes) == 10


def test_permuted_class_scenario_gives_each_task_its_own_ten_units(root):
    stream = permuted(root, scenario="class")
    assert stream.layout.head_width == 30
    assert set(stream.tasks[2].train.targets().tolist()) == set(range(20, 30))


def test_synthetic_is_deterministic_and_separable():
    args = dict(scenario="task", n_tasks=3, classes_per_task=2, n_features=8, train_per_class=50,
                test_per_class=20, noise=1.0, seed=0, train_limit=None, test_limit=None)
    a, b = synthetic_stream(**args), synthetic_stream(**args)
    assert a.n_tasks == 3 and a.in_features == 8
    assert torch.equal(everything(a.tasks[2].test)[0], everything(b.tasks[2].test)[0])
    assert len(a.tasks[0].train) == 100 and len(a.tasks[0].test) == 40


# --- the lazy splits against streams built in advance --------------------------------------------

def _limit(x, y, n, generator):
    """clrelu 0.1's sample limit: at most n samples drawn at random, kept in their original order."""
    if n is None or n >= len(x):
        return x, y
    keep = torch.randperm(len(x), generator=generator)[:n].sort().values
    return x[keep], y[keep]


def materialised_permuted(root, scenario, n_tasks, seed, train_limit, test_limit) -> Stream:
    """The permuted stream as clrelu built it before its splits were lazy: a float32 copy per task, same draws."""
    generator = torch.Generator().manual_seed(seed)
    data = load_dataset("mnist", root)
    tasks = []
    for t in range(n_tasks):
        permutation = torch.randperm(data.n_features, generator=generator)
        x_train, y_train = _limit(data.x_train, data.y_train, train_limit, generator)
        x_test, y_test = _limit(data.x_test, data.y_test, test_limit, generator)
        shift = 10 * t if scenario == "class" else 0
        tasks.append(Task(t, data.class_names, Split.of(x_train[:, permutation].float().div_(255), y_train + shift),
                          Split.of(x_test[:, permutation].float().div_(255), y_test + shift)))
    return Stream(tasks, scenario, 10)


def materialised_split(root, scenario, class_order, train_limit) -> Stream:
    """The split stream as clrelu built it before its splits were lazy."""
    generator = torch.Generator().manual_seed(0)
    data = load_dataset("mnist", root)
    tasks = []
    for t in range(5):
        classes = class_order[2 * t:2 * t + 2]
        local = torch.full((10,), -1)
        local[classes] = torch.arange(2)
        parts = []
        for x, y, n in ((data.x_train, data.y_train, train_limit), (data.x_test, data.y_test, None)):
            keep = local[y] >= 0
            x, y = _limit(x[keep], local[y[keep]], n, generator)
            parts.append(Split.of(x.float().div_(255), y + (2 * t if scenario == "class" else 0)))
        tasks.append(Task(t, tuple(str(k) for k in classes), *parts))
    return Stream(tasks, scenario, 2)


def assert_same_batches(lazy: Stream, reference: Stream) -> None:
    """Random batches, evaluation chunks and targets of every task are equal, bit for bit."""
    generator = torch.Generator().manual_seed(1)
    for mine, theirs in zip(lazy.tasks, reference.tasks, strict=True):
        for a, b in ((mine.train, theirs.train), (mine.test, theirs.test)):
            assert len(a) == len(b)
            order = torch.randperm(len(a), generator=generator)
            for start in range(0, len(a), 37):
                for got, expected in zip(a.gather(order[start:start + 37]), b.gather(order[start:start + 37])):
                    assert got.dtype == expected.dtype and torch.equal(got, expected)
            for (xa, ya), (xb, yb) in zip(a.chunks(64), b.chunks(64), strict=True):
                assert torch.equal(xa, xb) and torch.equal(ya, yb)
            assert torch.equal(a.targets(), b.targets())


def accuracy_matrix(stream: Stream, tmp_path, regime: str = "sequential"):
    """R after training a small MLP on `stream` with the trainer, from fixed seeds."""
    torch.manual_seed(0)
    model = MLP(stream.in_features, stream.layout, hidden=[16])
    tmp_path.mkdir(exist_ok=True)
    record = RunRecord(tmp_path, stream.n_tasks, {})
    Trainer(model, Naive(stream.layout), stream, functools.partial(torch.optim.SGD, lr=0.1),
            TrainSettings(regime=regime, batch_size=16), record, torch.Generator().manual_seed(0)).run()
    return record.R


@pytest.mark.parametrize("scenario,train_limit,test_limit", [("domain", None, None), ("class", 150, 60)])
def test_lazy_permuted_stream_gives_the_materialised_tensors(root, tmp_path, scenario, train_limit, test_limit):
    lazy = permuted(root, scenario=scenario, seed=4, train_limit=train_limit, test_limit=test_limit)
    reference = materialised_permuted(root, scenario, 3, 4, train_limit, test_limit)
    assert_same_batches(lazy, reference)
    regime = "joint" if scenario == "class" else "sequential"  # joint gathers from every task at once
    lazy_R = accuracy_matrix(lazy, tmp_path / "lazy", regime)
    np.testing.assert_array_equal(lazy_R, accuracy_matrix(reference, tmp_path / "reference", regime))


def test_lazy_split_stream_gives_the_materialised_tensors(root, tmp_path):
    order = [3, 1, 4, 0, 5, 9, 2, 6, 8, 7]
    lazy = split(root, scenario="class", class_order=order, train_limit=30)
    reference = materialised_split(root, "class", order, 30)
    assert_same_batches(lazy, reference)
    np.testing.assert_array_equal(accuracy_matrix(lazy, tmp_path / "a", "cumulative"),
                                  accuracy_matrix(reference, tmp_path / "b", "cumulative"))


def stored_bytes(stream: Stream) -> int:
    """The bytes of every distinct tensor storage a stream's tasks reach (shared storage counted once)."""
    storages, seen = {}, set()

    def visit(obj):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if torch.is_tensor(obj):
            storages[obj.untyped_storage().data_ptr()] = obj.untyped_storage().nbytes()
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                visit(item)
        elif hasattr(obj, "__dict__"):
            for value in vars(obj).values():
                visit(value)

    visit(stream.tasks)
    return sum(storages.values())


@pytest.mark.parametrize("train_limit", [None, 100])
def test_a_1000_task_permuted_stream_stores_one_copy_of_the_data(tmp_path, train_limit):
    fake_dataset(tmp_path, n_train=300, n_test=100, side=28)
    small = permuted(str(tmp_path), n_tasks=10, train_limit=train_limit)
    large = permuted(str(tmp_path), n_tasks=1000, train_limit=train_limit)
    dataset = (300 + 100) * (784 + 8)  # uint8 pixels and int64 labels, train and test
    assert stored_bytes(small) >= dataset
    per_task = (stored_bytes(large) - stored_bytes(small)) / 990
    # what a task adds: its permutation (784 int16), two label maps (10 int64 each), its training rows (int32)
    assert per_task == 784 * 2 + 2 * 80 + 4 * (train_limit or 0)
    assert len({id(t.train.pool) for t in large.tasks}) == 1


# --- rotated streams -----------------------------------------------------------------------------

@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_rotation_by_0_is_the_identity_and_by_90_is_rot90(interpolation):
    images = torch.randint(0, 256, (5, 2, 7, 7), dtype=torch.uint8)  # two channels, odd size
    rows = images.view(5, -1)
    as_floats = images.float().div_(255)
    for degrees, k in ((0.0, 0), (90.0, 1), (180.0, 2), (270.0, 3), (-90.0, 3)):
        rotated = as_float(Rotation(degrees, (2, 7, 7), interpolation)(rows)).view(5, 2, 7, 7)
        assert torch.equal(rotated, torch.rot90(as_floats, k, dims=(2, 3))), degrees
    wide = torch.randint(0, 256, (3, 1, 6, 6), dtype=torch.uint8)  # even size: the centre lies between pixels
    assert torch.equal(as_float(Rotation(90.0, (1, 6, 6), interpolation)(wide.view(3, -1))).view(3, 1, 6, 6),
                       torch.rot90(wide.float().div_(255), 1, dims=(2, 3)))


def test_rotation_turns_counter_clockwise_and_interpolates_between_pixels():
    image = torch.zeros(1, 5, 5, dtype=torch.uint8)
    image[0, 0, 4] = 255  # the top-right corner
    turned = Rotation(90.0, (1, 5, 5), "nearest")(image.view(1, -1)).view(5, 5)
    assert turned.dtype == torch.uint8  # nearest taps only move pixels: bytes stay bytes
    assert turned[0, 0] == 255 and turned.sum() == 255  # counter-clockwise: top-right goes to top-left
    # 45 degrees, bilinear, a horizontal line through the centre of a 3 x 3 image: it turns into the diagonal from
    # bottom left to top right. The top-right output pixel reads the input at (row 1, column 1 + sqrt 2): 0.586 of
    # the line's last pixel and 0.414 of the zero outside; the top-left one reads above row 0, outside: 0.
    line = torch.zeros(1, 3, 3, dtype=torch.uint8)
    line[0, 1, :] = 255
    turned = Rotation(45.0, (1, 3, 3), "bilinear")(line.view(1, -1)).view(3, 3)
    assert turned[1, 1] == 1.0 and turned[0, 0] == 0.0
    assert turned[0, 2].item() == pytest.approx(2 - 2 ** 0.5, abs=1e-6)
    assert turned[2, 0].item() == pytest.approx(2 - 2 ** 0.5, abs=1e-6)


def rotated(root, **kw):
    args = {"dataset": "mnist", "root": root, "scenario": "domain", "n_tasks": 20, "seed": 0, "train_limit": None,
            "test_limit": None}
    return rotated_stream(**{**args, **kw})


def test_rotated_angles_follow_gem_and_the_seed(root):
    stream = rotated(root)
    angles = [t.train.transform.degrees for t in stream.tasks]
    assert all(9 * t <= a < 9 * (t + 1) for t, a in enumerate(angles))
    assert angles == [t.train.transform.degrees for t in rotated(root).tasks]
    assert angles != [t.train.transform.degrees for t in rotated(root, seed=1).tasks]
    assert stream.image_shape == (1, 4, 4)
    x, y = stream.tasks[3].test.gather(torch.arange(10))
    assert x.shape == (10, 16) and x.dtype == torch.float32 and torch.equal(y, stream.tasks[0].test.targets()[:10])
    with pytest.raises(ConfigError, match="stream.interpolation=cubic: unknown choice"):
        rotated(root, interpolation="cubic")


def test_a_1000_task_rotated_stream_stores_one_copy_of_the_data(tmp_path):
    fake_dataset(tmp_path, n_train=300, n_test=100, side=28)
    small, large = rotated(str(tmp_path), n_tasks=10), rotated(str(tmp_path), n_tasks=1000)
    assert (stored_bytes(large) - stored_bytes(small)) / 990 == 2 * 80  # two label maps; the angle is a float
