#!/usr/bin/env bash
# The loss-of-plasticity study of docs/results/plasticity.md: 11 runs of experiment=plasticity_permuted (500 permuted
# Fashion-MNIST tasks each; about 5 minutes a run alone on two cores, two runs at a time with one thread each), then
# the table (clrelu compare) and the figure (clrelu plot).
#
#   scripts/plasticity_study.sh [SWEEP_FOLDER [OVERRIDE ...]]
#
# SWEEP_FOLDER defaults to outputs/sweeps/plasticity; the overrides go to every run (e.g. stream.n_tasks=2 for a smoke
# test). The figure goes to SWEEP_FOLDER/plasticity.png; copy it to docs/results/plasticity.png once the table is in.
set -euo pipefail
out=${1:-outputs/sweeps/plasticity}
shift || true
pair=(hydra/launcher=joblib hydra.launcher.n_jobs=2 threads=1)

clrelu run -m experiment=plasticity_permuted strategy=naive,l2_init,shrink_perturb,shrink_perturb_step,redo,cbp \
    "${pair[@]}" hydra.sweep.dir="$out/remedies" "$@"
clrelu run -m experiment=plasticity_permuted model.activation=leaky_relu,tanh,crelu \
    "${pair[@]}" hydra.sweep.dir="$out/activations" "$@"
clrelu run -m experiment=plasticity_permuted model.norm=layer threads=1 hydra.sweep.dir="$out/layer_norm" "$@"
clrelu run -m experiment=plasticity_permuted model.activation=crelu 'model.hidden=[91,91]' threads=1 \
    hydra.sweep.dir="$out/crelu_equal_parameters" "$@"
clrelu compare "$out" --metrics online_first_tenth,online_last_tenth,final_dead_fraction,final_dormant_fraction,final_effective_rank,n_params \
    --format markdown
clrelu plot "$out" --out "$out/plasticity.png"
