#!/usr/bin/env bash
# One time-boxed chunk of the paper's CIFAR-10 row (ResNet-34 -> ResNet-18, `--config cifar10`) on a
# lent GPU: a short-schedule teacher sized to TEACHER_SECONDS by a timing probe, then the paper's
# DFAD recipe (25,000 planned iterations, schedule unchanged) for DISTILL_MINUTES. Small outputs
# (configs, summaries, metrics, last sample grid) are packed into $OUT/cifar10_chunk.tar.gz.
# Usage: DATA_TAR=path/to/cifar10-jpeg.tar.gz bash benchmarks/device/cifar10_paper_chunk.sh [KEY=VALUE ...]
# (extra overrides go to every command; a CPU dry run of this script uses tiny models)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PYTHONUNBUFFERED=1 PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" DFAD_CACHE=/tmp/dfad-cache
DEVICE=${DEVICE:-cuda} PRECISION=${PRECISION:-bf16}
PROBE_ITERS=${PROBE_ITERS:-300} TEACHER_SECONDS=${TEACHER_SECONDS:-180} DISTILL_MINUTES=${DISTILL_MINUTES:-4}
OUT=${OUT:-/tmp/dfad-chunk-out} DATA=${DATA:-/tmp/dfad-data} RUNS=${RUNS:-/tmp/dfad-runs}
mkdir -p "$OUT" "$DATA/cifar10-jpeg" "$RUNS"
[ -d "$DATA/cifar10-jpeg/train" ] || tar -xzf "${DATA_TAR:?set DATA_TAR}" -C "$DATA/cifar10-jpeg"
python3 - <<'PY' | tee "$OUT/machine.txt"
import platform, torch
print("torch", torch.__version__, "| cuda", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
      "| cpu", platform.processor() or platform.machine())
PY
common=(--data-root "$DATA" --quiet device=$DEVICE precision=$PRECISION "$@")
start=$(date +%s)
# Timing probe: seconds per teacher iteration on this machine, measured between the logs at
# iterations 100 and PROBE_ITERS - 10 (after cuDNN's kernel search, before the validation).
python3 -m dfad train-teacher --config cifar10 --out "$RUNS/probe" --force "${common[@]}" \
  teacher.iterations=$PROBE_ITERS teacher.val_every=$PROBE_ITERS
iters=$(python3 - "$RUNS/probe/metrics.jsonl" "$TEACHER_SECONDS" "$PROBE_ITERS" <<'PY'
import json, sys
logs = {r["iteration"]: r["elapsed_seconds"] for r in map(json.loads, open(sys.argv[1])) if "elapsed_seconds" in r}
budget, probe = float(sys.argv[2]), int(sys.argv[3])
a, b = min(100, probe // 2), probe - 10
a, b = min(logs, key=lambda i: abs(i - a)), min(logs, key=lambda i: abs(i - b))
rate = (logs[b] - logs[a]) / max(1, b - a) if b > a else max(logs.values()) / probe
print(max(50, int(budget / rate)))
PY
)
echo "teacher: $iters iterations (cosine, batch 128, SGD 0.1) to fit ${TEACHER_SECONDS}s"
python3 -m dfad train-teacher --config cifar10 --out "$RUNS/teacher" --force "${common[@]}" \
  teacher.iterations=$iters teacher.val_every=$(( iters / 4 > 0 ? iters / 4 : 1 )) "teacher.schedule={name: cosine}"
python3 -m dfad distill --config cifar10 --teacher "$RUNS/teacher/teacher.pt" --out "$RUNS/dfad" --force "${common[@]}" \
  distill.compile=false distill.time_limit_minutes=$DISTILL_MINUTES
echo "total seconds: $(( $(date +%s) - start ))"
cd "$RUNS" && tar -czf "$OUT/cifar10_chunk.tar.gz" --exclude='*.pt' --exclude='checkpoints' --exclude='probe' teacher dfad
