"""The loop over tasks: train each phase of the regime, evaluate as scheduled, record and write."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from clrelu.errors import RunError
from clrelu.measure.diagnostics import ActivationMonitor
from clrelu.measure.plasticity import PlasticityProbe, probe_indices
from clrelu.models.base import ContinualModel
from clrelu.rundir import schema
from clrelu.rundir.checkpoint import CHECKPOINT, global_rng, restore_global_rng, save_checkpoint
from clrelu.rundir.record import Evaluation, RunRecord
from clrelu.strategies.base import Strategy
from clrelu.streams.base import Stream, Task
from clrelu.training.memory import TRIM_EVERY, release_freed_memory
from clrelu.training.progress import Progress
from clrelu.training.schedule import EvalSchedule

log = logging.getLogger(__name__)

REGIMES = ("sequential", "joint", "cumulative")
LOGGED_TASKS = 20  # an evaluation of more tasks is logged as its mean, not task by task


@dataclass(frozen=True)
class Phase:
    """One stretch of training: the tasks it introduces, the tasks whose data it trains on, its row of R."""

    new_tasks: tuple[int, ...]
    train_tasks: tuple[int, ...]
    row: int


def phases(regime: str, n_tasks: int) -> list[Phase]:
    """sequential: task i alone; cumulative: tasks 0..i; joint: all tasks at once (row T-1 of R)."""
    if regime == "joint":
        everything = tuple(range(n_tasks))
        return [Phase(everything, everything, n_tasks - 1)]
    if regime == "cumulative":
        return [Phase((i,), tuple(range(i + 1)), i) for i in range(n_tasks)]
    return [Phase((i,), (i,), i) for i in range(n_tasks)]


class PhaseData:
    """The training samples of a phase: one task's split, or several tasks' splits end to end (joint, cumulative).

    `gather(idx)` returns the samples at positions `idx` of that concatenation, in batch order, with
    their task: an int for one task, else a tensor of task ids, one per sample.
    """

    def __init__(self, tasks: list[Task]):
        self.tasks = tasks
        sizes = torch.tensor([len(t.train) for t in tasks])
        self.ends = sizes.cumsum(0)
        self.starts = self.ends - sizes

    def __len__(self) -> int:
        return int(self.ends[-1])

    def gather(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int | torch.Tensor]:
        if len(self.tasks) == 1:
            return *self.tasks[0].train.gather(idx), self.tasks[0].id
        which = torch.bucketize(idx, self.ends, right=True)  # the position in `tasks` of each sample's task
        x = y = None
        for k in which.unique().tolist():
            at = (which == k).nonzero().squeeze(1)
            xk, yk = self.tasks[k].train.gather(idx[at] - self.starts[k])
            if x is None:
                x, y = xk.new_empty(len(idx), xk.shape[1]), yk.new_empty(len(idx))
            at = at.to(x.device)
            x[at], y[at] = xk, yk
        ids = torch.tensor([t.id for t in self.tasks])[which].to(x.device)
        return x, y, ids


class OnlineTally:
    """A phase's online accuracy and final training loss, counted step by step from the training pass.

    Online accuracy (Dohare et al. 2024): the accuracy of the predictions the training forward pass
    makes on each batch before that batch's update, over the phase's own samples of its new tasks
    (not the ones a strategy adds after them, nor, in the cumulative regime, the earlier tasks'
    samples): correct predictions / predictions over the phase. Final loss: the mean of the training
    loss (the strategy's loss_and_logits, the model's own by default; without any strategy penalty, on the
    batch as trained) over the last tenth of the steps.
    """

    def __init__(self, phase: Phase, steps: int):
        self.new = torch.tensor(phase.new_tasks)
        self.first_final = steps - max(1, steps // 10)  # the first step of the last tenth
        self.correct, self.predicted, self.loss_sum, self.loss_steps = 0, 0, 0.0, 0  # correct: a tensor once counted

    @torch.no_grad()
    def count(self, step: int, logits: torch.Tensor, loss: torch.Tensor, y: torch.Tensor, task) -> None:
        """One step: `logits` of the batch as trained, whose first len(y) rows are the samples drawn (`y`, `task`)."""
        hits = logits[:len(y)].argmax(1) == y
        if torch.is_tensor(task):  # samples of several tasks (cumulative regime, a strategy's memory)
            hits = hits[torch.isin(task, self.new.to(task.device))]
        self.correct = self.correct + hits.sum()
        self.predicted += len(hits)
        if step >= self.first_final:
            self.loss_sum += loss.item()
            self.loss_steps += 1

    def result(self) -> tuple[float, float]:
        """(online accuracy, final loss); NaN for a phase without steps."""
        if not self.loss_steps:
            return math.nan, math.nan
        return float(self.correct) / max(self.predicted, 1), self.loss_sum / self.loss_steps


@dataclass(frozen=True)
class TrainSettings:
    regime: str = "sequential"
    epochs: int = 1
    iters: int | None = None  # when set, the number of steps per phase instead of `epochs`
    batch_size: int = 128
    eval_batch_size: int = 10000
    reset_optimizer: bool = True  # false: one optimizer for the whole stream, its state kept across tasks


class Trainer:
    """Trains `model` on `stream` phase after phase, evaluating the tasks `schedule` names after each."""

    def __init__(self, model: ContinualModel, strategy: Strategy, stream: Stream, make_optimizer: Callable,
                 settings: TrainSettings, record: RunRecord, generator: torch.Generator,
                 monitor: ActivationMonitor | None = None, schedule: EvalSchedule = EvalSchedule(),
                 probe: PlasticityProbe | None = None):
        self.model = model
        self.monitor = monitor  # diagnostics gathered during evaluation, or None
        self.schedule = schedule
        self.probe = probe  # plasticity measures after every task, or None
        self.strategy = strategy
        self.stream = stream
        self.make_optimizer = make_optimizer
        self.settings = settings
        self.record = record
        self.generator = generator  # the order of training batches
        self.optimizer: torch.optim.Optimizer | None = None
        self.optimizer_groups: list[list[str]] = []  # the parameter names of each group of the optimizer
        self.progress = Progress(0, interactive=False)  # of the whole run, made by `run`
        self.evaluated_since_trim = 0  # tasks evaluated since freed memory was last given back, over evaluations

    def run(self, resume_from: dict | None = None) -> None:
        """Evaluate at initialisation, then train and evaluate phase after phase, writing after each.

        After every phase the training state goes to `checkpoint.pt`; `resume_from` (such a state)
        continues a run from its last finished phase, ending exactly as an uninterrupted run would.
        """
        all_phases = phases(self.settings.regime, self.stream.n_tasks)
        if resume_from is None:
            self._evaluate_into_record(-1, self.schedule.initial(self.stream.n_tasks))
            start = 0
        else:
            start = self._restore(resume_from, all_phases)
        steps = self.phase_steps()
        with Progress(sum(steps), done=sum(steps[:start])) as self.progress:
            self._run_phases(all_phases, start)

    def _run_phases(self, all_phases: list[Phase], start: int) -> None:
        for index in range(start, len(all_phases)):
            phase = all_phases[index]
            started = time.perf_counter()
            for t in phase.new_tasks:
                self.model.begin_task(t)
                self.strategy.before_task(self.model, t)
            online_accuracy, final_loss = self._train(phase)
            self.record.train_seconds += time.perf_counter() - started
            for t in phase.new_tasks:  # the network as training left it, before any end-of-task action (ReDo's
                self._measure_plasticity(t)  # recycling, PackNet's pruning)
            started = time.perf_counter()
            for t in phase.new_tasks:
                train = self.stream.tasks[t].train
                self.model.end_task(t, train)
                self.strategy.after_task(self.model, t, train)
            self.record.train_seconds += time.perf_counter() - started
            self.record.tasks_done += len(phase.new_tasks)
            self.record.add_online(phase.row, online_accuracy, final_loss)
            self.record.add_model_stats(phase.row, {**self.model.stats(), **self.strategy.stats()})
            self.record.add_strategy_actions(self.strategy.actions())
            tasks = self.schedule.after(phase.row, phase.new_tasks, self.stream.n_tasks)
            self._evaluate_into_record(phase.row, tasks, phases_done=index + 1)

    def _restore(self, state: dict, all_phases: list[Phase]) -> int:
        """Bring model, strategy, optimizer, record and random generators back to a checkpoint; return the next
        phase. Every part is checked against what this run's model and strategy hold before the record cuts any
        file back (a damaged checkpoint changes nothing on disk)."""
        path = self.record.folder / CHECKPOINT
        done = schema.integer(path, "phases_done", state["phases_done"], 0, len(all_phases))
        for phase in all_phases[:done]:
            for t in phase.new_tasks:
                self.model.begin_task(t)  # rebuild what the finished tasks created (heads, columns)
        schema.tensors_like(path, "model", state["model"], self.model.state_dict())
        self.model.load_state_dict(state["model"])
        schema.mapping(path, "strategy", state["strategy"], self.strategy.state_dict().keys())
        schema.parameter_tensors(path, "strategy", state["strategy"], dict(self.model.named_parameters()))
        schema.restored(path, "strategy", self.strategy.load_state_dict, state["strategy"])
        if state.get("optimizer") is not None:
            self._restore_optimizer(path, state["optimizer"])
        self.record.restore(state["record"], path)
        self.generator.set_state(state["rng"]["batches"])
        restore_global_rng(state["rng"])
        log.info("resuming after %d of %d tasks", self.record.tasks_done, self.stream.n_tasks)
        return done

    def _checkpoint(self, phases_done: int) -> dict:
        optimizer = None  # a rebuilt optimizer starts afresh; a kept one goes into the checkpoint
        if not self.settings.reset_optimizer and self.optimizer is not None:
            optimizer = {"state": self.optimizer.state_dict(), "groups": self.optimizer_groups}
        return {"phases_done": phases_done, "model": self.model.state_dict(), "strategy": self.strategy.state_dict(),
                "optimizer": optimizer, "record": self.record.state(),
                "rng": {"batches": self.generator.get_state(), **global_rng()}}

    def _optimizer(self) -> torch.optim.Optimizer:
        """A new optimizer over the parameters that learn (`reset_optimizer`), handed to the strategy, or the
        stream's one, given the parameters that began to learn since (a progressive net's new column) as a new
        group with the hyperparameters of its first."""
        learning = {name: p for name, p in self.model.named_parameters() if p.requires_grad}
        if self.settings.reset_optimizer or self.optimizer is None:
            self.optimizer = self.strategy.adapt_optimizer(self.make_optimizer(list(learning.values())))
            self.optimizer_groups = [list(learning)]
            self.strategy.use_optimizer(self.optimizer)
        else:
            known = {name for group in self.optimizer_groups for name in group}
            new = [name for name in learning if name not in known]
            if new:
                self._add_group([learning[name] for name in new])
                self.optimizer_groups.append(new)
        return self.optimizer

    def _add_group(self, params: list[torch.nn.Parameter]) -> None:
        first = {key: value for key, value in self.optimizer.param_groups[0].items() if key != "params"}
        self.optimizer.add_param_group({"params": params, **first})

    def _restore_optimizer(self, path, saved: dict) -> None:
        """Rebuild the stream's optimizer over the same groups of parameters, hand it to the strategy (as when it
        was first built), then load its state and hyperparameters."""
        params = dict(self.model.named_parameters())
        groups = saved["groups"]
        named = [name for group in groups for name in group]
        unknown = [name for name in named if name not in params]
        if unknown or len(set(named)) != len(named):
            what = f"names {schema.shown(unknown[0])}, not a parameter of the model" if unknown else "repeats a name"
            raise schema.DamagedCheckpoint(path, f"optimizer['groups'] {what}")
        schema.optimizer_state(path, saved["state"], [params[name] for name in named])
        self.optimizer = self.strategy.adapt_optimizer(self.make_optimizer([params[name] for name in groups[0]]))
        for group in groups[1:]:
            self._add_group([params[name] for name in group])
        self.strategy.use_optimizer(self.optimizer)
        schema.restored(path, "optimizer", self.optimizer.load_state_dict, saved["state"])
        self.optimizer_groups = groups

    def steps(self, phase: Phase) -> int:
        """The optimizer steps of a phase on the stream's data: `trainer.iters`, else `trainer.epochs` passes over
        it (a strategy's `phase_data` can change them when the phase trains)."""
        n = sum(len(self.stream.tasks[t].train) for t in phase.train_tasks)
        return self.settings.iters or self.settings.epochs * math.ceil(n / self.settings.batch_size)

    def phase_steps(self) -> list[int]:
        """The optimizer steps of every phase of the run, in order."""
        return [self.steps(phase) for phase in phases(self.settings.regime, self.stream.n_tasks)]

    def _train(self, phase: Phase) -> tuple[float, float]:
        """Train on the phase's data; return its online accuracy and final training loss (see OnlineTally)."""
        data = self.strategy.phase_data(PhaseData([self.stream.tasks[t] for t in phase.train_tasks]))
        n, size = (0, 1) if data is None else (len(data), self.settings.batch_size)
        steps = 0 if data is None else self.settings.iters or self.settings.epochs * math.ceil(n / size)
        tally = OnlineTally(phase, steps)
        optimizer = self._optimizer()
        self.model.train()
        name = f"task {phase.row}" if len(phase.new_tasks) == 1 else "joint"
        progress = self.progress
        progress.task(name)
        step = 0
        while step < steps:
            order = torch.randperm(n, generator=self.generator)
            for start in range(0, n, size):
                if step == steps:
                    break
                self.strategy.before_step(self.model, start / n)
                x, y, task = data.gather(order[start:start + size])
                xb, yb, tb = self.strategy.batch(x, y, task)
                if self.stream.augment is not None:  # after replay mixed in its samples: they are augmented too
                    xb = self.stream.augment(xb, self.generator)
                loss, logits = self.strategy.loss_and_logits(self.model, xb, yb, tb)
                tally.count(step, logits, loss, y, task)
                penalty = self.strategy.penalty(self.model, xb, tb)
                if penalty is not None:
                    loss = loss + penalty
                value = loss.item()
                if not math.isfinite(value):
                    raise RunError(f"{name}, step {step}: the loss became {value} (a smaller optimizer.lr or a "
                                   f"weaker strategy penalty usually avoids this); the CSVs of the finished "
                                   f"tasks are in {self.record.folder}")
                optimizer.zero_grad()
                loss.backward()
                self.strategy.after_backward(self.model)
                optimizer.step()
                self.model.after_step()
                self.strategy.after_step(self.model)
                step += 1
                progress.step()
                if step % 50 == 0:
                    progress.loss(value)
        return tally.result()

    @torch.inference_mode()
    def evaluate(self, tasks: list[int] | None = None, focus: int = 0) -> list[Evaluation]:
        """Accuracy and mean loss on the test sets of `tasks` (default: all); NaN for tasks the model cannot answer
        yet.

        With a monitor, the same forward passes feed the diagnostics (`focus`: the task just learned).
        """
        self.model.eval()
        results = []
        size = self.settings.eval_batch_size
        if self.monitor:
            self.monitor.begin_pass(focus)
        for task in self.stream.tasks if tasks is None else [self.stream.tasks[t] for t in tasks]:
            if self.evaluated_since_trim == TRIM_EVERY:
                release_freed_memory()
                self.evaluated_since_trim = 0
            self.evaluated_since_trim += 1
            n = len(task.test)
            if not self.model.knows(task.id):
                results.append(Evaluation(task.id, float("nan"), float("nan"), n))
                continue
            if self.monitor:
                self.monitor.begin_task(task.id)
            correct = torch.zeros((), dtype=torch.long)
            loss = torch.zeros(())
            for x, target in task.test.chunks(size):
                logits = self.strategy.eval_logits(self.model, x, task.id)
                if logits is None:
                    logits = self.model(x, task.id)
                loss += F.cross_entropy(logits, target, reduction="sum").cpu()
                correct += (logits.argmax(1) == target).sum().cpu()
            results.append(Evaluation(task.id, correct.item() / n, loss.item() / n, n))
            if self.monitor:
                self.monitor.end_task(n)
        if self.monitor:
            self.monitor.end_pass()
        return results

    def _measure_plasticity(self, task_id: int) -> None:
        """The probe's measures of every hidden layer on task `task_id`'s fixed probe samples (counted as evaluation
        time)."""
        if self.probe is None:
            return
        started = time.perf_counter()
        train = self.stream.tasks[task_id].train
        x, _ = train.gather(probe_indices(len(train), self.probe.probe_size))
        self.record.add_plasticity(self.probe.measure(x, task_id))
        self.record.eval_seconds += time.perf_counter() - started

    def _evaluate_into_record(self, after_task: int, tasks: list[int], phases_done: int = 0) -> None:
        """Evaluate `tasks` (none: a phase the schedule skips), record, write the files, then checkpoint."""
        evaluations = []
        if tasks:
            started = time.perf_counter()
            evaluations = self.evaluate(tasks, focus=max(after_task, 0))
            if after_task < 0:
                self.record.eval_seconds_initial += time.perf_counter() - started
            else:
                self.record.eval_seconds += time.perf_counter() - started
            if self.monitor:
                self.record.add_diagnostics(after_task, self.monitor.activations, self.monitor.overlap)
        self.record.add(after_task, evaluations, self.model.n_params())
        # the growing files, then the checkpoint that can cut them back, then the summary: a run killed at any
        # write is resumable from its checkpoint, or has none and no summary with a task done (then it is
        # recognisably empty of results, and a new run may take its folder: clrelu/rundir/contents.py)
        self.record.append()
        save_checkpoint(self.record.folder, self._checkpoint(phases_done))
        self.record.write_summary()
        label = "initial" if after_task < 0 else f"after task {after_task}"
        if not evaluations:
            return  # a task the schedule does not evaluate prints nothing (progress says how far the run is)
        if len(evaluations) <= LOGGED_TASKS:
            accuracies = " ".join("  -  " if math.isnan(e.accuracy) else f"{e.accuracy:.3f}" for e in evaluations)
            log.info("%-13s accuracy per task: %s", label, accuracies)
        else:
            known = [e.accuracy for e in evaluations if not math.isnan(e.accuracy)]
            mean = sum(known) / len(known) if known else math.nan
            log.info("%-13s mean accuracy over %d tasks: %.3f", label, len(known), mean)
