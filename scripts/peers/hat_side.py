"""HAT's reference code (joansj/hat) as the peer of a comparison: run one row of methods.py for one seed with their
src/approaches/hat.py and src/networks/mlp_hat.py, and print one JSON line.

Neither Avalanche 0.6 nor Mammoth has HAT, so the authors' code is the peer. Run it with the Python of the peer's
virtual environment, on a checkout of joansj/hat:

    /work/peers/avalanche-venv/bin/python scripts/peers/hat_side.py --method hat --scenario task --seed 0 \
        --data /work/peers/data --hat /work/peers/hat

Their code was written for PyTorch 0.3 on a GPU: here `.cuda()` of tensors and modules is the identity (everything
stays on the CPU), and `Variable(..., volatile=True)` only warns; nothing else of theirs is changed. The stream is
the task scenario's split Fashion-MNIST (5 tasks of 2 classes in the order 0..9, labels 0 and 1 in each task), [0, 1]
pixels as (1, 28, 28) images, in their data format (a head per task, `taskcla`). Their network is Net((1, 28, 28),
taskcla, nlayers=2, nhid=100, pdrop1=0.2, pdrop2=0.5); their Appr(nepochs, sbatch, lr, lamb, smax, clipgrad) with
the row's settings, trained task after task by Appr.train(t, xtrain, ytrain, xvalid, yvalid) (the validation set: the
last 10% of the task's training samples, also trained on, used by their harness only to keep the best epoch), and
evaluated by Appr.eval(u, xtest, ytest) on the tasks seen so far. Timer: the sum of those train and eval calls; their
train also evaluates the training and validation sets after every epoch, which is timed as part of it. Not timed:
reading the data, building the network.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from methods import Row, peer_row, result, side_arguments  # noqa: E402  (the table beside this script)


def cpu_only() -> None:
    """Make their `.cuda()` calls keep tensors and modules where they are (on the CPU)."""
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self


def split_fmnist(root: str, n_tasks: int = 5) -> list[dict]:
    """Per task, its train and test tensors in their format: x (N, 1, 28, 28) in [0, 1], y the label within the task."""
    from torchvision.datasets import FashionMNIST

    tasks = []
    sets = {name: FashionMNIST(root, train=name == "train") for name in ("train", "test")}
    for t in range(n_tasks):
        task = {}
        for name, data in sets.items():
            keep = (data.targets == 2 * t) | (data.targets == 2 * t + 1)
            task[name] = {"x": data.data[keep].float().unsqueeze(1) / 255, "y": (data.targets[keep] - 2 * t).long()}
        tasks.append(task)
    return tasks


def run(r: Row, seed: int, root: str, hat: Path) -> dict:
    cpu_only()
    sys.path.insert(0, str(hat / "src"))
    from approaches import hat as approach  # noqa: E402  (their code, from the checkout)
    from networks import mlp_hat as network  # noqa: E402

    np.random.seed(seed)
    torch.manual_seed(seed)
    tasks = split_fmnist(root)
    taskcla = [(t, 2) for t in range(len(tasks))]
    a = r.peer_args
    net = network.Net((1, 28, 28), taskcla, nlayers=2, nhid=a["nhid"], pdrop1=a["pdrop1"], pdrop2=a["pdrop2"])
    appr = approach.Appr(net, nepochs=r.epochs, sbatch=r.batch_size, lr=r.lr, lamb=a["lamb"], smax=a["smax"],
                         clipgrad=a["clipgrad"], args=SimpleNamespace(parameter=""))
    seconds, accuracies = 0.0, []
    for t, task in enumerate(tasks):
        x, y = task["train"]["x"], task["train"]["y"]
        cut = len(y) - len(y) // 10
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # their progress lines; this script prints one JSON line
            appr.train(t, x, y, x[cut:], y[cut:])
            accuracies = [100 * appr.eval(u, tasks[u]["test"]["x"], tasks[u]["test"]["y"])[1] for u in range(t + 1)]
        seconds += time.perf_counter() - started
    return result("hat", r, seed, accuracies, seconds)


def main() -> None:
    parser = side_arguments(__doc__.splitlines()[0])
    parser.add_argument("--hat", type=Path, required=True, help="a checkout of joansj/hat")
    args = parser.parse_args()
    torch.set_num_threads(1)
    r = peer_row(args, "hat", "joansj/hat")
    print(json.dumps(run(r, args.seed, args.data, args.hat.resolve())), flush=True)


if __name__ == "__main__":
    main()
