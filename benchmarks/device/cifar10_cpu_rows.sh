#!/usr/bin/env bash
# The CPU-scaled CIFAR-10 rows on a lent GPU, in one call (issues 14 and 17): every row of
# table_dfad_plus_cifar10_cpu and the KD-ORI and RANDOM rows of table_cifar10_cpu (whose DFAD row
# is the other table's), SEEDS seeds each, as parallel processes sharing one --out
# (`dfad reproduce --only-seed`), all from the committed retrained teacher
# (results/reproduce/table_cifar10_cpu_runs/teacher-retrained/seed0: no teacher is trained). Each
# process is stopped with SIGTERM at DEADLINE_SECONDS (it saves its state). Small files of every
# run (config, summary, curve, metrics, last sample grid) are packed into $OUT/cifar10_cpu_rows.tar.gz;
# DFAD alone at 4x the budget runs beside them (FOUR_X=0: not). The tables are written here
# afterwards from the unpacked runs with the same overrides:
#   dfad reproduce table_dfad_plus_cifar10_cpu --seeds 2 --out RUNS --results results/reproduce device=cuda
#
# On the device, from the repository root (the tarball travels in an ignored, carried folder):
#   mkdir -p .device && cp ../shared/data/cifar10-jpeg.tar.gz .device/ && echo /.device/ >> .git/info/exclude
#   run(command="DATA_TAR=.device/cifar10-jpeg.tar.gz bash benchmarks/device/cifar10_cpu_rows.sh", carry=[".device"])
# KEY=VALUE arguments go to every run (default: device=cuda). CPU dry run of the plumbing:
#   BUDGET=2 SEEDS=1 ROWS_PLUS=dfad,kl ROWS_TABLE=random DATA=/tmp/dfad-data bash benchmarks/device/cifar10_cpu_rows.sh device=cpu
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
export DFAD_CACHE=${DFAD_CACHE:-/tmp/dfad-cache}
OUT=${OUT:-/tmp/dfad-rows-out} DATA=${DATA:-/tmp/dfad-data} RUNS=${RUNS:-/tmp/dfad-rows}
SEEDS=${SEEDS:-2} DEADLINE_SECONDS=${DEADLINE_SECONDS:-480}
ROWS_PLUS=${ROWS_PLUS-dfad,bn-prior,generator-ema,replay,kl,augment,student-ema,combination}
ROWS_TABLE=${ROWS_TABLE-kd-ori,random}
budget=(); [ -n "${BUDGET:-}" ] && budget=(--budget "$BUDGET")
overrides=("$@"); [ ${#overrides[@]} -eq 0 ] && overrides=(device=cuda)
start=$(date +%s)
mkdir -p "$OUT" "$RUNS"
exec > >(tee -a "$OUT/rows.log") 2>&1
if [ ! -d "$DATA/cifar10-jpeg/train" ]; then
  mkdir -p "$DATA/cifar10-jpeg" && tar -xzf "${DATA_TAR:?set DATA_TAR}" -C "$DATA/cifar10-jpeg"
fi
python3 -c "import platform, torch; print('torch', torch.__version__, '| cuda', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, '| cpu', platform.processor() or platform.machine())" | tee "$OUT/machine.txt"
teacher=results/reproduce/table_cifar10_cpu_runs/teacher-retrained/seed0
for table in table_dfad_plus_cifar10_cpu table_cifar10_cpu; do
  [ -d "$RUNS/$table/teacher/seed0" ] || { mkdir -p "$RUNS/$table/teacher" && cp -r "$teacher" "$RUNS/$table/teacher/seed0"; }
done
launch() {  # TABLE ROW SEED: one run, stopped at the deadline
  local left=$(( DEADLINE_SECONDS - ($(date +%s) - start) ))
  timeout --signal=TERM --kill-after=60 "$left" python3 -m dfad reproduce "$1" --rows "$2" --only-seed "$3" --quiet \
    --data-root "$DATA" --out "$RUNS" "${budget[@]}" "${overrides[@]}" > "$RUNS/log-$1-$2-seed$3.txt" 2>&1 \
    || echo "$1 $2 seed $3 ended with status $?"
}
pids=()  # waited on by pid: a bare `wait` also waits for the log's tee
for seed in $(seq 0 $(( SEEDS - 1 ))); do
  for row in ${ROWS_PLUS//,/ }; do launch table_dfad_plus_cifar10_cpu "$row" "$seed" & pids+=($!); done
  for row in ${ROWS_TABLE//,/ }; do launch table_cifar10_cpu "$row" "$seed" & pids+=($!); done
done
if [ "${FOUR_X:-1}" = 1 ]; then  # issue 14: DFAD alone at 4x its budget (6,000 iterations), seed 0
  left=$(( DEADLINE_SECONDS - ($(date +%s) - start) ))
  (timeout --signal=TERM --kill-after=60 "$left" python3 -m dfad distill --config cifar10_cpu --data-root "$DATA" --quiet \
     --teacher "$RUNS/table_cifar10_cpu/teacher/seed0/teacher.pt" --out "$RUNS/dfad-4x/seed0" \
     distill.iterations=$(( 4 * ${BUDGET:-1500} )) seed=0 "${overrides[@]}" > "$RUNS/log-dfad-4x-seed0.txt" 2>&1 \
     || echo "dfad-4x ended with status $?") & pids+=($!)
fi
wait "${pids[@]}"
echo "all runs ended after $(( $(date +%s) - start )) s"
# table_cifar10_cpu's DFAD row is the same run as the other table's (same config and teacher file).
label=$([ -n "${BUDGET:-}" ] && echo "budget-$BUDGET" || echo paper-budget)
if [ -d "$RUNS/table_dfad_plus_cifar10_cpu/$label/dfad" ]; then
  mkdir -p "$RUNS/table_cifar10_cpu/$label" && cp -rn "$RUNS/table_dfad_plus_cifar10_cpu/$label/dfad" "$RUNS/table_cifar10_cpu/$label/"
fi
python3 benchmarks/device/pack_runs.py "$RUNS" "$OUT/cifar10_cpu_rows.tar.gz"
echo "total seconds: $(( $(date +%s) - start ))"
