"""Before Hydra writes anything: compose the config `clrelu run` was given (with Hydra's public compose API and
the same overrides), work out every path Hydra would write, and check them all.

A single run: its folder (hydra.run.dir) is checked and locked here. A sweep: its folder (hydra.sweep.dir) is
checked and locked for the whole sweep; with Hydra's basic sweeper, whose jobs are known in advance (the
cartesian product of the overrides), every job's folder is computed, the folders must be distinct, and each
is checked as its job will check it. Other sweepers (Optuna, ...) choose their jobs as they go: each job
then checks and locks its own folder when it starts (clrelu/launch/job.py), before anything is written
there. The folders computed here are pinned (`hydra.run.dir=...`, `hydra.sweep.dir=...`), so that Hydra
uses exactly the folders that were checked, whatever `${now:...}` says a moment later.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from clrelu.config import check_known_keys, check_seeds, config_dir
from clrelu.errors import ConfigError
from clrelu.launch.arguments import check_option_names, loader
from clrelu.rundir import contents as runfolder
from clrelu.rundir import files
from clrelu.rundir.csvfiles import NUMERIC_COLUMNS
from clrelu.rundir.guard import SKIP, Claim, check_sweep_folder, claim_run_folder, decide_job
from clrelu.rundir.lock import FolderLock, check_free, mark_sweep_process

OBJECTIVES = ("avg_accuracy", "learning_accuracy", "avg_forgetting", "bwt", "fwt", "online_first_tenth",
              "online_last_tenth")


@dataclass
class Plan:
    """What the checks decided: the overrides that pin the checked folders, and the hold on them."""

    pins: list[str] = field(default_factory=list)
    claim: Claim | None = None  # a single run's folder, locked
    sweep_lock: FolderLock | None = None  # a sweep's folder, locked for the whole sweep
    skipped: int = 0  # jobs of a basic sweep that will skip their finished run
    jobs: int = 0  # jobs of a basic sweep (0: not known in advance)

    def release(self) -> None:
        if self.claim is not None:
            self.claim.release()
        if self.sweep_lock is not None:
            self.sweep_lock.release()


def quoted(text: str) -> str:
    """`text` as a quoted value of Hydra's override grammar (and literal for OmegaConf: no interpolation)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("${", "\\${") + "'"


def compose(overrides: list[str], multirun: bool) -> DictConfig:
    """The config Hydra will compose for `clrelu run [-m] <overrides>` (inside `hydra.initialize_config_dir`), with
    hydra.mode set as Hydra decides it (-m, or `hydra.mode=MULTIRUN` in the overrides or the config) and its hydra
    node resolvable (`${hydra:...}`)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    cfg = loader().load_configuration("config", list(overrides), run_mode=RunMode.MULTIRUN,
                                      validate_sweep_overrides=False)
    mode = RunMode.MULTIRUN if multirun or cfg.hydra.mode == RunMode.MULTIRUN else RunMode.RUN
    if mode == RunMode.RUN and any(o.is_sweep_override() for o in OverridesParser.create().parse_overrides(overrides)):
        loader().load_configuration("config", list(overrides), run_mode=mode)  # raises Hydra's error for it
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = mode
    HydraConfig.instance().set_config(cfg)
    return cfg


def check_job_settings(cfg: DictConfig, overrides: list[str] | None) -> None:
    """What can be refused from a job's composed config alone, before anything is written: keys the YAML configs
    do not define, seeds out of range (both skipped for a sweep whose jobs are not known yet: `overrides` None),
    an objective that is not a summary metric, and Hydra writing the .hydra files itself."""
    if overrides is not None:
        check_known_keys(cfg, overrides, loader(), "config")
        check_seeds(cfg)
    objective = cfg.get("objective")
    if objective not in OBJECTIVES or objective not in NUMERIC_COLUMNS:
        raise ConfigError(f"objective={objective}: unknown choice; valid choices are {', '.join(OBJECTIVES)}")
    if cfg.hydra.output_subdir is not None:
        raise ConfigError(f"hydra.output_subdir={cfg.hydra.output_subdir}: must stay null; clrelu writes a run's "
                          ".hydra/ files itself, into the run folder, once it has checked and locked it")


def log_files(cfg: DictConfig, output_dir: Path) -> Iterator[tuple[str, Path]]:
    """(key, path) of every file a logging handler of the job (hydra.job_logging) or of the sweep
    (hydra.hydra_logging) would write, with hydra.runtime.output_dir set to `output_dir`."""
    with read_write(cfg.hydra.runtime), open_dict(cfg.hydra.runtime):
        cfg.hydra.runtime.output_dir = str(output_dir.absolute())
    for node in ("job_logging", "hydra_logging"):
        handlers = OmegaConf.select(cfg, f"hydra.{node}.handlers")
        for name in handlers or {}:
            filename = OmegaConf.select(cfg, f"hydra.{node}.handlers.{name}.filename")
            if filename is not None:
                yield f"hydra.{node}.handlers.{name}.filename", Path(str(filename))


def check_log_files(cfg: DictConfig, folder: Path) -> None:
    """Every log file Hydra would open lies directly in the run's `folder` (or a subfolder of it)."""
    inside = os.path.abspath(folder)
    for key, path in log_files(cfg, folder):
        written = os.path.abspath(path)
        if os.path.commonpath([inside, written]) != inside or written == inside:
            raise ConfigError(f"{key}={path}: a run's log file must lie inside its folder {folder}; clrelu writes "
                              "nowhere else")


