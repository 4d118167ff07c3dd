#!/usr/bin/env bash
# Distributed training on one or more nodes with torchrun.
#
#   tools/dist_train.sh CONFIG GPUS [train.py args...]
#
# GPUS is the number of processes per node (on a CPU-only machine: worker
# processes; tools/train.py then switches to gloo by itself). Multi-node:
# NNODES, NODE_RANK, MASTER_ADDR and PORT as for OpenMMLab's scripts.
# PYTHON selects the interpreter (default: python).
set -e

CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
