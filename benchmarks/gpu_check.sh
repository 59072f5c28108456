#!/usr/bin/env bash
# The short GPU check, for a machine with one CUDA GPU (about 8 minutes): training img/s at 64 and 128 px eager,
# compiled and as CUDA graphs against the compute floor; torchrun with one process on CUDA; gan sample PNG/s.
#   bash benchmarks/gpu_check.sh [OUT]     (OUT: where the logs go, default gpu-check)
set -u
out=${1:-gpu-check}
mkdir -p "$out"
py=${PYTHON:-python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"

for px in 64 128; do
  timeout 200 "$py" benchmarks/train_speed.py --graphs --device cuda --resolution "$px" --steps 100 --repeats 3 \
    --warmup 20 2>&1 | grep -v Warning | tee "$out/graphs-$px.txt"
done

timeout 120 "$py" -m torch.distributed.run --standalone --nproc_per_node=1 scripts/train.py --data data/emoji \
  --resolution 32 --steps 200 --checkpoint-every 100 --eval-every 0 --out "$out/runs" --name torchrun \
  --resume auto --device cuda 2>&1 | tail -5 | tee "$out/torchrun.txt"
echo "torchrun exit: ${PIPESTATUS[0]}" | tee -a "$out/torchrun.txt"

timeout 120 "$py" benchmarks/sample_speed.py --count 1000 --resolution 64 --repeats 3 2>&1 | tail -8 \
  | tee "$out/sample.txt"
