"""The `clrelu` command: `run` (a Hydra app), `compare` and `plot`; every error is one line and an exit code."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from clrelu.config import config_dir
from clrelu.errors import ClreluError, report

USAGE = """\
usage: clrelu <command> [arguments]

commands:
  run       learn a stream of tasks and write its accuracy and forgetting matrices as CSV
            e.g. clrelu run model=mlp stream=split_mnist; clrelu run -m model=mlp seed=0,1,2
            (clrelu run --help lists the config groups and keys)
  compare   mean and std over seeds of every group of runs: clrelu compare outputs/sweeps/<sweep>
  plot      accuracy matrix and curves as PNG: clrelu plot <run or sweep folder> [--out FILE]
"""


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line and exit code 2."""

    def error(self, message: str):
        report(f"{self.prog}: {message}")
        raise SystemExit(2)


_run_failures: list[Exception] = []  # the error that ended a single (non-sweep) run, reported by _run


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


def _run_task(cfg) -> None:
    """Hydra's task function: one run in the folder Hydra made for it.

    A single run hands its error to `_run` for a one-line report; in a sweep the error goes back to
    Hydra, which runs the other jobs and then raises the first failure.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from clrelu.run.experiment import run_experiment  # imports torch: kept out of `clrelu run --help`
    from clrelu.rundir.contents import remove_created
    from clrelu.rundir.guard import claim_job_folder
    from clrelu.rundir.lock import stop_with_sweep

    hydra_cfg = HydraConfig.get()
    folder = Path(hydra_cfg.runtime.output_dir)
    if cfg.threads == 0:
        cfg.threads = job_threads(hydra_cfg.launcher)
    try:
        if hydra_cfg.mode == RunMode.MULTIRUN:
            stop_with_sweep()
        claim = claim_job_folder(folder, single_run=hydra_cfg.mode == RunMode.RUN)
        try:
            run_experiment(cfg, folder, dict(hydra_cfg.runtime.choices))
        except Exception:
            if claim.knows_before:  # a single run; a sweep cleans up after its jobs itself
                remove_created(folder, claim.before)
            raise
        finally:
            claim.release()
    except Exception as exc:
        if hydra_cfg.mode != RunMode.RUN:
            raise
        _run_failures.append(exc)


def describe(exc: BaseException) -> tuple[str, int]:
    """One line for the user and the exit code of an exception that ended a command."""
    from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(exc, ClreluError):
        return str(exc), exc.exit_code
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:
        group, _, value = exc.missing_cfg_file.rpartition("/")
        if exc.options:
            return f"{group}={value}: unknown choice; valid choices are {', '.join(exc.options)}", 2
        return f"{exc.missing_cfg_file}: no such config", 2
    cause = exc.__cause__
    if isinstance(exc, ConfigCompositionException) and getattr(cause, "parent_node", None) is not None:
        valid = [k for k in cause.parent_node if k not in ("hydra", "_target_", "_partial_")]
        return f"{cause.full_key}: unknown config key; valid keys here are {', '.join(valid)}", 2
    if isinstance(exc, (HydraException, OmegaConfBaseException)):
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        if cause is not None and str(cause).strip():
            lines.append(str(cause).strip().splitlines()[0])
        return "; ".join(lines[:2]) or type(exc).__name__, 2
    return f"{type(exc).__name__}: {exc} (set HYDRA_FULL_ERROR=1 for the stack trace)", 1


def _run(arguments: list[str]) -> int:
    import hydra

    if any(a.split("=")[0] == "--experimental-rerun" for a in arguments):
        report("--experimental-rerun: refused; it unpickles a file, which can run code (clrelu reads no such file)")
        return 2
    logging.raiseExceptions = False  # a log line that cannot be written (a full disk) is no stack trace
    show_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's multi-line report
    sys.argv = ["clrelu run", *arguments]
    app = hydra.main(config_path=str(config_dir()), config_name="config", version_base="1.3")(_run_task)
    try:
        app()
        if _run_failures:
            raise _run_failures.pop()
    except KeyboardInterrupt:
        print("clrelu: interrupted; the CSVs of the finished tasks are in the run folder", file=sys.stderr)
        return 130
    except Exception as exc:
        if show_traceback:
            raise
        message, code = describe(exc)
        report(message)
        return code
    return 0


def _guarded(command) -> int:
    """Run a command, turning any error into one line and its exit code: never a stack trace."""
    try:
        command()
    except ClreluError as exc:
        report(str(exc))
        return exc.exit_code
    except Exception as exc:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        text = str(exc).strip().splitlines()
        report(f"{type(exc).__name__}: {text[0] if text else ''} (set HYDRA_FULL_ERROR=1 for the stack trace)")
        return 1
    return 0


def _compare(arguments: list[str]) -> int:
    from clrelu.report import compare

    parser = Parser(prog="clrelu compare", description="Mean and standard deviation over seeds of every group "
                    "of finished runs; writes compare.csv into the first folder.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="run or sweep folders")
    parser.add_argument("--by", help="comma-separated keys to group by (default: every config key that varies)")
    parser.add_argument("--metrics", default=",".join(compare.METRICS), help="comma-separated summary columns")
    parser.add_argument("--format", choices=compare.FORMATS, default="table")
    args = parser.parse_args(arguments)

    def command():
        metrics = args.metrics.split(",")
        left_out: list[str] = []
        frame = compare.load_runs(args.paths, left_out)
        for line in left_out:
            print(f"left out, damaged: {line}", file=sys.stderr)
        table = compare.compare(frame, args.by.split(",") if args.by else None, metrics)
        sys.stdout.write(compare.render(table, metrics, args.format))
        for line in compare.unfinished(frame):
            print(f"left out, not finished: {line}", file=sys.stderr)
        if Path(args.paths[0]).is_dir():
            target = Path(args.paths[0]) / "compare.csv"
            try:
                compare.write(table, target)
            except ClreluError as exc:
                print(f"clrelu: warning: {exc}", file=sys.stderr)

    return _guarded(command)


def _plot(arguments: list[str]) -> int:
    parser = Parser(prog="clrelu plot", description="A run folder: its accuracy matrix as a heatmap, the accuracy "
                    "on every task over training, and the hidden layers' sparsity and task overlap. A sweep folder: "
                    "each group's curves of mean accuracy, sparsity and overlap over tasks.")
    parser.add_argument("path", metavar="PATH", help="a run folder or a sweep folder")
    parser.add_argument("--out", help="the PNG to write (default: PATH/plot.png)")
    args = parser.parse_args(arguments)

    def command():
        from clrelu.report.plot import plot

        left_out: list[str] = []
        written = plot(args.path, args.out, left_out)
        for line in left_out:
            print(f"left out, damaged: {line}", file=sys.stderr)
        print(written)

    return _guarded(command)


COMMANDS = {"run": _run, "compare": _compare, "plot": _plot}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0
    command, arguments = argv[0], argv[1:]
    if command not in COMMANDS:
        report(f"unknown command '{command}'; valid commands are {', '.join(COMMANDS)}")
        return 2
    return COMMANDS[command](arguments)


if __name__ == "__main__":
    sys.exit(main())
