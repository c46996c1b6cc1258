"""Checkpoints: plain data only, read with weights_only=True, so that a file can never run code; damaged or
foreign files named in one line; the config a run started with kept inside and checked on resume."""

import pickle

import pytest
import torch
from conftest import crash_during_task, run_in_process

from clrelu.errors import ConfigError
from clrelu.rundir.checkpoint import CHECKPOINT, load_checkpoint

FAST = ["stream=synthetic", "model.hidden=[32]", "stream.train_per_class=50", "stream.test_per_class=20",
        "stream.n_tasks=3"]


class CreatesMarker:
    """Unpickling this calls open(marker, "w"): code run by merely loading the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_a_checkpoint_holding_code_never_runs_it(tmp_path):
    crash_during_task(tmp_path / "run", 2, *FAST)
    marker = tmp_path / "marker"
    torch.save({"format": "clrelu-checkpoint-v1", "payload": CreatesMarker(marker)}, tmp_path / "run" / CHECKPOINT)
    torch.load(tmp_path / "run" / CHECKPOINT, weights_only=False)  # the payload works: unpickling runs it
    assert marker.exists()
    marker.unlink()

    with pytest.raises(ConfigError) as refused:
        load_checkpoint(tmp_path / "run")
    assert str(refused.value).startswith(f"{tmp_path / 'run' / CHECKPOINT}: cannot be read as a clrelu checkpoint: "
                                         "it holds objects other than tensors and plain data")
    with pytest.raises(ConfigError, match="resume=true: .*checkpoint.pt: cannot be read as a clrelu checkpoint"):
        run_in_process(tmp_path / "run", *FAST, "resume=true")
    assert not marker.exists()


@pytest.mark.parametrize("damage, message", [
    (lambda path: path.write_bytes(path.read_bytes()[:200]), "cannot be read as a clrelu checkpoint ("),
    (lambda path: path.write_bytes(b""), "cannot be read as a clrelu checkpoint ("),
    (lambda path: torch.save({"weights": torch.zeros(3)}, path), "not a clrelu checkpoint (it has no"),
    (lambda path: path.write_bytes(pickle.dumps([1, 2, 3])), "cannot be read as a clrelu checkpoint"),
])
def test_a_damaged_or_foreign_checkpoint_is_one_line_naming_the_file(tmp_path, damage, message):
    crash_during_task(tmp_path, 2, *FAST)
    damage(tmp_path / CHECKPOINT)
    with pytest.raises(ConfigError) as refused:
        load_checkpoint(tmp_path)
    assert str(refused.value).startswith(f"{tmp_path / CHECKPOINT}: ")
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_checkpoint_is_plain_data_with_the_config_it_started_with(tmp_path):
    crash_during_task(tmp_path, 2, *FAST, "strategy=replay", "model=sparse")
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)  # raises on anything but tensors and plain data
    assert state["format"] == "clrelu-checkpoint-v1" and state["phases_done"] == 2
    assert state["record"]["config"]["seed"] == 0 and state["record"]["config"]["model"]["k"] == 0.1
    assert state["record"]["config"]["stream"]["seed"] == 0  # resolved: ${seed}
    assert isinstance(state["rng"]["numpy"][1], list) and len(state["rng"]["numpy"][1]) == 624


def test_resume_is_checked_against_the_config_in_the_checkpoint(tmp_path):
    crash_during_task(tmp_path / "cut", 2, *FAST)
    assert not (tmp_path / "cut" / ".hydra").exists()  # nothing but the checkpoint knows the config
    for change, key in (("seed=5", "seed was 0 in that run and is 5 now"),
                        ("trainer.epochs=2", "trainer.epochs was 1 in that run and is 2 now"),
                        ("diagnostics.enabled=false", "diagnostics.enabled was True in that run and is False now"),
                        ("+optimizer.nesterov=true", "optimizer.nesterov was (not set) in that run and is True now")):
        with pytest.raises(ConfigError) as refused:
            run_in_process(tmp_path / "cut", *FAST, change, "resume=true")
        assert str(refused.value) == f"resume=true: {key}; resume with the config the run started with"
    run_in_process(tmp_path / "cut", *FAST, "skip_finished=true", "resume=true")  # a key that changes no result
    run_in_process(tmp_path / "whole", *FAST)
    for name in ("accuracy.csv", "evals.csv"):
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


def test_a_checkpoint_written_before_the_initial_evaluation_was_timed_apart_resumes(tmp_path):
    crash_during_task(tmp_path, 2, *FAST)
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert state["record"]["eval_seconds_initial"] > 0
    del state["record"]["eval_seconds_initial"]  # as clrelu wrote checkpoints before it kept this apart
    torch.save(state, tmp_path / CHECKPOINT)
    record = run_in_process(tmp_path, *FAST, "resume=true")
    assert record.status == "finished" and record.eval_seconds_initial == 0.0 and record.tasks_done == 3
