"""`clrelu run`'s entry point, attacked: no spelling of an option reaches pickle, every folder Hydra would write is
checked before it writes anything (overrides cannot switch the checks off), jobs never share a folder, config
group options are names; and the command line behaves like Hydra's (help, completion, --cfg, missing extras)."""

import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

from clrelu.cli import describe, main, run_command
from clrelu.errors import ConfigError
from clrelu.launch import arguments
from clrelu.rundir.guard import RESUME, SKIP, claim_job_folder
from clrelu.rundir.lock import LOCK_FILE

TINY = ["stream=synthetic", "stream.n_tasks=2", "model.hidden=[8]", "stream.train_per_class=10",
        "stream.test_per_class=5", "diagnostics.enabled=false", "plasticity.enabled=false"]


def hydra_long_options() -> list[str]:
    """Hydra's own long options, read from its parser (a test may look inside Hydra; clrelu may not)."""
    from hydra._internal.utils import get_args_parser

    return sorted(o for action in get_args_parser()._actions for o in action.option_strings if o.startswith("--"))


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("clrelu: error: "), err
    return err[len("clrelu: error: "):-1]


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
            for p in sorted(folder.rglob("*"))}


@pytest.fixture
def decoy(tmp_path) -> Path:
    """Another Hydra app's output folder, which clrelu must leave byte for byte as it is."""
    folder = tmp_path / "decoy"
    (folder / ".hydra").mkdir(parents=True)
    for name, text in ((".hydra/config.yaml", "lr: 0.1\n"), (".hydra/hydra.yaml", "hydra: {}\n"),
                       (".hydra/overrides.yaml", "- lr=0.1\n"), ("app.log", "[app] started\n"), ("notes.txt", "mine")):
        (folder / name).write_text(text)
    return folder


# --- 17.1: no spelling of an option reaches pickle --------------------------------------------------------------


def test_clrelu_knows_every_option_of_hydra():
    assert sorted(o.long for o in arguments.OPTIONS) == hydra_long_options()


@pytest.mark.parametrize("option", hydra_long_options())
def test_every_prefix_of_every_hydra_option_is_refused_unless_spelled_in_full(option):
    for length in range(3, len(option)):
        prefix = option[:length]
        for words in ([f"{prefix}=evil.pkl"], [prefix, "evil.pkl"], [prefix]):
            with pytest.raises(ConfigError, match=f"^{prefix}(=evil.pkl)?: not an option of clrelu run"):
                arguments.parse([*words, "stream=synthetic"])
    for words in ([f"{option}=job"], [option, "job"]):
        if option in arguments.REFUSED:
            with pytest.raises(ConfigError, match=f"^{option}: refused; "):
                arguments.parse(words)


def test_what_hydra_is_handed_is_what_clrelu_read():
    read = arguments.parse(["-m", "--cfg", "job", "--info", "--package=model", "seed=1", "-p", "stream"])
    assert read.for_hydra(["hydra.run.dir='x'"]) == ["--multirun", "--cfg=job", "--info", "--package=stream",
                                                     "seed=1", "hydra.run.dir='x'"]
    with pytest.raises(ConfigError, match="^--cfg=jobs: unknown choice; valid choices are job, hydra, all"):
        arguments.parse(["--cfg", "jobs"])
    with pytest.raises(ConfigError, match="^-mc: not an option"):
        arguments.parse(["-mc", "job"])


def test_the_real_entry_point_refuses_every_spelling_of_the_rerun_option_and_no_pickle_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(Evil()))
    for words in (["--exp=evil.pkl"], ["--experimental-rer", "evil.pkl"], ["--experimental-rerun=evil.pkl"]):
        done = run_cli("run", *words, cwd=tmp_path)
        assert done.returncode == 2 and not marker.exists(), done.stderr
        assert one_line(done.stderr).startswith(words[0].split("=")[0])


# --- 17.4: every folder Hydra would write is checked first; no override switches the checks off ------------------


