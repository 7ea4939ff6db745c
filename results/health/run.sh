#!/usr/bin/env bash
# Health signal beside real accuracy: MNIST and Fashion-MNIST, LeNet-5 teachers (authors' recipe),
# DFAD with the mnist_fast recipe and the test split for validation.
set -euo pipefail
DATA=/tmp/dfad-data
OUT=/tmp/hx
dfad train-teacher --config mnist --data-root $DATA --out $OUT/mnist-teacher --quiet threads=2
dfad distill --config mnist_fast --data-root $DATA --teacher $OUT/mnist-teacher/teacher.pt --out $OUT/mnist-dfad --quiet threads=2
dfad train-teacher --config mnist --data-root $DATA --out $OUT/fmnist-teacher --quiet threads=2 data.name=fashion_mnist data.mean=null data.std=null
dfad distill --config mnist_fast --data-root $DATA --teacher $OUT/fmnist-teacher/teacher.pt --out $OUT/fmnist-dfad --quiet threads=2 data.name=fashion_mnist data.mean=null data.std=null
