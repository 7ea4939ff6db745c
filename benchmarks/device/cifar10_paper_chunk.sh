#!/usr/bin/env bash
# The paper's CIFAR-10 row as one GPU chunk (kept for the command in results/cifar10_paper_gpu_chunk).
# Usage: DATA_TAR=path/to/cifar10-jpeg.tar.gz bash benchmarks/device/cifar10_paper_chunk.sh [KEY=VALUE ...]
CONFIG=cifar10 DATA_SUBDIR=cifar10-jpeg exec bash "$(dirname "${BASH_SOURCE[0]}")/paper_chunk.sh" "$@"