@pytest.mark.parametrize("attack, message", [
    (["hydra.run.dir={decoy}"], "hydra.run.dir={decoy}: holds files that are not a clrelu run's"),
    (["~hydra.callbacks.guard", "hydra.run.dir={decoy}"], "Could not delete from config"),
    (["hydra.run.dir={run}", "hydra.output_subdir={decoy}/.hydra"], "hydra.output_subdir={decoy}/.hydra: must stay null"),
    (["hydra.run.dir={run}", "hydra.job_logging.handlers.file.filename={decoy}/app.log"],
     "hydra.job_logging.handlers.file.filename={decoy}/app.log: a run's log file must lie inside its folder"),
    (["-m", "seed=0,1", "hydra.sweep.dir={decoy}"], "hydra.sweep.dir={decoy}: holds files that are not a clrelu run's"),
    (["-m", "seed=0,1", "hydra.sweep.dir={run}", "hydra.sweep.subdir=../decoy"],
     "hydra.sweep.subdir=../decoy: must name a folder inside the sweep folder"),
    (["-m", "seed=0,1", "hydra.sweep.dir={run}", "hydra.sweep.subdir={decoy}"],
     "hydra.sweep.subdir={decoy}: must name a folder inside the sweep folder"),
    (["hydra.mode=MULTIRUN", "seed=0,1", "hydra.sweep.dir={decoy}"], "hydra.sweep.dir={decoy}: holds files"),
])
def test_overrides_cannot_make_clrelu_write_into_a_folder_it_did_not_check(tmp_path, decoy, capsys, attack, message):
    before = hashes(tmp_path)
    words = [word.format(decoy=decoy, run=tmp_path / "run") for word in attack]
    assert run_command([*TINY, *words]) == 2
    assert one_line(capsys.readouterr().err).startswith(message.format(decoy=decoy, run=tmp_path / "run"))
    assert hashes(tmp_path) == before  # the decoy as it was, and no run or sweep folder made


@pytest.mark.parametrize("link", ["summary.csv", ".hydra/config.yaml", "run.log", "multirun.yaml"])
def test_a_folder_holding_a_symbolic_link_is_never_written(tmp_path, decoy, capsys, link):
    for mode in ([], ["-m", "seed=0,1"]):
        folder = tmp_path / f"run{len(mode)}"
        (folder / link).parent.mkdir(parents=True, exist_ok=True)
        (folder / link).symlink_to(decoy / "notes.txt")
        (folder / LOCK_FILE).write_text("")
        before = hashes(tmp_path)
        key = "hydra.sweep.dir" if mode else "hydra.run.dir"
        assert run_command([*TINY, *mode, f"{key}={folder}"]) == 2
        assert one_line(capsys.readouterr().err) == (f"{key}={folder}: holds {link} (a symbolic link), which clrelu "
                                                     "never writes through; choose a new or empty folder")
        assert hashes(tmp_path) == before


# --- 17.5: jobs never share a folder, whatever the sweeper ------------------------------------------------------


