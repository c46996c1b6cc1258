"""The memory of the replay strategies: samples kept across tasks as tensors, and the ways of choosing them.

A `Buffer` holds named per-sample tensors: the inputs `x` as the stream stores them (uint8 pixels, or float
rows), their targets `y` and task ids `task`, and whatever else a strategy keeps beside them (DER's logits).
Reading is an index gather, with the inputs converted to float32 as the stream's own batches are.

The selection policies are functions from what is offered to the positions to keep, in a pool made of the
memory's rows followed by the new samples: reservoir sampling (Vitter's algorithm R), a random equal share
of every class, GDumb's greedy class balance, and iCaRL's herding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from clrelu.streams.base import Split, as_float

Rows = dict[str, torch.Tensor]  # named per-sample tensors, one row a sample: x, y, task, and any extra


def task_rows(train: Split, task_id: int, idx: torch.Tensor) -> Rows:
    """The samples at positions `idx` of a task's training split, inputs as the stream stores them."""
    x, y = train.gather_stored(idx)
    return {"x": x, "y": y, "task": torch.full((len(y),), task_id, dtype=torch.long, device=y.device)}


class Buffer:
    """Samples kept across tasks, as named tensors of equal length (`x`, `y`, `task`, and extras).

    `seen` counts the samples offered to `reservoir` so far.
    """

    def __init__(self):
        self.rows: Rows = {}
        self.seen = 0

    def __len__(self) -> int:
        return len(self.rows["y"]) if self.rows else 0

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.rows[name]

    def gather(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs as float32, targets, task ids) of the samples at positions `idx`, in that order."""
        idx = idx.to(self.rows["y"].device)
        return as_float(self.rows["x"][idx]), self.rows["y"][idx], self.rows["task"][idx]

    def draw(self, n: int) -> torch.Tensor:
        """`n` positions drawn uniformly with replacement."""
        return torch.randint(len(self), (n,))

    def draw_distinct(self, n: int) -> torch.Tensor:
        """min(n, len) distinct positions drawn uniformly (without replacement, as Mammoth's and A-GEM's code)."""
        return torch.randperm(len(self))[:n]

    def positions_of_task(self, task_id: int) -> torch.Tensor:
        return (self.rows["task"] == task_id).nonzero().squeeze(1).cpu()

    def keep(self, picks: torch.Tensor, new: Callable[[torch.Tensor], Rows] | Rows | None = None) -> None:
        """Make the memory the rows at `picks` of the pool (the memory's rows, then the new samples), in that
        order. `new` gives the new samples: their rows, or a function that reads the rows at the positions it is
        given, so that only the samples kept are read."""
        old = len(self)
        picks = picks.cpu()
        fresh = picks >= old
        rows: Rows = {}
        if fresh.any():
            wanted = picks[fresh] - old
            rows = new(wanted) if callable(new) else {name: t[wanted.to(t.device)] for name, t in new.items()}
        if not old:
            self.rows = rows
            return
        at = picks.clone()
        at[fresh] = old + torch.arange(int(fresh.sum()))  # where each kept new sample sits in the concatenation
        pool = {name: torch.cat([t, rows[name]]) if rows else t for name, t in self.rows.items()}
        self.rows = {name: t[at.to(t.device)] for name, t in pool.items()}

    def reservoir(self, n: int, new: Callable[[torch.Tensor], Rows] | Rows, capacity: int,
                  order: torch.Tensor | None = None) -> None:
        """Offer `n` new samples to the memory one after another (in `order`, positions of the new samples; default
        their own order), by algorithm R: every sample offered so far has the same chance, capacity / seen, to be
        kept. `new` as in `keep`."""
        old = len(self)
        picks = reservoir_picks(old, self.seen, n, capacity)
        self.seen += n
        if order is not None:
            fresh = picks >= old
            picks[fresh] = old + order[picks[fresh] - old]
        self.keep(picks, new)

    def state_dict(self) -> dict:
        return {"rows": dict(self.rows), "seen": self.seen}

    def load_state_dict(self, state: dict) -> None:
        self.rows, self.seen = dict(state["rows"]), state["seen"]


class WithMemory:
    """A phase's training data followed by a memory's samples, read as one dataset (iCaRL trains on both): `gather`
    returns the samples at the positions asked for, in that order, with a task id per sample."""

    def __init__(self, data, memory: Buffer):
        self.data = data
        self.memory = memory

    def __len__(self) -> int:
        return len(self.data) + len(self.memory)

    def gather(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = len(self.data)
        own = idx < n
        x_own, y_own, t_own = self.data.gather(idx[own])
        x_mem, y_mem, t_mem = self.memory.gather(idx[~own] - n)
        if not torch.is_tensor(t_own):
            t_own = torch.full((len(y_own),), t_own, dtype=torch.long, device=y_own.device)
        device = y_own.device
        x = x_own.new_empty(len(idx), x_own.shape[1])
        y = y_own.new_empty(len(idx))
        task = t_own.new_empty(len(idx))
        own, other = own.to(device), (~own).to(device)
        x[own], y[own], task[own] = x_own, y_own, t_own
        x[other], y[other], task[other] = x_mem.to(device), y_mem.to(device), t_mem.to(device)
        return x, y, task


def reservoir_picks(n_old: int, seen: int, n_new: int, capacity: int) -> torch.Tensor:
    """Algorithm R (Vitter 1985) over `n_new` samples offered after `seen` others to a memory of `n_old` rows
    (min(seen, capacity)): the new memory, as positions in the old rows followed by the new samples.

    The k-th new sample (the (seen + k + 1)-th offered) takes a free slot while there is one; after that it draws r
    uniformly from 0 .. seen + k and replaces slot r when r < capacity, so that later samples overwrite earlier
    ones drawn to the same slot. The draws are made at once (float64 uniforms), not sample by sample.
    """
    slots = torch.arange(min(n_old + n_new, capacity))
    free = len(slots) - n_old
    if free == n_new:
        return slots
    rest = torch.arange(free, n_new)
    offered = seen + rest + 1  # samples offered so far, this one included
    drawn = (torch.rand(len(rest), dtype=torch.float64) * offered).long().clamp_(max=offered - 1)
    hit = drawn < capacity
    winner = torch.full((capacity,), -1, dtype=torch.long).scatter_reduce_(0, drawn[hit], rest[hit], "amax")
    replaced = winner >= 0
    slots[replaced] = n_old + winner[replaced]
    return slots


def class_balanced_picks(pool_y: torch.Tensor, pool_task: torch.Tensor, size: int,
                         budget: int | None = None) -> torch.Tensor:
    """An equal share of `size` for every class of the pool (a class is a task's label), drawn at random; with
    `budget`, at most that many of each class (van de Ven et al.'s budget per class). The positions kept, class by
    class."""
    classes = torch.unique(torch.stack([pool_task, pool_y], 1), dim=0)
    share, extra = divmod(size, len(classes))
    if budget is not None and share >= budget:
        share, extra = budget, 0
    keep = []
    for k, (t, label) in enumerate(classes.tolist()):
        members = ((pool_task == t) & (pool_y == label)).nonzero().squeeze(1)
        members = members[torch.randperm(len(members)).to(members.device)]
        keep.append(members[:share + (1 if k < extra else 0)])
    return torch.cat(keep).cpu()


def greedy_balanced_picks(memory_classes: torch.Tensor, new_classes: torch.Tensor, capacity: int) -> torch.Tensor:
    """GDumb's sampler (Prabhu et al. 2020, Algorithm 1) over new samples arriving in order, after a memory whose
    rows have classes `memory_classes`: a sample is stored while the memory has room; once it is full, a sample of
    a class holding fewer than capacity / (classes seen) samples replaces a random sample of the largest class (the
    first of those in the order they were seen, on a tie). The new memory, as positions in the pool."""
    members: dict[int, list[int]] = {}
    for position, c in enumerate(memory_classes.tolist()):
        members.setdefault(c, []).append(position)
    size = len(memory_classes)
    for i, c in enumerate(new_classes.tolist(), start=len(memory_classes)):
        group = members.setdefault(c, [])
        if size < capacity:
            group.append(i)
            size += 1
        elif len(group) < capacity / len(members):
            largest = members[max(members, key=lambda k: len(members[k]))]
            out = int(torch.randint(len(largest), ()))
            largest[out] = largest[-1]
            largest.pop()
            group.append(i)
    return torch.tensor(sorted(p for group in members.values() for p in group), dtype=torch.long)


def herding(features: torch.Tensor, m: int, method: str = "welling", max_iterations: int = 1000) -> torch.Tensor:
    """The first `m` exemplars of a class by herding on its (L2-normalised) `features`, in the order chosen.

    welling: iCaRL's code (srebuffi/iCaRL): w <- mu, then repeatedly pick argmax_i <w, f_i> and set
    w <- w + mu - f_pick; a sample picked again is not counted again; at most `max_iterations` picks (Avalanche 0.6's
    ICaRL codes the same).
    exclusive: the paper's Algorithm 4 as Mammoth codes it: the k-th exemplar is the sample not chosen
    yet whose feature brings the mean of the chosen ones closest to mu.
    On unit-norm features both pick the same argmax until welling's would pick a sample again.
    """
    n = len(features)
    m = min(m, n)
    mu = features.mean(0)
    chosen: list[int] = []
    if method == "welling":
        w = mu.clone()
        taken = torch.zeros(n, dtype=torch.bool)
        for _ in range(max_iterations):
            if len(chosen) == m:
                break
            pick = int((features @ w).argmax())
            if not taken[pick]:
                taken[pick] = True
                chosen.append(pick)
            w += mu - features[pick]
        return torch.tensor(chosen, dtype=torch.long)
    total = torch.zeros_like(mu)
    available = torch.ones(n, dtype=torch.bool)
    for k in range(1, m + 1):
        cost = (mu - (features + total) / k).norm(dim=1)
        cost[~available] = float("inf")
        pick = int(cost.argmin())
        available[pick] = False
        chosen.append(pick)
        total += features[pick]
    return torch.tensor(chosen, dtype=torch.long)


def chunked(n: int, size: int) -> Iterator[torch.Tensor]:
    """Positions 0..n-1, `size` at a time."""
    for start in range(0, n, size):
        yield torch.arange(start, min(start + size, n))