def check_launcher(launcher: DictConfig) -> None:
    if "joblib" in str(launcher.get("_target_", "")):
        n_jobs = launcher.get("n_jobs")
        if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0):
            raise ConfigError(f"hydra.launcher.n_jobs={n_jobs}: must be the number of jobs to run at once (1, 2, ...) "
                              "or a count back from the number of cores (-1: all, -2: all but one)")


def job_subdir(cfg: DictConfig) -> str:
    """The job's hydra.sweep.subdir, checked to name a folder inside the sweep folder."""
    subdir = str(cfg.hydra.sweep.subdir)
    parts = Path(subdir).parts
    if not subdir or Path(subdir).is_absolute() or ".." in parts:
        raise ConfigError(f"hydra.sweep.subdir={subdir}: must name a folder inside the sweep folder")
    return subdir


def basic_sweep_jobs(cfg: DictConfig) -> list[list[str]]:
    """The overrides of every job Hydra's basic sweeper will launch, in its order (as BasicSweeper.split_arguments:
    the cartesian product over the swept keys, hydra.sweeper.params first)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{key}={value}" for key, value in (cfg.hydra.sweeper.get("params") or {}).items()]
    arguments = [*params, *OmegaConf.to_container(cfg.hydra.overrides.task, resolve=False)]
    choices: dict[str, list[str]] = {}
    for override in OverridesParser.create(config_loader=loader()).parse_overrides(arguments):
        key = override.get_key_element()
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                raise ConfigError(f"{override.input_line}: Hydra's basic sweeper sweeps lists of values only "
                                  "(a,b,c or range(...)); use hydra/sweeper=optuna for intervals")
            choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            choices[key] = [f"{key}={override.get_value_element_as_str()}"]
    return [list(job) for job in itertools.product(*choices.values())]


def plan_run(cfg: DictConfig, overrides: list[str]) -> Plan:
    """Check and lock a single run's folder."""
    folder = Path(str(cfg.hydra.run.dir))
    check_job_settings(cfg, overrides)
    check_log_files(cfg, folder)
    claim = claim_run_folder(folder, cfg)
    return Plan(pins=[f"hydra.run.dir={quoted(str(folder))}"], claim=claim)


