"""Mammoth's side of a comparison: run one row of methods.py for one seed with Mammoth's own training loop and print
one JSON line.

Run it with the Python of the peer's virtual environment (torch, torchvision, and Mammoth's requirements: kornia,
timm==0.9.8, onedrivedownloader, ftfy, regex), on a checkout of aimagelab/mammoth:

    /work/peers/avalanche-venv/bin/python scripts/peers/mammoth_side.py --method der --scenario class --seed 0 \
        --data /work/peers/data --mammoth /work/peers/mammoth --work /tmp/mammoth-work

Mammoth has no Fashion-MNIST. The first run writes two dataset files into the checkout's datasets/ folder (never into
clrelu): seq_fmnist.py and perm_fmnist.py, copies of its seq_mnist.py and perm_mnist.py with torchvision's
FashionMNIST in place of MNIST (read from `--data`, the folder holding FashionMNIST/raw, through the PEERS_DATA
environment variable; the subclass MyMNIST reads FashionMNIST/raw too), the names seq-fmnist / perm-fmnist, and 5
permuted tasks instead of 20. `fmnist_dataset_files` below is that patch, each replacement checked to apply once.

Mammoth runs as `python main.py --dataset seq-fmnist|perm-fmnist --model <m> --backbone mnistmlp --lr ... --batch_size
... --n_epochs 1 --seed ... --num_workers 0 --non_verbose 1` plus the row's
flags, in this process, with one torch thread (main.py sets two at import; set back to one before training). Its
mnistmlp (784-100-100-10 ReLU) is initialised here with PyTorch's default, as clrelu's and Avalanche's networks
(Mammoth's own Xavier initialisation with `--mammoth-init`). Timer: the wall time of utils.training.train, Mammoth's
loop over the tasks (the data loaders of each task, training, the model's end-of-task work, and the evaluation of
the tasks seen so far after each task). Not timed: parsing, reading the dataset files, building the model.
"""

from __future__ import annotations

import json
import os
import sys
import time
import types
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from methods import Row, peer_row, result, side_arguments  # noqa: E402  (the table beside this script)

DATASETS = {"class": "seq-fmnist", "domain": "perm-fmnist", "task": "seq-fmnist"}
COMMON_REPLACEMENTS = [
    ("from torchvision.datasets import MNIST", "from torchvision.datasets import FashionMNIST as MNIST"),
    ("base_path() + 'MNIST'", "os.environ['PEERS_DATA']"),
    ("c.split('-')[1].strip()", "c.split('-')[-1].strip()"),  # FashionMNIST's class names have no 'digit - '
    # torchvision reads <root>/<class name>/raw: the subclass reads FashionMNIST's folder
    ("class MyMNIST(MNIST):", "class MyMNIST(MNIST):\n    raw_folder = property(lambda self: os.path.join(self.root, "
                              "'FashionMNIST', 'raw'))\n"),
]
PATCHES = {
    "seq_fmnist.py": ("seq_mnist.py", [("NAME = 'seq-mnist'", "NAME = 'seq-fmnist'"),
                                       ("class SequentialMNIST(", "class SequentialFMNIST("),
                                       ("return SequentialMNIST.TRANSFORM", "return SequentialFMNIST.TRANSFORM")]),
    "perm_fmnist.py": ("perm_mnist.py", [("NAME = 'perm-mnist'", "NAME = 'perm-fmnist'"),
                                         ("N_TASKS = 20", "N_TASKS = 5"),
                                         ("class PermutedMNIST(", "class PermutedFMNIST("),
                                         ("np.prod(PermutedMNIST.SIZE)", "np.prod(PermutedFMNIST.SIZE)")]),
}


