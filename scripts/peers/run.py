"""Run clrelu and its peer side by side on the rows of methods.py, alternating, and append each result to a JSONL file.

    CLRELU_DATA=/work/shared/data python scripts/peers/run.py --results /work/peers/results/peers.jsonl \
        --peer-python /work/peers/avalanche-venv/bin/python --data /work/peers/data \
        --mammoth /work/peers/mammoth --hat /work/peers/hat --seeds 0 1 2 [--only agem/class gem/domain]

For every row and seed, clrelu's side (this interpreter, scripts/peers/clrelu_side.py) and then the peer's side (the
peer's interpreter: avalanche_side.py, mammoth_side.py or hat_side.py) run one after the other, each in its own
process with one torch thread, so that the two timings of a seed are taken under the same load. A result already
in the file (same side, method, scenario and seed) is not run again, so the command resumes where it stopped, and a
side another run.py on the same file has claimed (runs/claims/) is left to it, so that several can share the work.
Each side's run folder or output goes under the results file's folder (runs/). table.py turns the file into the
docs table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from methods import BY_KEY, ROWS, Row  # noqa: E402  (the table beside this script)

HERE = Path(__file__).resolve().parent


def done(results: Path) -> set[tuple]:
    """(side, method, scenario, seed) of every result in the file."""
    if not results.exists():
        return set()
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    return {(r["side"], r["method"], r["scenario"], r["seed"]) for r in rows}


def clrelu_command(r: Row, seed: int, runs: Path) -> list[str]:
    folder = runs / "clrelu" / f"{r.label}-{r.scenario}-{seed}"
    return [sys.executable, str(HERE / "clrelu_side.py"), "--method", r.label, "--scenario", r.scenario,
            "--seed", str(seed), "--folder", str(folder)]


def peer_command(r: Row, seed: int, args: argparse.Namespace) -> list[str]:
    common = ["--method", r.label, "--scenario", r.scenario, "--seed", str(seed)]
    if r.peer == "avalanche":
        return [args.peer_python, str(HERE / "avalanche_side.py"), *common, "--data", args.data]
    if r.peer == "mammoth":
        return [args.peer_python, str(HERE / "mammoth_side.py"), *common, "--data", args.data,
                "--mammoth", args.mammoth, "--work", str(args.results.parent / "runs" / "mammoth")]
    return [args.peer_python, str(HERE / "hat_side.py"), *common, "--data", args.data, "--hat", args.hat]


def claim(results: Path, side: str, r: Row, seed: int) -> Path | None:
    """Claim one side of one seed for this process (a file created exclusively), or None when another has it."""
    path = results.parent / "runs" / "claims" / f"{side}-{r.label}-{r.scenario}-{seed}"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return None
    return path


def run_side(command: list[str], results: Path, claimed: Path) -> bool:
    """Run one side; append its JSON line to `results`. Whether it succeeded (if not, the claim is given back)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    print("$", " ".join(command), flush=True)
    done_ = subprocess.run(command, capture_output=True, text=True, env=env)
    line = next((x for x in reversed(done_.stdout.splitlines()) if x.startswith("{")), None)
    if done_.returncode != 0 or line is None:
        print(f"failed ({done_.returncode}):\n{done_.stderr[-3000:]}", flush=True)
        claimed.unlink()
        return False
    with results.open("a") as f:
        f.write(line + "\n")
    result = json.loads(line)
    print(f"  {result['side']}: {result['final_accuracy']:.2f}%  {result['seconds']:.1f} s", flush=True)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True, help="the JSONL file to append to")
    parser.add_argument("--peer-python", required=True, help="the Python of the peer's virtual environment")
    parser.add_argument("--data", required=True, help="torchvision data root with FashionMNIST/raw, for the peers")
    parser.add_argument("--mammoth", help="a checkout of aimagelab/mammoth (rows compared with Mammoth)")
    parser.add_argument("--hat", help="a checkout of joansj/hat (rows compared with HAT's code)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", help="method/scenario keys to run, in this order (default: every row)")
    args = parser.parse_args()
    args.results = args.results.resolve()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    rows = ROWS if not args.only else [BY_KEY[key] for key in args.only]
    for r in rows:
        if (r.peer == "mammoth" and not args.mammoth) or (r.peer == "hat" and not args.hat):
            print(f"skipped {r.key}: needs --{r.peer}", flush=True)
            continue
        for seed in args.seeds:
            for side in ("clrelu", r.peer):
                if (side, r.label, r.scenario, seed) in done(args.results):
                    continue
                claimed = claim(args.results, side, r, seed)
                if claimed is None:
                    continue
                command = clrelu_command(r, seed, args.results.parent / "runs") if side == "clrelu" else \
                    peer_command(r, seed, args)
                run_side(command, args.results, claimed)


if __name__ == "__main__":
    main()