def plan_sweep_jobs(cfg: DictConfig, sweep_dir: Path) -> tuple[int, int]:
    """Check the folder of every job of Hydra's basic sweeper before any job starts; return (jobs, jobs to skip)."""
    from hydra.core.hydra_config import HydraConfig

    folders: dict[str, list[str]] = {}
    skipped = 0
    jobs = basic_sweep_jobs(cfg)
    for index, job in enumerate(jobs):
        job_cfg = loader().load_sweep_config(cfg, list(job))
        with read_write(job_cfg.hydra.job), open_dict(job_cfg.hydra.job):
            job_cfg.hydra.job.num = job_cfg.hydra.job.id = index  # as Hydra's launchers number the jobs
        HydraConfig.instance().set_config(job_cfg)
        task_overrides = OmegaConf.to_container(job_cfg.hydra.overrides.task, resolve=False)
        check_job_settings(job_cfg, task_overrides)
        folder = sweep_dir / job_subdir(job_cfg)
        key = os.path.normpath(os.path.abspath(folder))
        if key in folders:
            raise ConfigError(f"hydra.sweep.subdir: two jobs would share the folder {folder} "
                              f"({' '.join(folders[key]) or 'no overrides'} and {' '.join(task_overrides)}); make "
                              "hydra.sweep.subdir tell the jobs apart (for instance, keep the swept keys out of "
                              "hydra.job.config.override_dirname.exclude_keys)")
        folders[key] = task_overrides
        check_log_files(job_cfg, folder)
        check_free(folder)
        skipped += decide_job(folder, job_cfg, task_overrides) == SKIP
    return len(jobs), skipped


def basic_sweeper_target() -> str:
    """The `_target_` of Hydra's basic sweeper, as its `hydra/sweeper=basic` config gives it in Hydra's public config
    store (inside `hydra.initialize_config_dir`, which registers it)."""
    from hydra.core.config_store import ConfigStore

    return ConfigStore.instance().load("hydra/sweeper/basic.yaml").node["_target_"]


def plan_sweep(cfg: DictConfig) -> Plan:
    """Check and lock a sweep's folder, and, for Hydra's basic sweeper, check every job's folder."""
    check_launcher(cfg.hydra.launcher)
    sweep_dir = Path(str(cfg.hydra.sweep.dir))
    check_sweep_folder(sweep_dir)
    before, parents = runfolder.snapshot(sweep_dir), runfolder.missing_parents(sweep_dir)
    lock = FolderLock(sweep_dir)
    lock.acquire()
    try:
        check_sweep_folder(sweep_dir)
        if cfg.hydra.sweeper.get("_target_") == basic_sweeper_target():
            jobs, skipped = plan_sweep_jobs(cfg, sweep_dir)
        else:  # the jobs are chosen as the sweep goes: each checks its own folder when it starts
            check_job_settings(cfg, None)
            check_log_files(cfg, sweep_dir / "job")
            jobs = skipped = 0
        saved = OmegaConf.to_yaml(cfg).encode()  # the sweep's config, as Hydra's basic sweeper saves it: its mark
        files.write_atomically(sweep_dir, runfolder.MULTIRUN, lambda handle: handle.write(saved))
    except BaseException:
        runfolder.remove_created(sweep_dir, before)
        runfolder.remove_empty(parents)
        lock.release()
        raise
    mark_sweep_process()
    return Plan(pins=[f"hydra.sweep.dir={quoted(str(sweep_dir))}"], sweep_lock=lock, skipped=skipped, jobs=jobs)


def plan(overrides: list[str], multirun: bool) -> Plan:
    """Check everything `clrelu run [-m] <overrides>` would write, before Hydra writes anything; lock what was
    checked. A ConfigError says what is refused."""
    from hydra import initialize_config_dir
    from hydra.types import RunMode

    with initialize_config_dir(str(config_dir()), version_base="1.3", job_name="clrelu"):
        check_option_names(overrides)
        cfg = compose(overrides, multirun)
        if cfg.hydra.mode == RunMode.MULTIRUN:
            return plan_sweep(cfg)
        return plan_run(cfg, overrides)


def checked_option_names(overrides: list[str]) -> None:
    """`check_option_names` for a command that only prints (--cfg, --help, --info)."""
    from hydra import initialize_config_dir

    with initialize_config_dir(str(config_dir()), version_base="1.3", job_name="clrelu"):
        check_option_names(overrides)

