#!/usr/bin/env bash
# Issue 26 on one GPU in under 10 minutes (device tool; carry .device after prepare_carry.py):
#   1. the learning budget at the full mode's design (dense fine-tuning's held-out curve per task),
#   2. the headline verdict cells at 3 seeds: full, mpop@0.5, compressed_aux@0.5, svd_whitened@0.5 on SST-2/STS-B.
# Everything lands in $OUT: the results tables/JSON (run records included) and a log.
#   run(command="bash benchmarks/device/issue26_gpu.sh", carry=[".device"], timeout_s=600)
set -uo pipefail
export PYTHONUNBUFFERED=1 GLUE_DIR=$PWD/.device/glue MPO_RESULTS_DIR=${OUT:-/tmp/out}/results
export MPO_VERDICT_SEEDS=0,1,2 MPO_VERDICT_ROWS=full,mpop@0.5,compressed_aux@0.5,svd_whitened@0.5 MPO_VERDICT_TASKS=sst2,stsb
mkdir -p "$MPO_RESULTS_DIR"
python3 benchmarks/device/restore_model.py /tmp/site && export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "${OUT:-/tmp/out}/log.txt"
start=$(date +%s)
timeout 200 python3 -m mpo_core reproduce learning_budget --mode gpu --workers 3 2>&1 | tail -n 40 | tee -a "${OUT:-/tmp/out}/log.txt"
echo "learning_budget: $(( $(date +%s) - start )) s" | tee -a "${OUT:-/tmp/out}/log.txt"
timeout $(( 560 - ($(date +%s) - start) )) python3 -m mpo_core reproduce glue_verdicts --mode gpu --workers 4 2>&1 \
  | tail -n 60 | tee -a "${OUT:-/tmp/out}/log.txt"
echo "total: $(( $(date +%s) - start )) s" | tee -a "${OUT:-/tmp/out}/log.txt"
