#!/usr/bin/env bash
# Distill one foreign teacher with the own_model defaults (the commands behind runs/v1-*, v3-*).
#   results/foreign/run_foreign.sh TEACHER_NAME STUDENT OUT_TAG [--set KEY=VALUE ...]
# STUDENT "default": the preset's student.
# Teachers and their facts files in /tmp/foreign (train_teachers.py --out /tmp/foreign); the run
# goes to /tmp/fx/OUT_TAG-TEACHER_NAME, and the same command resumes an unfinished run there.
# Example: results/foreign/run_foreign.sh vggbn_mnist default v3
set -euo pipefail
name=$1; student=$2; tag=$3; shift 3
chosen=(); [ "$student" = default ] || chosen=(--student "$student")
facts=/tmp/foreign/$name.json
field() { python -c "import json,sys; v=json.load(open('$facts'))[sys.argv[1]]; print(' '.join(map(str, v)) if isinstance(v, list) else v)" "$1"; }
size=$(python -c "import json; print(json.load(open('$facts'))['input_shape'][1])")
python results/foreign/distill_teacher.py /tmp/foreign/$(field file) --dataset $(field dataset) --size $size \
    --mean $(field mean) --std $(field std) "${chosen[@]}" --out /tmp/fx/$tag-$name --threads 1 "$@"
