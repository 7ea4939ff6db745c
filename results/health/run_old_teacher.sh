#!/usr/bin/env bash
# Same mnist_fast DFAD, teacher trained with dfad's earlier MNIST teacher recipe (20 epochs, cosine).
set -euo pipefail
DATA=/tmp/dfad-data
OUT=/tmp/hx
dfad train-teacher --config mnist --data-root $DATA --out $OUT/mnist-teacher-old --quiet threads=2 teacher.iterations=4700 teacher.val_every=470 "teacher.schedule={name: cosine}"
while pgrep -f "fmnist-dfad" > /dev/null || pgrep -f "fmnist-teacher" > /dev/null; do sleep 5; done
dfad distill --config mnist_fast --data-root $DATA --teacher $OUT/mnist-teacher-old/teacher.pt --out $OUT/mnist-dfad-old-teacher --quiet threads=2
