"""Experiment trackers (config group `logger`): what each wrote, read back with its own reader, equals the CSV
files; a missing extra is refused in one line naming it; a tracker that fails never ends the run."""

import logging
import math
import struct
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_in_process

from clrelu.errors import ConfigError

FAST = ["stream=synthetic", "model.hidden=[16,16]", "stream.train_per_class=20", "stream.test_per_class=10",
        "plasticity.probe_size=50"]


def expected(folder: Path) -> dict[tuple[str, int], float]:
    """Every per-task metric of the run's CSV files, by (name, step), as the loggers name them."""
    values = {}
    for row in pd.read_csv(folder / "online.csv").itertuples(index=False):
        values[("online/online_accuracy", row.task)] = row.online_accuracy
        values[("online/final_loss", row.task)] = row.final_loss
    for row in pd.read_csv(folder / "plasticity.csv").to_dict("records"):
        for measure in ("dead_fraction", "dormant_fraction", "effective_rank", "srank", "weight_magnitude"):
            values[(f"plasticity/{row['layer']}/{measure}", row["task"])] = row[measure]
    summary = pd.read_csv(folder / "summary.csv").iloc[0]
    for name in ("avg_accuracy", "avg_forgetting", "learning_accuracy", "bwt", "n_params", "tasks_done"):
        values[(f"summary/{name}", int(summary.n_tasks) - 1)] = float(summary[name])
    return {key: value for key, value in values.items() if not math.isnan(value)}


def assert_same(logged: dict[tuple[str, int], float], folder: Path, rel: float = 1e-12) -> None:
    wanted = expected(folder)
    assert len(wanted) > 40
    for key, value in wanted.items():
        assert logged.get(key) == pytest.approx(value, rel=rel, abs=1e-9), key


def test_tensorboard_event_files_hold_the_csvs(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_in_process(tmp_path / "run", *FAST, "logger=tensorboard")
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    logged = {(tag, e.step): e.value for tag in events.Tags()["scalars"] for e in events.Scalars(tag)}
    assert_same(logged, tmp_path / "run", rel=1e-6)  # TensorBoard keeps float32
    text = {tag: events.Tensors(tag)[-1].tensor_proto.string_val[0].decode() for tag in events.Tags()["tensors"]}
    assert "hidden:\n  - 16\n  - 16" in text["config/text_summary"]
    accuracy = pd.read_csv(tmp_path / "run" / "accuracy.csv", index_col="after_task")
    assert f"| 4 | {' | '.join(f'{v:.4f}' for v in accuracy.loc[4])} |" in text["accuracy_matrix/text_summary"]
    assert events.Tags()["images"] == ["accuracy_matrix"] and text["status/text_summary"] == "finished"


def test_mlflow_file_store_holds_the_csvs(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    run_in_process(tmp_path / "run", *FAST, "logger=mlflow", f"logger.tracking_uri={tmp_path / 'mlruns'}")
    client = MlflowClient((tmp_path / "mlruns").as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("clrelu").experiment_id])
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    assert run.data.tags["clrelu.run_dir"] == str(tmp_path / "run")
    assert run.data.params["model.hidden"] == "[16, 16]" and run.data.params["trainer.iters"] == "null"
    logged = {(m.key, m.step): m.value for key in run.data.metrics for m in client.get_metric_history(run.info.run_id,
                                                                                                      key)}
    assert_same(logged, tmp_path / "run")
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    assert (artifacts / "accuracy.csv").read_bytes() == (tmp_path / "run" / "accuracy.csv").read_bytes()
    assert "hidden:\n  - 16\n  - 16" in (artifacts / "config.yaml").read_text()


def wandb_records(path: Path):
    """The protobuf records of a W&B run file (its LevelDB-style log: 32 KiB blocks of chunks, each with a
    7-byte header: crc32, length, type)."""
    from wandb.proto import wandb_internal_pb2

    data, position, pending = path.read_bytes(), 7, b""
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        left = 32768 - position % 32768
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if left < 7 or kind == 0:
            position += left
            continue
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # full, or last chunk
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record
            pending = b""


def test_wandb_offline_run_holds_the_csvs(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="the wandb extra is not installed")
    import json

    for folder in ("WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):  # its staging files too, in tmp_path
        monkeypatch.setenv(folder, str(tmp_path / folder.lower()))

    run_in_process(tmp_path / "run", *FAST, "logger=wandb", f"logger.dir={tmp_path}")
    (path,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    logged, config, artifacts = {}, {}, []
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            items = {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.history.item}
            logged.update({(key, items["_step"]): value for key, value in items.items() if not key.startswith("_")
                           and isinstance(value, (int, float))})
        elif kind == "run":
            config.update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "artifact":
            artifacts.append(sorted(entry.path for entry in record.artifact.manifest.contents))
    assert_same(logged, tmp_path / "run")
    assert config["model"]["hidden"] == [16, 16] and config["stream"]["n_tasks"] == 5
    assert sorted(artifacts) == [["accuracy.csv", "forgetting.csv"], ["accuracy_matrix.table.json"]]
    (table,) = path.parent.glob("files/media/table/accuracy_matrix_*.table.json")
    table = json.loads(table.read_text())
    accuracy = pd.read_csv(tmp_path / "run" / "accuracy.csv")
    assert table["columns"] == list(accuracy.columns) and table["data"] == accuracy.values.tolist()


@pytest.mark.parametrize("logger, modules", [("tensorboard", ("tensorboard", "torch.utils.tensorboard")),
                                              ("mlflow", ("mlflow",)), ("wandb", ("wandb",))])
def test_a_missing_extra_is_refused_in_one_line(tmp_path, monkeypatch, logger, modules):
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # what an install without the extra sees
    with pytest.raises(ConfigError) as caught:
        run_in_process(tmp_path / "run", *FAST, f"logger={logger}")
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"logger={logger} needs the '{logger}' extra")
    assert f'[{logger}]"' in message and not (tmp_path / "run").exists()


def test_a_failing_tracker_never_ends_the_run(tmp_path, monkeypatch, caplog):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from clrelu.loggers.tensorboard import TensorBoardLogger

    def full_disk(self, metrics, step):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(TensorBoardLogger, "log_metrics", full_disk)
    with caplog.at_level(logging.INFO, logger="clrelu"):
        record = run_in_process(tmp_path / "run", *FAST, "logger=tensorboard")
    assert record.status == "finished" and pd.read_csv(tmp_path / "run" / "summary.csv").status.iloc[0] == "finished"
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 1 and said[0].startswith("TensorBoardLogger stopped logging (OSError: [Errno 28] No space")
