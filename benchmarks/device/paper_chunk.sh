#!/usr/bin/env bash
# One time-boxed chunk of a paper row on a lent GPU (CONFIG: cifar10, camvid, ...): a short-schedule
# teacher sized to TEACHER_SECONDS by a timing probe, then the config's DFAD recipe (planned
# iterations and schedule unchanged) for DISTILL_MINUTES. A few-iteration run of both commands at
# full model size comes first, so a broken code path fails in seconds, not after the teacher.
# Small outputs (configs, summaries, metrics, last sample grid) are packed into $OUT/CONFIG_chunk.tar.gz.
# Usage: CONFIG=camvid DATA_TAR=path/to/camvid-jpeg95.tar.gz DATA_SUBDIR= bash benchmarks/device/paper_chunk.sh [KEY=VALUE ...]
#   DATA_TAR is unpacked into $DATA/$DATA_SUBDIR (cifar10-jpeg.tar.gz holds train/ and test/, so
#   DATA_SUBDIR=cifar10-jpeg; camvid-jpeg95.tar.gz holds CamVid/, so DATA_SUBDIR is empty).
# Extra KEY=VALUE overrides go to every command (a CPU dry run of this script uses tiny models).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PYTHONUNBUFFERED=1 PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" DFAD_CACHE=${DFAD_CACHE:-/tmp/dfad-cache}
CONFIG=${CONFIG:-cifar10} DATA_SUBDIR=${DATA_SUBDIR-cifar10-jpeg}
DEVICE=${DEVICE:-cuda} PRECISION=${PRECISION:-bf16}
PROBE_ITERS=${PROBE_ITERS:-300} TEACHER_SECONDS=${TEACHER_SECONDS:-180} DISTILL_MINUTES=${DISTILL_MINUTES:-4}
# DEADLINE_SECONDS (from the script's start): DFAD's time limit shrinks so that the whole script
# ends by then, however long the earlier stages took (leave the caller's timeout some margin).
DEADLINE_SECONDS=${DEADLINE_SECONDS:-}
OUT=${OUT:-/tmp/dfad-chunk-out} DATA=${DATA:-/tmp/dfad-data} RUNS=${RUNS:-/tmp/dfad-runs}
start=$(date +%s)
mkdir -p "$OUT" "$DATA/$DATA_SUBDIR" "$RUNS"
# The log goes straight to $OUT (whatever pipes the caller adds may buffer and be lost on a kill),
# and finished stages are packed as they end, so a call cut off at its time limit still returns them.
exec > >(tee -a "$OUT/chunk.log") 2>&1
pack() { (cd "$RUNS" && tar -czf "$OUT/${CONFIG}_chunk.tar.gz" --exclude='*.pt' --exclude='checkpoints' "$@"); }
[ -f "$DATA/.unpacked-$CONFIG" ] || { tar -xzf "${DATA_TAR:?set DATA_TAR}" -C "$DATA/$DATA_SUBDIR" && touch "$DATA/.unpacked-$CONFIG"; }
python3 - <<'PY' | tee "$OUT/machine.txt"
import platform, torch
print("torch", torch.__version__, "| cuda", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
      "| cpu", platform.processor() or platform.machine())
PY
common=(--data-root "$DATA" --quiet device=$DEVICE precision=$PRECISION "$@")
# Fail fast: the real code path at full size for a few iterations.
python3 -m dfad train-teacher --config "$CONFIG" --out "$RUNS/smoke-teacher" --force "${common[@]}" \
  teacher.iterations=3 teacher.val_every=3
python3 -m dfad distill --config "$CONFIG" --teacher "$RUNS/smoke-teacher/teacher.pt" --out "$RUNS/smoke-dfad" --force \
  "${common[@]}" distill.iterations=3 distill.val_every=3
echo "smoke runs passed after $(( $(date +%s) - start )) s"
# Timing probe: seconds per teacher iteration on this machine, measured between the logs at
# iterations 100 and PROBE_ITERS - 10 (after cuDNN's kernel search, before the validation).
python3 -m dfad train-teacher --config "$CONFIG" --out "$RUNS/probe" --force "${common[@]}" \
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
echo "teacher: $iters iterations (cosine schedule) to fit ${TEACHER_SECONDS}s"
python3 -m dfad train-teacher --config "$CONFIG" --out "$RUNS/teacher" --force "${common[@]}" \
  teacher.iterations=$iters teacher.val_every=$(( iters / 4 > 0 ? iters / 4 : 1 )) "teacher.schedule={name: cosine}"
pack teacher
minutes=$DISTILL_MINUTES
if [ -n "$DEADLINE_SECONDS" ]; then
  # 60 s for start-up, the final validation and packing.
  minutes=$(python3 -c "print(round(max(0.5, min($DISTILL_MINUTES * 60, $DEADLINE_SECONDS - ($(date +%s) - $start) - 60) / 60), 2))")
fi
echo "dfad: time limit $minutes min"
python3 -m dfad distill --config "$CONFIG" --teacher "$RUNS/teacher/teacher.pt" --out "$RUNS/dfad" --force "${common[@]}" \
  distill.compile=false distill.time_limit_minutes=$minutes
echo "total seconds: $(( $(date +%s) - start ))"
pack teacher dfad
