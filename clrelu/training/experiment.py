"""Build the stream, model, optimizer and trainer of a composed config, and run them into a folder."""

from __future__ import annotations

import functools
import inspect
import logging
import random
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import threadpoolctl
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from clrelu import checks, machine
from clrelu.config import check_seeds, job_config
from clrelu.console import shown
from clrelu.errors import ClreluError, ConfigError, Interrupted
from clrelu.measure.diagnostics import ActivationMonitor
from clrelu.measure.plasticity import PlasticityProbe
from clrelu.rundir import files
from clrelu.rundir.checkpoint import CHECKPOINT, resumable_checkpoint, save_model
from clrelu.rundir.record import RunRecord, mark_summary
from clrelu.streams.base import SCENARIOS, Stream
from clrelu.streams.features import map_inputs
from clrelu.streams.validation import carve_validation, validation_fraction
from clrelu.training import stopping
from clrelu.training.footprint import check_fits, refuse_out_of_memory
from clrelu.training.schedule import EvalSchedule
from clrelu.training.trainer import REGIMES, Trainer, TrainSettings

log = logging.getLogger(__name__)


def factory(group: str, node: DictConfig) -> functools.partial:
    """The `_target_` of a config group with its config values bound, as a partial to call at run time.

    A config key the target does not take is refused by name here, before anything is built.
    """
    try:
        make = instantiate(node, _partial_=True, _convert_="all")
    except InstantiationException as exc:
        cause: BaseException = exc
        while cause.__cause__ is not None:  # the import error under Hydra's wrapping
            cause = cause.__cause__
        raise ConfigError(f"{group}._target_={node.get('_target_')}: cannot be imported "
                          f"({type(cause).__name__}: {str(cause).splitlines()[0]})") from None
    parameters = inspect.signature(make.func).parameters
    unknown = [k for k in make.keywords if k not in parameters]
    if unknown and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        known = [k for k in make.keywords if k in parameters]
        raise ConfigError(f"{group}.{unknown[0]}: not a key of this {group}; its keys are {', '.join(known)}")
    return make


def stream_factory(node: DictConfig) -> functools.partial:
    """The stream's builder with its config bound; `validation` is a key of the run, not of the builder."""
    config = OmegaConf.to_container(node, resolve=True)
    return factory("stream", OmegaConf.create({key: value for key, value in config.items() if key != "validation"}))


def build(make: functools.partial, group: str, **runtime):
    """Call a factory with the arguments only known at run time (input size, head layout, ...)."""
    try:
        inspect.signature(make.func).bind(*make.args, **make.keywords, **runtime)
    except TypeError as exc:
        raise ConfigError(f"{group}: {exc}") from None
    with refuse_out_of_memory(group):
        return make(**runtime)


def settings(cfg: DictConfig) -> TrainSettings:
    """The trainer's settings, each checked."""
    t = cfg.trainer
    return TrainSettings(
        regime=checks.choice("trainer.regime", t.regime, REGIMES),
        epochs=checks.integer("trainer.epochs", t.epochs, minimum=1),
        iters=None if t.iters is None else checks.integer("trainer.iters", t.iters, minimum=1),
        batch_size=checks.integer("trainer.batch_size", t.batch_size, minimum=1),
        eval_batch_size=checks.integer("trainer.eval_batch_size", t.eval_batch_size, minimum=1),
        reset_optimizer=checks.boolean("trainer.reset_optimizer", t.reset_optimizer),
    )


def optimizer_factory(node: DictConfig) -> functools.partial:
    """The optimizer to rebuild for every task, tried once on a dummy parameter so that torch's own
    checks of its values fail before training (this also pays torch's one-time optimizer import here,
    not in the first task's training time)."""
    checks.number("optimizer.lr", node.lr, above=0)
    checks.number("optimizer.weight_decay", node.get("weight_decay", 0.0), minimum=0)
    if "momentum" in node:
        checks.number("optimizer.momentum", node.momentum, minimum=0, below=1)
    make = factory("optimizer", node)
    try:
        make([torch.zeros(1, requires_grad=True)])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"optimizer: {exc}") from None
    return make


def checked_threads(value) -> int:
    """`threads`: 0 (torch's default) up to the machine's cores."""
    threads = checks.integer("threads", value, minimum=0)
    cores = machine.cores()
    if threads > cores:
        raise ConfigError(f"threads={threads}: this machine has {cores} cores; use at most {cores} (0: torch's "
                          "default)")
    return threads


_blas_threads = 0  # the threads numpy's BLAS was last given here (0: none yet)


def use_threads(threads: int) -> None:
    """Run torch on `threads` threads (0: keep torch's count) and numpy's BLAS, which the plasticity probe uses for
    its Gram matrices, on as many as torch: left alone it takes every core, whatever `threads` says."""
    global _blas_threads
    if threads:
        torch.set_num_threads(threads)
    wanted = torch.get_num_threads()
    if wanted != _blas_threads:
        threadpoolctl.threadpool_limits(wanted, user_api="blas")
        _blas_threads = wanted


