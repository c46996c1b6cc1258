"""The `clrelu` command: `run` (a Hydra app), `compare` and `plot`; every error is one line and an exit code."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from clrelu.errors import ClreluError, Interrupted, printable, report, warn  # (no third-party import at the top)

USAGE = """\
usage: clrelu <command> [arguments]      (clrelu --version, clrelu --help)

commands:
  run       learn a stream of tasks and write its accuracy and forgetting matrices as CSV
            e.g. clrelu run model=mlp stream=split_mnist; clrelu run -m model=mlp seed=0,1,2
            (clrelu run --help lists the config groups and keys)
  compare   mean and std over seeds of every group of runs: clrelu compare outputs/sweeps/<sweep> [--out FILE]
  plot      accuracy matrix and curves as PNG: clrelu plot <run or sweep folder> [--out FILE]
"""


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line and exit code 2."""

    def error(self, message: str):
        report(f"{self.prog}: {message}")
        raise SystemExit(2)


def describe(exc: BaseException) -> tuple[str, int]:
    """One line for the user and the exit code of an exception that ended a command."""
    from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(exc, ClreluError):
        return str(exc), exc.exit_code
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:
        group, _, value = exc.missing_cfg_file.rpartition("/")
        if _missing_plugin(group, value):
            return _missing_plugin(group, value), 2
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


EXTRAS = {"joblib": "joblib", "submitit_local": "submitit", "submitit_slurm": "submitit", "ray": "ray",
          "ray_aws": "ray", "optuna": "optuna"}  # Hydra plugins by config option: the clrelu extra that installs them


def _missing_plugin(group: str, value: str) -> str | None:
    """The message for a launcher or sweeper whose Hydra plugin is not installed: the extra that installs it."""
    if group in ("hydra/launcher", "hydra/sweeper") and value in EXTRAS:
        extra = EXTRAS[value]
        return f"{group}={value}: needs clrelu's '{extra}' extra; install it with pip install 'clrelu[{extra}]'"
    return None


def _hydra_main(words: list[str]) -> None:
    """Hydra's own main over clrelu's config, with the command line `words` (already checked)."""
    import hydra

    from clrelu.config import config_dir
    from clrelu.launch.job import run_job

    saved_argv, saved_error = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = ["clrelu", *words]  # Hydra names the program after argv[0] (shell completion installs for it)
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach clrelu instead of Hydra's multi-line report
    try:
        hydra.main(config_path=str(config_dir()), config_name="config", version_base="1.3")(run_job)()
    finally:
        sys.argv = saved_argv
        if saved_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_error


def _run_hydra(command_line) -> None:
    """Check every folder the command would write, lock them, then let Hydra run."""
    from clrelu.launch import plan
    from clrelu.launch.job import CLAIMS, FAILURES

    if not command_line.runs:
        plan.checked_option_names(command_line.overrides)
        _hydra_main(command_line.for_hydra())
        return
    checked = plan.plan(command_line.overrides, command_line.multirun)
    if checked.claim is not None:
        CLAIMS[os.path.abspath(checked.claim.folder)] = checked.claim
    try:
        if checked.skipped:
            print(f"skipping {checked.skipped} finished run(s) of {checked.jobs}")
        FAILURES.clear()
        _hydra_main(command_line.for_hydra(checked.pins))
        if FAILURES:
            raise FAILURES.pop()
    finally:
        if checked.claim is not None:
            CLAIMS.pop(os.path.abspath(checked.claim.folder), None)
        checked.release()


INTERRUPTED_RUN = "; the CSVs of the finished tasks are in the run folder"


