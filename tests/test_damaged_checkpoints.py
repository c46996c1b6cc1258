"""Attack: a crafted checkpoint.pt (plain data, which torch.load(weights_only=True) accepts) naming paths outside
the run folder, holding wrong types, negative or huge integers, tensors of the wrong shape. Each is one line
"damaged checkpoint: ..." (exit code 2), and no file changes, in the run folder or beside it."""

import shutil

import pytest
import torch
from conftest import crash_during_task, hashes, run_cli, run_in_process

from clrelu.errors import ConfigError
from clrelu.rundir.checkpoint import CHECKPOINT

FAST = ["stream=synthetic", "model.hidden=[32]", "stream.train_per_class=50", "stream.test_per_class=20",
        "stream.n_tasks=3"]


@pytest.fixture(scope="module")
def unfinished(tmp_path_factory):
    """A run that stopped in task 2 of 3: its checkpoint holds tasks 0 and 1."""
    folder = tmp_path_factory.mktemp("template") / "run"
    crash_during_task(folder, 2, *FAST)
    return folder


def first_tensor(state):
    return next(iter(state["model"]))


CRAFTED = {
    "a length naming an absolute path": lambda s, decoy: s["record"]["lengths"].update({str(decoy / "thesis.txt"): 0}),
    "a length naming a path up and out": lambda s, decoy: s["record"]["lengths"].update({"../decoy/thesis.txt": 0}),
    "a length naming a file clrelu never appends to": lambda s, decoy: s["record"]["lengths"].update({"summary.csv": 0}),
    "a negative length": lambda s, decoy: s["record"]["lengths"].update({"accuracy.csv": -1}),
    "a length past the end of its file": lambda s, decoy: s["record"]["lengths"].update({"evals.csv": 10**15}),
    "a length that is text": lambda s, decoy: s["record"]["lengths"].update({"accuracy.csv": "12"}),
    "rows outside the run": lambda s, decoy: s["record"].update(rows=[0, 99]),
    "a negative task count": lambda s, decoy: s["record"].update(tasks_done=-1),
    "a record key clrelu never writes": lambda s, decoy: s["record"].update(evil=1),
    "a tensor of the wrong shape": lambda s, decoy: s["model"].update({first_tensor(s): torch.zeros(7)}),
    "a tensor the model does not have": lambda s, decoy: s["model"].update(evil=torch.zeros(1)),
    "a number where a tensor goes": lambda s, decoy: s["model"].update({first_tensor(s): 3}),
    "more phases than the stream has": lambda s, decoy: s.update(phases_done=10**9),
    "a generator state of the wrong size": lambda s, decoy: s["rng"].update(torch=torch.zeros(3, dtype=torch.uint8)),
    "an optimizer naming no parameter": lambda s, decoy: s.update(
        optimizer={"state": {"state": {}, "param_groups": []}, "groups": [["../evil"]]}),
    "a strategy key it never writes": lambda s, decoy: s["strategy"].update(evil=1),
    "a top-level key clrelu never writes": lambda s, decoy: s.update(evil="x"),
    "a config that is not a mapping": lambda s, decoy: s["record"].update(config="x"),
}


@pytest.mark.parametrize("case", CRAFTED)
def test_a_crafted_checkpoint_is_one_line_and_touches_nothing(unfinished, tmp_path, decoy, case):
    run = tmp_path / "run"
    shutil.copytree(unfinished, run)
    state = torch.load(run / CHECKPOINT, weights_only=True)
    CRAFTED[case](state, decoy)
    torch.save(state, run / CHECKPOINT)
    before, decoy_before = hashes(run), hashes(decoy)
    with pytest.raises(ConfigError) as refused:
        run_in_process(run, *FAST, "resume=true")
    message = str(refused.value)
    assert f"damaged checkpoint: {run / CHECKPOINT}: " in message and "\n" not in message, message
    assert refused.value.exit_code == 2
    assert hashes(run) == before and hashes(decoy) == decoy_before


def test_a_crafted_evals_csv_is_one_line_and_touches_nothing(unfinished, tmp_path, decoy):
    run = tmp_path / "run"
    shutil.copytree(unfinished, run)
    evals = (run / "evals.csv").read_bytes().replace(b"\n1,0,", b"\n1,99999,", 1)  # an evaluation of task 99999
    (run / "evals.csv").write_bytes(evals)
    before, decoy_before = hashes(run), hashes(decoy)
    with pytest.raises(ConfigError) as refused:
        run_in_process(run, *FAST, "resume=true")
    assert str(refused.value).startswith(f"{run / 'evals.csv'}: damaged (line ") and "99999" in str(refused.value)
    assert hashes(run) == before and hashes(decoy) == decoy_before


def test_from_the_command_line_the_thesis_is_safe(unfinished, tmp_path, decoy):
    run = tmp_path / "run"
    shutil.copytree(unfinished, run)
    state = torch.load(run / CHECKPOINT, weights_only=True)
    state["record"]["lengths"][str(decoy / "thesis.txt")] = 0  # resume used to empty this file
    torch.save(state, run / CHECKPOINT)
    decoy_before, run_before = hashes(decoy), hashes(run)
    done = run_cli("run", *FAST, "resume=true", f"hydra.run.dir={run}", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == (f"clrelu: error: resume=true: damaged checkpoint: {run / CHECKPOINT}: record['lengths'] "
                           f"names '{decoy / 'thesis.txt'}', which is not one of the files a run appends to "
                           "(accuracy.csv, forgetting.csv, evals.csv, online.csv, activations.csv, overlap.csv, "
                           "model_stats.csv, plasticity.csv)\n")
    assert hashes(decoy) == decoy_before and hashes(run) == run_before  # refused before Hydra wrote anything