def test_jobs_that_would_share_a_folder_are_refused_before_any_runs(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    assert run_command(["-m", *TINY, "seed=0,1", f"hydra.sweep.dir={sweep}",
                        "hydra.job.config.override_dirname.exclude_keys=[seed]"]) == 2
    message = one_line(capsys.readouterr().err)
    assert message.startswith(f"hydra.sweep.subdir: two jobs would share the folder {sweep}/") and "seed=0" in message
    assert not sweep.exists()


def test_a_job_claims_its_folder_and_refuses_one_another_job_wrote(tmp_path):
    """What every sweeper's jobs do (Optuna's too, whose jobs are not known in advance)."""
    from clrelu.config import compose

    folder = tmp_path / "job"
    assert run_command([*TINY, "seed=0", f"hydra.run.dir={folder}"]) == 0
    cfg, _ = compose([*TINY, "seed=1"])
    with pytest.raises(ConfigError, match=r"holds the run of another job \(.*seed=0.*\), not of this one \(.*seed=1"):
        claim_job_folder(folder, cfg, [*TINY, "seed=1"])
    cfg, _ = compose([*TINY, "seed=0"])
    with pytest.raises(ConfigError, match="already holds a run; add skip_finished=true"):
        claim_job_folder(folder, cfg, [*TINY, "seed=0"])
    cfg, _ = compose([*TINY, "seed=0", "skip_finished=true"])
    claim = claim_job_folder(folder, cfg, [*TINY, "seed=0", "skip_finished=true"])
    assert claim.action == SKIP
    claim.release()
    (folder / "summary.csv").unlink()
    from conftest import crash_during_task

    crash_during_task(folder, 1, *TINY, "seed=0")
    claim = claim_job_folder(folder, cfg, [*TINY, "seed=0", "skip_finished=true"])
    assert claim.action == RESUME
    claim.release()


# --- 17.9: a config group option is a name -----------------------------------------------------------------------


@pytest.mark.parametrize("words, message", [
    (["model=../stream/synthetic"], "model=../stream/synthetic: a config option is a name, not a path; valid choices "
                                    "are hat, mlp, multitask, packnet, pnn, sparse, transfer"),
    (["experiment=../model/mlp"], "experiment=../model/mlp: a config option is a name, not a path; valid choices are "
                                  "activation_sweep, hsu_split_mnist"),
    (["-m", "model=mlp,../stream/synthetic"], "model=../stream/synthetic: a config option is a name"),
    (["strategy=../../conf/model/mlp"], "strategy=../../conf/model/mlp: a config option is a name"),
    (["--cfg", "job", "model=/etc/x"], "model=/etc/x: a config option is a name"),
])
def test_config_group_options_are_names_not_paths(tmp_path, capsys, monkeypatch, words, message):
    monkeypatch.chdir(tmp_path)
    assert run_command(words) == 2
    assert one_line(capsys.readouterr().err).startswith(message)
    assert not list(tmp_path.iterdir())


# --- 18.9: the command line behaves like Hydra's -----------------------------------------------------------------


def test_help_lists_what_a_user_chooses(capsys):
    assert run_command(["--help"]) == 0
    out = capsys.readouterr().out
    assert "model: hat, mlp, multitask, packnet, pnn, sparse, transfer" in out and "hydra/launcher: basic" in out
    assert "experiment_strategy" not in out and "--experimental-rerun" not in out


def test_a_preset_with_a_computed_list_prints_resolved(capsys):
    assert run_command(["experiment=vandeven_split_mnist", "seed=1", "--cfg", "job", "--resolve"]) == 0
    out = capsys.readouterr().out
    assert "class_order:\n  - " in out and "${" not in out


def test_shell_completion_installs_a_script_whose_queries_work(tmp_path):
    script = run_cli("run", "-sc", "install=bash", cwd=tmp_path).stdout
    assert script.rstrip().endswith("complete -o nospace -o default -F hydra_bash_completion clrelu")
    query = subprocess.run([sys.executable, "-m", "clrelu.cli", "-sc", "query=bash"], cwd=tmp_path, text=True,
                           capture_output=True, env={**os.environ, "COMP_LINE": "clrelu run mod", "COMP_POINT": "14"})
    assert query.returncode == 0 and "model=" in query.stdout.split(), query.stderr
    assert main.__module__ == "clrelu.cli"


def test_a_launcher_or_sweeper_without_its_plugin_names_the_extra():
    from hydra.errors import MissingConfigException

    missing = MissingConfigException("not found", missing_cfg_file="hydra/launcher/submitit_local",
                                     options=["basic", "joblib"])
    assert describe(missing) == ("hydra/launcher=submitit_local: needs clrelu's 'submitit' extra; install it with "
                                 "pip install 'clrelu[submitit]'", 2)
    missing = MissingConfigException("not found", missing_cfg_file="hydra/sweeper/optuna", options=["basic"])
    assert describe(missing)[0].endswith("pip install 'clrelu[optuna]'")