def choose_device(name: str) -> torch.device:
    checks.choice("device", name, ("auto", "cpu", "cuda"))
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda: no CUDA device is available here; use device=cpu or device=auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return the generator that orders training batches."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def check_model_fits(names: Mapping[str, str], model_class, scenario: str, regime: str) -> None:
    """Refuse, before anything trains, a scenario, regime or strategy the model cannot serve, and a
    strategy with the joint regime."""
    model = names["model"]
    check_serves(f"model={model}", model_class, scenario, regime)
    if model_class.strategies is not None and names["strategy"] not in model_class.strategies:
        raise ConfigError(f"model={model} cannot use strategy={names['strategy']}: {model_class.strategies_reason}; "
                          f"it supports {', '.join(model_class.strategies)}")
    if regime == "joint" and names["strategy"] != "naive":
        raise ConfigError(f"strategy={names['strategy']} has nothing to protect with trainer.regime=joint, which "
                          "learns every task at once; use strategy=naive")


def check_serves(choice: str, served_by, scenario: str, regime: str) -> None:
    """Refuse a scenario or regime that a model or strategy class (`choice`: its config choice, as `model=pnn`) does
    not list in its `scenarios` and `regimes`."""
    if scenario not in served_by.scenarios:
        raise ConfigError(f"{choice} cannot serve stream.scenario={scenario}; "
                          f"it supports {', '.join(served_by.scenarios)}")
    if regime not in served_by.regimes:
        raise ConfigError(f"{choice} cannot train with trainer.regime={regime}; "
                          f"it supports {', '.join(served_by.regimes)}")


def check_strategy_fits(names: Mapping[str, str], strategy_class, scenario: str, regime: str) -> None:
    """Refuse, before anything is built, a scenario, regime or model the strategy does not serve (its class
    attributes `scenarios`, `regimes`, `models`)."""
    strategy = names["strategy"]
    check_serves(f"strategy={strategy}", strategy_class, scenario, regime)
    if strategy_class.models is not None and names["model"] not in strategy_class.models:
        raise ConfigError(f"strategy={strategy} cannot train model={names['model']}; "
                          f"it supports model={', '.join(strategy_class.models)}")


def diagnostics_monitor(node: DictConfig, model) -> ActivationMonitor | None:
    """The activation monitor the `diagnostics` config asks for, or None when it is off."""
    if not checks.boolean("diagnostics.enabled", node.enabled):
        return None
    return ActivationMonitor(model, node.zero_tolerance, node.unit_threshold)


def plasticity_probe(node: DictConfig, model) -> PlasticityProbe | None:
    """The plasticity probe the `plasticity` config asks for, or None when it is off."""
    if not checks.boolean("plasticity.enabled", node.enabled):
        return None
    return PlasticityProbe(model, node.probe_size, node.tau, node.delta)


def image_facts(make: functools.partial, stream: Stream) -> dict:
    """What a model or strategy learns about the stream's images when its constructor names it: `image_shape`
    (channels, height, width; None when the inputs are not images) and `image_normalisation` (the per-channel mean
    and std of the rows, None for [0, 1] pixels)."""
    parameters = inspect.signature(make.func).parameters
    facts = {"image_shape": stream.image_shape, "image_normalisation": stream.normalisation}
    return {key: value for key, value in facts.items() if key in parameters}


def map_fixed_inputs(model, stream: Stream, chunk: int) -> None:
    """Compute once per sample what the model's fixed input map (a frozen pretrained trunk) makes of it, when the
    stream allows (clrelu/streams/features.py); the model then reads those features."""
    module = model.fixed_input_map()
    if module is None:
        return
    started = time.perf_counter()
    if map_inputs(stream, module, chunk):
        model.read_mapped_inputs()
        log.info("features of the frozen trunk computed once for every sample (%.1f s)", time.perf_counter() - started)
    else:
        log.info("the frozen trunk runs on every batch: this stream's tasks transform or augment their samples")


def mark_interrupted(folder: Path, exc: BaseException) -> None:
    """Record in the run's summary.csv (when it has one) that a signal stopped it."""
    with stopping.signals_held():
        try:
            mark_summary(folder, "interrupted", stopping.reason(exc))
        except ClreluError as also:
            log.warning("could not mark the run interrupted: %s", also)


