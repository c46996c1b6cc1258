"""The wheel built from this repository installs into a fresh virtual environment with the core install (torch
2.13.0, no torchvision) and runs there, whatever torch the test environment has; a vision stream is refused there
in one line naming the extra."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

import clrelu

REPO = Path(__file__).resolve().parents[1]


def sh(*args, cwd=None):
    """A command with this environment but PYTHONPATH, which would shadow the installed wheel with this checkout."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, f"{args}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


@pytest.mark.slow
def test_wheel_runs_in_a_fresh_virtual_environment(tmp_path):
    sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", REPO)
    wheel = next((tmp_path / "dist").glob("clrelu-*.whl"))
    venv = tmp_path / "venv"
    sh(sys.executable, "-m", "venv", venv)
    pip = venv / "bin" / "pip"
    sh(pip, "install", "-q", "torch==2.13.0")  # the CPU build first, as the README says
    sh(pip, "install", "-q", wheel)
    work = tmp_path / "work"
    work.mkdir()
    done = sh(venv / "bin" / "clrelu", "run", "stream=synthetic", "hydra.run.dir=run", cwd=work)
    assert "ACC" in done.stdout
    assert pd.read_csv(work / "run" / "summary.csv").status.iloc[0] == "finished"
    # the configs came from inside the installed package, not from this checkout
    hydra_yaml = (work / "run" / ".hydra" / "hydra.yaml").read_text()
    assert str(venv) in hydra_yaml and "clrelu/conf" in hydra_yaml
    versions = sh(venv / "bin" / "python", "-c", "import torch, importlib.util as u; "
                  "print(torch.__version__, u.find_spec('torchvision') is None)").stdout.split()
    assert versions[0].startswith("2.13.0") and versions[1] == "True"  # the core install, without torchvision
    refused = subprocess.run([venv / "bin" / "clrelu", "run", "stream=split_cifar10", "hydra.run.dir=cifar"], cwd=work,
                             capture_output=True, text=True, timeout=300,
                             env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"})
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    lines = [line for line in refused.stderr.splitlines() if "torchvision" in line]
    assert len(lines) == 1 and "needs torchvision, which is not installed" in lines[0] and "[vision]" in lines[0]
    assert 'pip install "clrelu[vision]"' in lines[0]  # the hint of an install from a wheel, not of a checkout
    assert "clrelu/py.typed" in zipfile.ZipFile(wheel).namelist()  # type checkers read the API's annotations
    assert sh(venv / "bin" / "python", "-m", "clrelu", "--version").stdout == f"clrelu {clrelu.__version__}\n"
