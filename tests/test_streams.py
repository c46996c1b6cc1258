"""Streams: task counts, class partitions, seeded permutations, scenario targets and sample limits."""

import pytest
import torch

from clrelu.errors import ConfigError
from clrelu.streams.permuted import permuted_stream
from clrelu.streams.split import split_stream
from clrelu.streams.synthetic import synthetic_stream
from conftest import fake_dataset


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
        assert len(task.x_train) == 80 and len(task.x_test) == 40  # 400 / 10 classes x 2


def test_split_class_order_and_local_labels(root):
    stream = split(root, class_order=[9, 3, 0, 1, 2, 4, 5, 6, 7, 8])
    first = stream.tasks[0]
    assert first.classes == ("9", "3")
    # the fake images are bright in the pixel of their digit: label 0 is digit 9, label 1 is digit 3
    assert (first.x_train[first.y_train == 0][:, 9] == 1.0).all()
    assert (first.x_train[first.y_train == 1][:, 3] == 1.0).all()


def test_split_order_is_shuffled_from_the_seed(root):
    a, b, c = split(root, seed=1), split(root, seed=1), split(root, seed=2)
    assert [t.classes for t in a.tasks] == [t.classes for t in b.tasks]
    assert [t.classes for t in a.tasks] != [t.classes for t in c.tasks]


def test_scenario_targets(root):
    order = list(range(10))
    for scenario, expected in (("task", [0, 1]), ("domain", [0, 1]), ("class", [6, 7])):
        stream = split(root, scenario=scenario, class_order=order)
        assert sorted(stream.tasks[3].y_train.unique().tolist()) == expected, scenario
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
        assert len(task.x_train) == 25 and len(task.x_test) == 7
        assert set(task.y_train.tolist()) == {0, 1}


def permuted(root, **kw):
    args = dict(dataset="mnist", root=root, scenario="domain", n_tasks=3, seed=0, train_limit=None, test_limit=None)
    return permuted_stream(**{**args, **kw})


def test_permutations_are_fixed_by_the_seed(root):
    a, b, c = permuted(root), permuted(root), permuted(root, seed=1)
    for ta, tb in zip(a.tasks, b.tasks):
        assert torch.equal(ta.x_train, tb.x_train)
    assert not torch.equal(a.tasks[0].x_train, c.tasks[0].x_train)
    assert not torch.equal(a.tasks[0].x_train, a.tasks[1].x_train)


def test_permuted_tasks_hold_the_same_pixels_rearranged(root):
    stream = permuted(root)
    t0, t1 = stream.tasks[:2]
    assert torch.equal(t0.x_train.sort(dim=1).values, t1.x_train.sort(dim=1).values)
    assert torch.equal(t0.y_train, t1.y_train)
    assert len(t0.classes) == 10


def test_permuted_class_scenario_gives_each_task_its_own_ten_units(root):
    stream = permuted(root, scenario="class")
    assert stream.layout.head_width == 30
    assert set(stream.tasks[2].y_train.tolist()) == set(range(20, 30))


def test_permuted_refuses_more_tasks_than_memory_holds(root, monkeypatch):
    import clrelu.streams.permuted as module
    monkeypatch.setattr(module, "_memory_bytes", lambda: 1_000_000)
    with pytest.raises(ConfigError, match=r"stream.n_tasks=50: the permuted copies need"):
        permuted(root, n_tasks=50)


def test_synthetic_is_deterministic_and_separable():
    args = dict(scenario="task", n_tasks=3, classes_per_task=2, n_features=8, train_per_class=50,
                test_per_class=20, noise=1.0, seed=0, train_limit=None, test_limit=None)
    a, b = synthetic_stream(**args), synthetic_stream(**args)
    assert a.n_tasks == 3 and a.in_features == 8
    assert torch.equal(a.tasks[2].x_test, b.tasks[2].x_test)
    assert len(a.tasks[0].x_train) == 100 and len(a.tasks[0].x_test) == 40
