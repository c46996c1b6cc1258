"""The `clrelu` command: `run` (a Hydra app), `compare` and `plot`; every error is one line and an exit code."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from clrelu.config import config_dir
from clrelu.errors import report

USAGE = """\
usage: clrelu <command> [arguments]

commands:
  run       learn a stream of tasks and write its accuracy and forgetting matrices as CSV
            e.g. clrelu run model=mlp stream=split_mnist; clrelu run -m model=mlp seed=0,1,2
            (clrelu run --help lists the config groups and keys)
"""


_run_failures: list[Exception] = []  # the error that ended a single (non-sweep) run, reported by _run
HYDRA_FILES = {".hydra", "run.log"}


def _remove_if_nothing_ran(folder: Path) -> None:
    """Remove a run folder that holds only what Hydra wrote before the config was refused."""
    if folder.is_dir() and {p.name for p in folder.iterdir()} <= HYDRA_FILES:
        shutil.rmtree(folder)


def _run_task(cfg) -> None:
    """Hydra's task function: one run in the folder Hydra made for it.

    A single run hands its error to `_run` for a one-line report; in a sweep the error goes back to
    Hydra, which runs the other jobs and then raises the first failure.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from clrelu.experiment import run_experiment  # imports torch: kept out of `clrelu run --help`

    hydra_cfg = HydraConfig.get()
    folder = Path(hydra_cfg.runtime.output_dir)
    try:
        run_experiment(cfg, folder, dict(hydra_cfg.runtime.choices))
    except Exception as exc:
        _remove_if_nothing_ran(folder)
        if hydra_cfg.mode != RunMode.RUN:
            raise
        _run_failures.append(exc)


def describe(exc: BaseException) -> tuple[str, int]:
    """One line for the user and the exit code of an exception that ended a command."""
    from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    from clrelu.errors import ClreluError

    if isinstance(exc, ClreluError):
        return str(exc), exc.exit_code
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:
        group, _, value = exc.missing_cfg_file.rpartition("/")
        if exc.options:
            return f"{group}={value}: unknown choice; valid choices are {', '.join(exc.options)}", 2
        return f"{exc.missing_cfg_file}: no such config", 2
    cause = exc.__cause__
    if isinstance(exc, ConfigCompositionException) and getattr(cause, "parent_node", None) is not None:
        valid = [k for k in cause.parent_node.keys() if k not in ("hydra", "_target_", "_partial_")]
        return f"{cause.full_key}: unknown config key; valid keys here are {', '.join(valid)}", 2
    if isinstance(exc, (HydraException, OmegaConfBaseException)):
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        if cause is not None and str(cause).strip():
            lines.append(str(cause).strip().splitlines()[0])
        return "; ".join(lines[:2]) or type(exc).__name__, 2
    return f"{type(exc).__name__}: {exc} (set HYDRA_FULL_ERROR=1 for the stack trace)", 1


def _run(arguments: list[str]) -> int:
    import hydra

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


COMMANDS = {"run": _run}


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