def run_command(arguments: list[str]) -> int:
    """`clrelu run <arguments>` in this process: every check, the folder guard and lock, Hydra, and the run; any
    error is reported as one line. Returns the exit code (0, 1 for a failed run, 2 for a usage or config error,
    130 after Ctrl-C)."""
    logging.raiseExceptions = False  # a log line that cannot be written (a full disk) is no stack trace
    show_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    try:
        from clrelu.launch import arguments as command_line_of
        from clrelu.launch.help import show_help

        command_line = command_line_of.parse(arguments)
        if command_line.options.get("--help"):
            show_help(command_line.overrides)  # without torch: help is read from the configs alone
        else:
            from clrelu.launch.job import STARTED_RUNS

            STARTED_RUNS.clear()  # (a run started by an earlier command of this process is not this one)
            _run_hydra(command_line)
    except KeyboardInterrupt:
        started = getattr(sys.modules.get("clrelu.launch.job"), "STARTED_RUNS", None)
        print(f"clrelu: interrupted{INTERRUPTED_RUN if started else ''}", file=sys.stderr)
        return 130
    except SystemExit as stop:  # Hydra's --version, --hydra-help, --info end with SystemExit
        return stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
    except Interrupted as exc:  # SIGTERM or SIGHUP during a run, which recorded it as interrupted
        print(f"clrelu: interrupted: {printable(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        if show_traceback:
            raise
        message, code = describe(exc)
        report(message)
        return code
    return 0


def run_and_record(arguments: list[str]) -> tuple[int, list]:
    """`run_command(arguments)`, and the records (RunRecord) of the runs it finished: the Python API's entry."""
    from clrelu.launch.job import RECORDS

    RECORDS.clear()
    status = run_command(arguments)
    records, RECORDS[:] = list(RECORDS), []
    return status, records


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


def _left_out(lines: list[str]) -> None:
    for line in lines:
        print(f"left out: {printable(line)}", file=sys.stderr)


def _compare(arguments: list[str]) -> int:
    from clrelu.report import compare
    from clrelu.report.output import checked_output

    parser = Parser(prog="clrelu compare", description="Mean and standard deviation over seeds of every group "
                    "of finished runs; also written as compare.csv in the working directory (or --out).")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="run or sweep folders")
    parser.add_argument("--by", help="comma-separated keys to group by (default: every config key that varies)")
    parser.add_argument("--metrics", default=",".join(compare.METRICS), help="comma-separated summary columns")
    parser.add_argument("--format", choices=compare.FORMATS, default="table")
    parser.add_argument("--out", help="the CSV to write (default: compare.csv in the working directory); never "
                        "inside a run or sweep folder, never over a file clrelu did not write")
    args = parser.parse_args(arguments)

    def command():
        def target() -> Path:
            return checked_output(args.out, "compare.csv", [Path(p) for p in args.paths], compare.is_comparison,
                                  "a comparison table")

        out = target() if args.out else None  # an --out that cannot be written is refused before any work
        metrics = args.metrics.split(",")
        left_out: list[str] = []
        frame = compare.load_runs(args.paths, left_out)
        _left_out(left_out)
        table = compare.compare(frame, args.by.split(",") if args.by else None, metrics)
        sys.stdout.write(compare.render(table, metrics, args.format))
        for line in compare.unfinished(frame):
            print(f"left out, not finished: {printable(line)}", file=sys.stderr)
        try:
            compare.write(table, out or target())
        except ClreluError as exc:
            if out:
                raise
            warn(f"{exc} (the table was printed, not written)")

    return _guarded(command)


def _plot(arguments: list[str]) -> int:
    parser = Parser(prog="clrelu plot", description="A run folder: its accuracy matrix as a heatmap, the accuracy "
                    "on every task over training, and the hidden layers' sparsity and task overlap. A sweep folder: "
                    "each group's curves of mean accuracy, sparsity and overlap over tasks.")
    parser.add_argument("path", metavar="PATH", help="a run folder or a sweep folder")
    parser.add_argument("--out", help="the figure to write (default: <folder name>.png in the working directory); "
                        "never inside a run or sweep folder, never over a file clrelu did not write")
    args = parser.parse_args(arguments)

    def command():
        from clrelu.report.plot import plot

        left_out: list[str] = []
        written = plot(args.path, args.out, left_out)
        _left_out(left_out)
        print(printable(str(written)))

    return _guarded(command)


COMMANDS = {"run": run_command, "compare": _compare, "plot": _plot}


def _complete(arguments: list[str]) -> int:
    """`clrelu -sc ...`: what the bash completion script Hydra installs calls (`clrelu -sc query=bash`, with the
    line being typed in COMP_LINE): the command names, or, after `clrelu run`, Hydra's completion of the config.
    Anything else (install=bash, uninstall=bash) is `clrelu run -sc ...`."""
    line = os.environ.get("COMP_LINE")
    if line is None or not any(a.startswith("query=") for a in arguments):
        return run_command(["--shell-completion", *arguments])
    words = line.split()
    if len(words) > 2 or (len(words) == 2 and line.endswith(" ")):
        if words[1] != "run":
            return 0  # compare and plot take folders: the shell completes those
        os.environ["COMP_LINE"] = "clrelu " + (line.split(None, 2)[2] if len(words) > 2 else "")
        return run_command(["--shell-completion", *arguments])
    typed = words[1] if len(words) == 2 else ""
    print(" ".join(name for name in COMMANDS if name.startswith(typed)))
    return 0



def main(argv: list[str] | None = None) -> int:
    """The `clrelu` program: the exit status of its command (2 for a usage error); Ctrl-C at any instant after it
    starts is one line and exit code 130."""
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        print("clrelu: interrupted", file=sys.stderr)
        return 130


def _main(argv: list[str]) -> int:
    if not argv:
        print(USAGE, end="", file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0
    if argv[0] in ("-V", "--version"):
        from clrelu import __version__

        print(f"clrelu {__version__}")
        return 0
    command, arguments = argv[0], argv[1:]
    if command in ("-sc", "--shell-completion"):
        return _complete(arguments)
    if command not in COMMANDS:
        report(f"unknown command '{command}'; valid commands are {', '.join(COMMANDS)}")
        return 2
    return COMMANDS[command](arguments)


if __name__ == "__main__":
    sys.exit(main())
