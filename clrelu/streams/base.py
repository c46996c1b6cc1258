"""Tasks, streams, and the label mapping of the three scenarios (task, domain, class)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from clrelu import checks

SCENARIOS = ("task", "domain", "class")
# the class scenario's output units that are active (the others get a logit of -inf): those of the classes seen so far
# in training and evaluation, every unit in both, or the seen ones in training and every unit in evaluation
ACTIVE_CLASSES = ("seen", "all", "seen_in_training")


@dataclass
class Task:
    """One task: float inputs in rows, and targets already mapped for the stream's scenario."""

    id: int
    classes: tuple[str, ...]  # the names of the task's classes, in the order of their local labels
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@dataclass(frozen=True)
class HeadLayout:
    """What the output layer of a model must look like for a stream."""

    scenario: str
    n_tasks: int
    classes_per_task: int
    active_classes: str = "seen"  # one of ACTIVE_CLASSES; only the class scenario uses it

    @property
    def n_heads(self) -> int:
        return self.n_tasks if self.scenario == "task" else 1

    @property
    def head_width(self) -> int:
        return self.classes_per_task * (self.n_tasks if self.scenario == "class" else 1)

    def units_of(self, task_id: int) -> range:
        """The output units of task `task_id` in the shared head of the class scenario."""
        start = task_id * self.classes_per_task
        return range(start, start + self.classes_per_task)


@dataclass
class Stream:
    """A list of tasks learned one after another, and its scenario."""

    tasks: list[Task]
    scenario: str
    classes_per_task: int
    active_classes: str = "seen"

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def in_features(self) -> int:
        return self.tasks[0].x_train.shape[1]

    @property
    def layout(self) -> HeadLayout:
        return HeadLayout(self.scenario, self.n_tasks, self.classes_per_task, self.active_classes)

    def to(self, device: torch.device) -> "Stream":
        for task in self.tasks:
            for name in ("x_train", "y_train", "x_test", "y_test"):
                setattr(task, name, getattr(task, name).to(device))
        return self


@dataclass
class TaskData:
    """A task as a stream builder makes it: inputs and local labels 0..c-1."""

    classes: tuple[str, ...]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def as_float(x: torch.Tensor) -> torch.Tensor:
    """Images as float32 in [0, 1]; inputs that are float already pass through."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


def limit(x: torch.Tensor, y: torch.Tensor, n: int | None, generator: torch.Generator):
    """At most `n` samples, drawn at random without replacement, in their original order."""
    if n is None or n >= len(x):
        return x, y
    keep = torch.randperm(len(x), generator=generator)[:n].sort().values
    return x[keep], y[keep]


def make_stream(parts: list[TaskData], scenario: str, active_classes: str = "seen") -> Stream:
    """Number the tasks and map local labels to the targets of `scenario` (`active_classes`: see ACTIVE_CLASSES).

    task and domain keep the local label (0..c-1); class shifts task t's labels by t*c so that
    one shared head has a unit for every class of the stream.
    """
    checks.choice("stream.scenario", scenario, SCENARIOS)
    checks.choice("stream.active_classes", active_classes, ACTIVE_CLASSES)
    c = len(parts[0].classes)
    if any(len(p.classes) != c for p in parts):
        raise ValueError("every task of a stream must have the same number of classes")
    tasks = []
    for t, part in enumerate(parts):
        shift = t * c if scenario == "class" else 0
        tasks.append(Task(t, part.classes, as_float(part.x_train), part.y_train + shift,
                          as_float(part.x_test), part.y_test + shift))
    return Stream(tasks, scenario, c, active_classes)
