#!/usr/bin/env bash
# The CPU-scaled CIFAR-10 rows on a lent GPU, in one call (issues 14 and 17): every row of
# table_dfad_plus_cifar10_cpu, and KD-ORI, RANDOM and DFAD at 4x its budget (row dfad-4x) of
# table_cifar10_cpu, SEEDS seeds each, all from the committed retrained teacher
# (results/reproduce/table_cifar10_cpu_runs/teacher-retrained/seed0: no teacher is trained).
# A wrapper of table_rows.sh (launch, deadline, packing: see its header); what it adds is the
# choice of rows and teacher, and table_cifar10_cpu's DFAD row, which is the other table's run
# (same config and teacher file), copied across before the files are packed into $OUT/rows.tar.gz.
# The tables are written here afterwards from the unpacked runs with the same overrides:
#   dfad reproduce table_dfad_plus_cifar10_cpu --seeds 2 --out RUNS --results results/reproduce device=cuda
#
# On the device, from the repository root (the tarball travels in an ignored, carried folder):
#   mkdir -p .device && cp ../shared/data/cifar10-jpeg.tar.gz .device/ && echo /.device/ >> .git/info/exclude
#   run(command="DATA_TAR=.device/cifar10-jpeg.tar.gz bash benchmarks/device/cifar10_cpu_rows.sh", carry=[".device"])
# KEY=VALUE arguments go to every run (default: device=cuda); FOUR_X=0 leaves out the 4x row. CPU
# dry run of the plumbing (BUDGET sets every row's iterations, the 4x row's too):
#   BUDGET=2 SEEDS=1 ROWS_PLUS=dfad,kl ROWS_TABLE=random DATA=/tmp/dfad-data bash benchmarks/device/cifar10_cpu_rows.sh device=cpu
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
teacher="$here/../../results/reproduce/table_cifar10_cpu_runs/teacher-retrained/seed0"
rows_table=${ROWS_TABLE-kd-ori,random}
[ "${FOUR_X:-1}" = 1 ] && rows_table="${rows_table:+$rows_table,}dfad-4x"
export TEACHER_FROM="table_dfad_plus_cifar10_cpu:$teacher table_cifar10_cpu:$teacher"
export ROWS="table_dfad_plus_cifar10_cpu:${ROWS_PLUS-dfad,bn-prior,generator-ema,replay,kl,augment,student-ema,combination} table_cifar10_cpu:$rows_table"
bash "$here/table_rows.sh" "$@"
RUNS=${RUNS:-/tmp/dfad-rows} OUT=${OUT:-/tmp/dfad-rows-out}
label=$([ -n "${BUDGET:-}" ] && echo "budget-$BUDGET" || echo paper-budget)
if [ -d "$RUNS/table_dfad_plus_cifar10_cpu/$label/dfad" ]; then
  mkdir -p "$RUNS/table_cifar10_cpu/$label" && cp -rn "$RUNS/table_dfad_plus_cifar10_cpu/$label/dfad" "$RUNS/table_cifar10_cpu/$label/"
  python3 "$here/pack_runs.py" "$RUNS" "$OUT/rows.tar.gz" >> "$OUT/rows.log"
fi
