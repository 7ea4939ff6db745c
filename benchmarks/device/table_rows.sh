#!/usr/bin/env bash
# Rows of `dfad reproduce` tables on a lent GPU, in one call (issue 14). ROWS lists TABLE:ROW,ROW
# entries. Each table's seed-0 teacher is trained first (all tables' teachers at once) unless its
# run folder is already in RUNS (TEACHER_FROM=TABLE:DIR copies a committed one there first); then
# every row x SEEDS runs as its own process, all sharing one --out (`dfad reproduce --only-seed`),
# each stopped with SIGTERM at DEADLINE_SECONDS after the start (it saves its state). The small
# files of every run, teachers included (config, summary, curve, metrics, newest sample grid), are
# packed into $OUT/rows.tar.gz; teacher weights stay on the device (CamVid's and Caltech's are
# 45-64 MB, over what comes back). The tables are written here afterwards from the runs unpacked
# at the same RUNS path (their configs name the teacher by that path; nothing re-runs), with the
# same KEY=VALUE overrides:
#   mkdir -p /tmp/dfad-rows && tar -xzf FILES_AT/rows.tar.gz -C /tmp/dfad-rows
#   dfad reproduce TABLE --rows teacher,ROW,... --seeds 2 --out /tmp/dfad-rows --results results/reproduce device=cuda
#
# On the device, from the repository root; one dataset per call, as the working tree that travels
# holds at most 64 MiB (CamVid's tarball is 54 MB, Caltech-101's 47 MB, CIFAR-10's 19 MB):
#   mkdir -p .device && cp ../shared/data/camvid-jpeg95.tar.gz .device/ && echo /.device/ >> .git/info/exclude
#   run(command="DATA_TAR=.device/camvid-jpeg95.tar.gz ROWS='table_camvid_cpu:kd-ori,random,dfad,dfad-priors,dfad-priors-tv' bash benchmarks/device/table_rows.sh", carry=[".device"])
# KEY=VALUE arguments go to every run, teachers included (default: device=cuda). CPU dry run of
# the plumbing (2 teacher and 2 distillation iterations):
#   BUDGET=2 SEEDS=1 DATA=/tmp/dfad-data ROWS='table_camvid_cpu:random,dfad-priors-tv' \
#     bash benchmarks/device/table_rows.sh device=cpu teacher.iterations=2
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export DFAD_CACHE=${DFAD_CACHE:-/tmp/dfad-cache}
OUT=${OUT:-/tmp/dfad-rows-out} DATA=${DATA:-/tmp/dfad-data} RUNS=${RUNS:-/tmp/dfad-rows}
SEEDS=${SEEDS:-2} DEADLINE_SECONDS=${DEADLINE_SECONDS:-480}
ROWS=${ROWS:?set ROWS, e.g. ROWS='table_camvid_cpu:kd-ori,dfad'}
budget=(); [ -n "${BUDGET:-}" ] && budget=(--budget "$BUDGET")
overrides=("$@"); [ ${#overrides[@]} -eq 0 ] && overrides=(device=cuda)
start=$(date +%s)
mkdir -p "$OUT" "$RUNS"
exec > >(tee -a "$OUT/rows.log") 2>&1
if [ -n "${DATA_TAR:-}" ]; then  # the layouts of ../shared/data/prepare.sh
  case "$(basename "$DATA_TAR")" in
    cifar10*) [ -d "$DATA/cifar10-jpeg/train" ] || { mkdir -p "$DATA/cifar10-jpeg" && tar -xzf "$DATA_TAR" -C "$DATA/cifar10-jpeg"; } ;;
    *) mkdir -p "$DATA" && tar -xzf "$DATA_TAR" -C "$DATA" ;;
  esac
fi
python3 -c "import platform, torch; print('torch', torch.__version__, '| cuda', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, '| cpu', platform.processor() or platform.machine())" | tee "$OUT/machine.txt"
for pair in ${TEACHER_FROM:-}; do  # TABLE:DIR
  [ -d "$RUNS/${pair%%:*}/teacher/seed0" ] || { mkdir -p "$RUNS/${pair%%:*}/teacher" && cp -r "${pair#*:}" "$RUNS/${pair%%:*}/teacher/seed0"; }
done
left() { echo $(( DEADLINE_SECONDS - ($(date +%s) - start) )); }
launch() {  # TABLE ROW SEED: one run (a teacher when ROW is "teacher"), stopped at the deadline
  timeout --signal=TERM --kill-after=60 "$(left)" python3 -m dfad reproduce "$1" --rows "$2" --only-seed "$3" --quiet \
    --data-root "$DATA" --out "$RUNS" "${budget[@]}" "${overrides[@]}" > "$RUNS/log-$1-$2-seed$3.txt" 2>&1 \
    || echo "$1 $2 seed $3 ended with status $?"
}
pids=()  # waited on by pid: a bare `wait` also waits for the log's tee
for entry in $ROWS; do
  [ -f "$RUNS/${entry%%:*}/teacher/seed0/teacher.pt" ] || { launch "${entry%%:*}" teacher 0 & pids+=($!); }
done
[ ${#pids[@]} -eq 0 ] || wait "${pids[@]}"
echo "teachers ready after $(( $(date +%s) - start )) s"
pids=()
for entry in $ROWS; do
  table=${entry%%:*} rows=${entry#*:}
  [ -f "$RUNS/$table/teacher/seed0/teacher.pt" ] || { echo "$table: no teacher, its rows are skipped"; continue; }
  for seed in $(seq 0 $(( SEEDS - 1 ))); do
    for row in ${rows//,/ }; do launch "$table" "$row" "$seed" & pids+=($!); done
  done
done
[ ${#pids[@]} -eq 0 ] || wait "${pids[@]}"
echo "all runs ended after $(( $(date +%s) - start )) s"
python3 benchmarks/device/pack_runs.py "$RUNS" "$OUT/rows.tar.gz"
echo "total seconds: $(( $(date +%s) - start ))"
