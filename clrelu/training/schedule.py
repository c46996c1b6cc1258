"""The evaluation schedule of a run: after which tasks it evaluates (`eval.every`) and on which tasks (`eval.tasks`)."""

from __future__ import annotations

from dataclasses import dataclass

from clrelu import checks

TASK_CHOICES = ("all", "seen", "current")


@dataclass(frozen=True)
class EvalSchedule:
    """Evaluate after every `every`-th task (after tasks every-1, 2*every-1, ...) and always after the last, on
    every task (`all`), the tasks learned so far (`seen`) or the tasks just learned (`current`).

    The evaluation after the last task covers every task whatever `tasks` says, so that ACC, forgetting
    and BWT stay defined. The evaluation at initialisation (only FWT uses it, with the entries
    R[j-1, j] that only `all` measures) is made with `all` and skipped otherwise.
    """

    every: int = 1
    tasks: str = "all"

    @classmethod
    def checked(cls, every, tasks) -> EvalSchedule:
        return cls(checks.integer("eval.every", every, minimum=1), checks.choice("eval.tasks", tasks, TASK_CHOICES))

    def initial(self, n_tasks: int) -> list[int]:
        """The tasks evaluated at initialisation."""
        return list(range(n_tasks)) if self.tasks == "all" else []

    def after(self, row: int, new_tasks: tuple[int, ...], n_tasks: int) -> list[int]:
        """The tasks evaluated after the phase that ends at row `row` of R and introduced `new_tasks`."""
        if row == n_tasks - 1 or self.tasks == "all":
            evaluated = list(range(n_tasks))
        elif self.tasks == "seen":
            evaluated = list(range(row + 1))
        else:
            evaluated = sorted(new_tasks)
        return evaluated if row == n_tasks - 1 or (row + 1) % self.every == 0 else []
