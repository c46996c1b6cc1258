# %% [markdown]
# # clrelu from Python
#
# `clrelu.run` runs one experiment exactly as `clrelu run` does (same checks, run-folder guard, `.hydra/` files and
# run.log) and returns its result; `clrelu.load` reads any runs into pandas. Open this file as a notebook (VS Code,
# or `jupytext --to notebook`), or run it:
#
#     python examples/python_api.py                                 # model=pnn stream=split_mnist
#     python examples/python_api.py stream=synthetic model=sparse   # any overrides

# %%
import sys

import clrelu

overrides = sys.argv[1:] or ["model=pnn", "stream=split_mnist"]
result = clrelu.run(overrides)  # a new folder under outputs/runs; folder=... picks one
print(result.folder)
print(f"average accuracy {result.summary['avg_accuracy']:.4f}, forgetting {result.summary['avg_forgetting']:.4f}")

# %% every key of the run's config is a column beside its summary
results = clrelu.load(result.folder)  # any run or sweep folders, or RunResults
print(results.runs[["model", "stream", "stream.scenario", "trainer.epochs", "avg_accuracy", "status"]].to_string())

# %% the accuracy on each task after each task, from evals.csv of every run loaded
evals = results.evals[results.evals.after_task >= 0]
print(evals.pivot(index="after_task", columns="eval_task", values="accuracy").round(3).to_string())