def fmnist_dataset_files(mammoth: Path) -> None:
    """Write datasets/seq_fmnist.py and datasets/perm_fmnist.py into the Mammoth checkout (see the docstring)."""
    for name, (source, replacements) in PATCHES.items():
        text = (mammoth / "datasets" / source).read_text()
        for old, new in [*COMMON_REPLACEMENTS, *replacements]:
            count = text.count(old)
            if count != 1 and not (old.startswith("base_path()") and count > 1):
                raise SystemExit(f"mammoth_side: {source} has {count} copies of {old!r}; the patch needs updating")
            text = text.replace(old, new)
        text = "import os\n" + text
        target = mammoth / "datasets" / name
        if not target.exists() or target.read_text() != text:
            target.write_text(text)


def skip_other_datasets(mammoth: Path, keep: str) -> None:
    """Mammoth imports every file of datasets/ to register it, and some of them load models from the internet at
    import time; the other dataset modules are stood in by empty ones so that only `keep` (a file name) is read."""
    for path in (mammoth / "datasets").glob("*.py"):
        if path.name not in ("__init__.py", keep):
            name = f"datasets.{path.stem}"
            sys.modules.setdefault(name, types.ModuleType(name))


def flags(r: Row, seed: int, work: Path) -> list[str]:
    out = ["--dataset", DATASETS[r.scenario], "--model", r.peer_method, "--backbone", "mnistmlp",
           "--lr", str(r.lr), "--batch_size", str(r.batch_size), "--n_epochs", str(r.epochs), "--seed", str(seed),
           "--num_workers", "0", "--non_verbose", "1",
           "--base_path", str(work) + "/", "--checkpoint_path", str(work / "checkpoints") + "/"]
    for key, value in r.peer_args.items():
        out += [f"--{key}", str(value)]
    return out


def torch_default_init(mammoth_init: bool) -> None:
    """Make mnistmlp initialise its linear layers with PyTorch's default (unless `mammoth_init`)."""
    if mammoth_init:
        return
    from backbone.MNISTMLP import BaseMNISTMLP

    def reset_parameters(self) -> None:
        for module in self.net.modules():
            if isinstance(module, nn.Linear):
                module.reset_parameters()

    BaseMNISTMLP.reset_parameters = reset_parameters


def run(r: Row, seed: int, data: str, mammoth: Path, work: Path, mammoth_init: bool = False) -> dict:
    fmnist_dataset_files(mammoth)
    os.environ["PEERS_DATA"] = data
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(mammoth))
    os.chdir(mammoth)
    sys.argv = ["main.py", *flags(r, seed, work)]
    skip_other_datasets(mammoth, DATASETS[r.scenario].replace("-", "_") + ".py")
    import main as mammoth_main  # noqa: E402  (Mammoth's main.py, from the checkout)
    import utils.training
    from datasets.utils.continual_dataset import ContinualDataset

    torch.set_num_threads(1)
    torch_default_init(mammoth_init)
    final: dict = {}  # the accuracies of the latest evaluation of every task seen
    evaluate = ContinualDataset.evaluate

    def recording(model, dataset, last=False, return_loss=False):
        result = evaluate(model, dataset, last, return_loss)
        if not last:
            final["accs"] = result[0]
        return result

    ContinualDataset.evaluate = staticmethod(recording)
    train = utils.training.train
    seconds = {}

    def timed(model, dataset, args=None):
        started = time.perf_counter()
        train(model, dataset, args)
        seconds["train"] = time.perf_counter() - started

    utils.training.train = timed
    mammoth_main.main()
    accs = [float(a) for a in final["accs"]]
    return result("mammoth", r, seed, accs, seconds["train"])


def main() -> None:
    parser = side_arguments(__doc__.splitlines()[0])
    parser.add_argument("--mammoth", type=Path, required=True, help="a checkout of aimagelab/mammoth")
    parser.add_argument("--work", type=Path, required=True, help="a folder for Mammoth's own files")
    parser.add_argument("--mammoth-init", action="store_true", help="keep Mammoth's Xavier initialisation")
    args = parser.parse_args()
    r = peer_row(args, "mammoth")
    line = run(r, args.seed, str(Path(args.data).resolve()), args.mammoth.resolve(), args.work.resolve(),
                 args.mammoth_init)
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