def run_experiment(cfg: DictConfig, folder: Path, names: Mapping[str, str]) -> RunRecord:
    """Run the experiment `cfg` describes, writing its CSV files into `folder`.

    `names` holds the chosen option of each config group (model, stream, optimizer, strategy), as
    Hydra reports them, for the summary and the error messages.
    """
    seed = check_seeds(cfg)
    files.check_tree(folder)  # no link or special file where the run will read and write (the door refuses them too)
    resume = checks.boolean("resume", cfg.resume)
    config = job_config(cfg)
    checkpoint = resumable_checkpoint(folder, config, where="resume=true") if resume else None
    threads = checked_threads(cfg.threads)
    device = choose_device(cfg.device)
    train_settings = settings(cfg)
    schedule = EvalSchedule.checked(cfg.eval.every, cfg.eval.tasks)
    scenario = checks.choice("stream.scenario", cfg.stream.scenario, SCENARIOS)
    make_optimizer = optimizer_factory(cfg.optimizer)
    validation = validation_fraction(cfg.stream.get("validation", 0.0))
    make_stream, make_model = stream_factory(cfg.stream), factory("model", cfg.model)
    make_strategy = factory("strategy", cfg.strategy)
    tracker = build(factory("logger", cfg.logger), "logger")  # an extra that is missing is refused here, in one line
    check_model_fits(names, make_model.func, scenario, train_settings.regime)
    check_strategy_fits(names, make_strategy.func, scenario, train_settings.regime)
    check_fits(cfg)
    use_threads(threads)

    generator = seed_everything(seed)
    stream = build(make_stream, "stream")
    if validation:
        stream = carve_validation(stream, validation, checks.seed("stream.seed", cfg.stream.get("seed", seed)))
    stream = stream.to(device)
    model = build(make_model, "model", in_features=stream.in_features, layout=stream.layout,
                  **image_facts(make_model, stream)).to(device)
    strategy = build(make_strategy, "strategy", layout=stream.layout, **image_facts(make_strategy, stream))
    problem = strategy.model_problem(model)
    if problem:
        raise ConfigError(f"strategy={names['strategy']} cannot train model={names['model']}: {problem}")
    meta = {"model": names["model"], "stream": names["stream"], "scenario": scenario, "seed": seed,
            "regime": train_settings.regime, "optimizer": names["optimizer"], "strategy": names["strategy"],
            "evaluated_on": "validation" if validation else "test"}
    monitor = diagnostics_monitor(cfg.diagnostics, model)
    probe = plasticity_probe(cfg.plasticity, model)
    map_fixed_inputs(model, stream, train_settings.eval_batch_size)  # last: it can take minutes, and config is checked
    files.make_folder(folder)
    record = RunRecord(folder, stream.n_tasks, meta, diagnostics=monitor is not None, config=config)
    record.tracker = tracker
    start_params = model.n_params()  # none for a model that creates them task by task (a progressive net's columns)
    log.info("%s with %s on %s (%d tasks, %s scenario, %s regime), %s, writing to %s", names["model"],
             names["strategy"], names["stream"], stream.n_tasks, scenario, train_settings.regime,
             f"{start_params} parameters" if start_params else "parameters created with each task", shown(folder))
    trainer = Trainer(model, strategy, stream, make_optimizer, train_settings, record, generator, monitor, schedule,
                      probe)
    problem = strategy.schedule_problem(model, trainer.phase_steps())
    if problem:
        log.warning("strategy=%s cannot act in this run: %s", names["strategy"], problem)
    if resume:
        files.remove_temporaries(folder)  # of writes a kill cut short
    try:
        with stopping.signals_raise():
            trainer.run(resume_from=checkpoint)
            save_model(model, folder / "model.pt")
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, Interrupted)):  # a signal: the summary on disk says so
            mark_interrupted(folder, exc)
        elif isinstance(exc, Exception) and record.has_results():  # a record restored or measured: keep it, marked
            record.status = "failed"                                  # failed (never overwrite with less)
            record.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            try:
                record.write()
            except ClreluError as also:  # the disk that was full still is
                log.warning("could not mark the run failed: %s", also)
        tracker.finish(record)  # a signal too: the tracker's run ends with the run
        if isinstance(exc, Interrupted):
            where = f"{shown(folder)}: {exc} after {record.tasks_done} of {stream.n_tasks} tasks"
            raise Interrupted(exc.signum, f"{where}; continue it with resume=true") from None
        raise
    # finished: the summary says so first, then the checkpoint goes. A kill in between leaves a finished summary
    # beside a checkpoint, which every reader takes as finished (the summary decides; nothing resumes it). Signals
    # wait until both are done.
    with stopping.signals_held():
        record.status = "finished"
        record.write()
        files.remove(folder, CHECKPOINT)
        files.remove_temporaries(folder)
    tracker.finish(record)
    s = record.summary()
    grown = f"; {record.n_params} parameters at the end" if record.n_params != start_params else ""
    log.info("ACC %.4f  LA %.4f  forgetting %.4f  BWT %.4f  FWT %.4f  (train %.1f s, eval %.1f s)%s",
             s["avg_accuracy"], s["learning_accuracy"], s["avg_forgetting"], s["bwt"], s["fwt"],
             s["train_seconds"], s["eval_seconds"] + s["eval_seconds_initial"], grown)
    return record
