"""The Hydra job of `clrelu run`: whatever sweeper or launcher calls it, it claims its folder (a lock, and the
check of what the folder holds) before anything is written there, writes the .hydra/ files, runs, and
returns the run's objective.

Hydra writes nothing into a job's folder before this function runs: clrelu's config keeps
hydra.output_subdir null (this function writes the .hydra/ files) and opens run.log at its first line
(`delay: true`); Hydra only creates the folder. A single run's folder was checked and locked by the
entry point (clrelu/launch/plan.py) and its claim waits here in CLAIMS.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from clrelu.errors import ConfigError
from clrelu.rundir import contents as runfolder
from clrelu.rundir import files
from clrelu.rundir.csvfiles import read_summary
from clrelu.rundir.guard import RESUME, SKIP, Claim, claim_job_folder

log = logging.getLogger(__name__)

CLAIMS: dict[str, Claim] = {}  # single runs' folders checked and locked by the entry point, by absolute path
STARTED_RUNS: list[Path] = []  # the runs this process has started (past their checks), for the Ctrl-C message
FAILURES: list[Exception] = []  # the error that ended a single run, for the entry point to report in one line
RECORDS: list = []  # the records (RunRecord) of the runs this process finished, for the Python API (cli.run_and_record)
# (handed to Hydra, it would print a line of its own first); a sweep's job hands its error to Hydra's sweeper


def job_threads(launcher) -> int:
    """Torch threads for one job, so that the jobs a launcher runs side by side share the cores (0: torch's default).

    joblib runs `n_jobs` jobs at once on this machine (-1 all cores, -2 all but one, ...); submitit gives
    each job `cpus_per_task` cores (one when unset, as SLURM does).
    """
    target = str(launcher.get("_target_", ""))
    cores = os.cpu_count() or 1
    if "joblib" in target:
        n_jobs = launcher.get("n_jobs") or -1
        side_by_side = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
        return max(1, cores // side_by_side)
    if "submitit" in target:
        return launcher.get("cpus_per_task") or 1
    return 0


def own_log_files(folder: Path, keep: bool) -> None:
    """Check that every log file of the job lies in its folder (refusing the job otherwise, before any line is
    written); with `keep` false, detach them (a skipped job writes nothing into a finished run's run.log)."""
    inside = os.path.abspath(folder)
    for handler in list(logging.getLogger().handlers):
        if not isinstance(handler, logging.FileHandler):
            continue
        path = os.path.abspath(handler.baseFilename)
        outside = os.path.commonpath([inside, path]) != inside
        if outside or not keep:
            logging.getLogger().removeHandler(handler)
            handler.close()
        if outside:
            raise ConfigError(f"hydra.job_logging: the log file {path} lies outside the run folder {folder}; clrelu "
                              "writes nowhere else")


def write_hydra_files(folder: Path, cfg: DictConfig, hydra_cfg: DictConfig) -> None:
    """The three files Hydra keeps in a run's .hydra/ (the job's config, Hydra's config, the overrides), with the
    content Hydra gives them."""
    for name, node in (("config.yaml", cfg), ("hydra.yaml", OmegaConf.create({"hydra": hydra_cfg})),
                       ("overrides.yaml", hydra_cfg.overrides.task)):
        data = OmegaConf.to_yaml(node).encode()
        files.write_atomically(folder, f".hydra/{name}", lambda handle, data=data: handle.write(data))


def objective_of_summary(folder: Path, objective: str) -> float:
    """The objective as a finished run's summary.csv records it."""
    return float(read_summary(folder)[objective] or "nan")


def claim_of(folder: Path, cfg: DictConfig, hydra_cfg: DictConfig, single_run: bool) -> Claim:
    """The entry point's claim on a single run's folder, or, for a job of a sweep, a claim made now."""
    claim = CLAIMS.pop(os.path.abspath(folder), None)
    if claim is not None:
        return claim
    if single_run:
        raise ConfigError(f"{folder}: clrelu runs only through `clrelu run` (or clrelu.run), which checks and locks "
                          "the run folder before anything is written")
    if hydra_cfg.output_subdir is not None:
        raise ConfigError(f"hydra.output_subdir={hydra_cfg.output_subdir}: must stay null; clrelu writes a run's "
                          ".hydra/ files itself")
    overrides = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)
    return claim_job_folder(folder, cfg, overrides)


def run_job(cfg: DictConfig) -> float:
    """Hydra's task function: one run in the folder Hydra chose for it; returns the run's objective."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.RUN:
        return _run_in(Path(hydra_cfg.runtime.output_dir), cfg, hydra_cfg, single_run=False)
    try:
        return _run_in(Path(hydra_cfg.runtime.output_dir), cfg, hydra_cfg, single_run=True)
    except Exception as exc:
        FAILURES.append(exc)
        return float("nan")


def _run_in(folder: Path, cfg: DictConfig, hydra_cfg: DictConfig, single_run: bool) -> float:
    from clrelu.rundir.lock import stop_with_sweep
    from clrelu.training.experiment import run_experiment  # imports torch: kept out of `clrelu run --help`

    if not single_run:
        stop_with_sweep()
    claim = claim_of(folder, cfg, hydra_cfg, single_run)
    try:
        own_log_files(folder, keep=claim.action != SKIP)
        if claim.action == SKIP:
            log.info("%s: finished already; skipped (skip_finished=true)", folder)
            return objective_of_summary(folder, cfg.objective)
        write_hydra_files(folder, cfg, hydra_cfg)
        with open_dict(cfg):
            cfg.resume = cfg.resume or claim.action == RESUME
            if cfg.threads == 0:
                cfg.threads = job_threads(hydra_cfg.launcher)
        STARTED_RUNS.append(folder)
        record = run_experiment(cfg, folder, dict(hydra_cfg.runtime.choices))
        RECORDS.append(record)
        return float(record.summary()[cfg.objective])
    except BaseException:
        runfolder.remove_created(folder, claim.before)  # only when nothing but start-up files were written
        runfolder.remove_empty(list(claim.parents))
        raise
    finally:
        claim.release()
