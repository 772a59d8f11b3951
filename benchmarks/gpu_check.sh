#!/usr/bin/env bash
# The prepared GPU check: one command for a lent CUDA machine (torch, triton and PyG already
# installed, no internet), sized to fit a short lease.  Run from the repository root:
#
#     bash benchmarks/gpu_check.sh [OUT_DIR] [BUDGET_S]
#
# OUT_DIR (default $OUT, else benchmarks/results/gpu_check) receives gpu_check.log (everything
# printed, step by step, with each step's exit status and seconds) and gpu_check.tar.gz (the JSON,
# Markdown and PNG results); BUDGET_S (default 540) is the wall-clock budget of all steps together.
# Each step gets a timeout inside what is left and writes its own result files, so a step cut
# short loses only itself.  Steps, in order of importance:
#
#   1. install gnnkit offline:        pip install --no-deps --no-build-isolation -e .
#   2. the kernels on the GPU:        pytest tests/test_kernels_cuda.py
#   3. compiled vs eager layers:      benchmarks/layers_compile.py --device cuda (N = 200k, E = 2M)
#   4. where a compiled step goes:    benchmarks/compile_profile.py --device cuda (GCN, same graph);
#      the same under CUDA graphs:    benchmarks/layers_compile.py --mode reduce-overhead (four layers);
#      what one op call costs:        benchmarks/op_dispatch.py --device cuda
#      beside the peers:              benchmarks/compile_peers.py --device cuda (Linear, PyG's and gnnkit's layers)
#   5. kernel speed, small graphs:    benchmarks/kernels.py --device cuda --graphs Cora [ogbl-ddi]
#   6. kernel speed, arxiv-like:      benchmarks/kernels.py --device cuda --graphs arxiv-like
#   7. input-order per-edge ops:      benchmarks/edge_order_backward.py, benchmarks/segment_input_order.py
#   8. products-like (123M edges):    benchmarks/kernels.py --device cuda --graphs products-like
#
# ogbl-ddi is read from $GNNKIT_DATA, or from .gpudata/ in the repository when that exists:
# ../shared/datasets does not travel to the device machine, so copy it first (28 MB; the folder is
# git-ignored) and name .gpudata in the device tool's carry:
#
#     mkdir -p .gpudata/ogb && cp -r ../shared/datasets/ogb/ogbl_ddi .gpudata/ogb/
set -u
OUT_DIR=${1:-${OUT:-benchmarks/results/gpu_check}}
BUDGET=${2:-540}
case "$BUDGET" in
  ''|*[!0-9]*) echo "gpu_check.sh: BUDGET_S (the second argument) must be a whole number of seconds, got '$BUDGET'" >&2
              exit 2 ;;
esac
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
RES="$OUT_DIR/results"
mkdir -p "$RES"
LOG="$OUT_DIR/gpu_check.log"
: > "$LOG"
export PYTHONUNBUFFERED=1
if [ -z "${GNNKIT_DATA:-}" ] && [ -d .gpudata ]; then
  export GNNKIT_DATA="$PWD/.gpudata"
  [ -d .gpudata/planetoid ] || cp -r datasets/planetoid .gpudata/  # the bundled Cora, where GNNKIT_DATA looks
fi
PY=${PYTHON:-python3}
START=$SECONDS

step() {  # step NAME MAX_S CMD...: run CMD with a timeout inside the budget left, log it all
  local name=$1 max=$2
  shift 2
  local left=$((BUDGET - (SECONDS - START)))
  if [ "$left" -lt 20 ]; then
    echo "== $name: skipped, ${left}s of the budget left" | tee -a "$LOG"
    return 0
  fi
  local t=$((max < left ? max : left))
  echo "== $name (timeout ${t}s): $*" | tee -a "$LOG"
  local t0=$SECONDS
  timeout "$t" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc after $((SECONDS - t0))s" | tee -a "$LOG"
  return 0
}

{
  echo "== environment"
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "nvidia-smi: not found"
  "$PY" -c "import torch, triton, torch_geometric as g; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'available', torch.cuda.is_available(), '| triton', triton.__version__, '| pyg', g.__version__)" 2>&1
  echo "GNNKIT_DATA=${GNNKIT_DATA:-unset}"
} | tee -a "$LOG"

step install 180 "$PY" -m pip install -q --no-deps --no-build-isolation -e .
step test_kernels_cuda 240 "$PY" -m pytest -q -p no:cacheprovider tests/test_kernels_cuda.py
step layers_compile 180 "$PY" benchmarks/layers_compile.py --device cuda --nodes 200000 --edges 2000000 --budget-s 5
cp benchmarks/results/layers_compile_cuda.json "$RES/" 2>/dev/null || true
step compile_profile 90 "$PY" benchmarks/compile_profile.py --device cuda --layer GCNConv --nodes 200000 \
  --edges 2000000 --out "$RES/compile_profile_gcn_cuda.json"
step layers_compile_cudagraphs 120 "$PY" benchmarks/layers_compile.py --device cuda --nodes 200000 --edges 2000000 \
  --budget-s 3 --only GCNConv,SAGEConv,GINConv,GATConv --mode reduce-overhead
cp benchmarks/results/layers_compile_cuda_reduce-overhead.json "$RES/" 2>/dev/null || true
step op_dispatch 40 "$PY" benchmarks/op_dispatch.py --device cuda --out "$RES/op_dispatch_cuda.json"
step compile_peers 120 "$PY" benchmarks/compile_peers.py --device cuda --nodes 200000 --edges 2000000 --budget-s 3 \
  --out "$RES/compile_peers_cuda.json"
SMALL="Cora"
if [ -n "${GNNKIT_DATA:-}" ] && [ -d "$GNNKIT_DATA/ogb/ogbl_ddi" ]; then SMALL="Cora ogbl-ddi"; fi
# shellcheck disable=SC2086
step kernels_small 150 "$PY" benchmarks/kernels.py --device cuda --graphs $SMALL --train-graphs --out-dir "$RES" \
  --tag cuda_small
step kernels_arxiv 150 "$PY" benchmarks/kernels.py --device cuda --graphs arxiv-like --train-graphs --no-vq \
  --out-dir "$RES" --tag cuda_arxiv
step edge_order 60 "$PY" benchmarks/edge_order_backward.py --device cuda
step segment_input_order 60 "$PY" benchmarks/segment_input_order.py --device cuda
cp benchmarks/results/edge_order_backward_cuda.json benchmarks/results/segment_input_order_cuda.json "$RES/" \
  2>/dev/null || true
step kernels_products 300 "$PY" benchmarks/kernels.py --device cuda --graphs products-like --no-vq --out-dir "$RES" \
  --tag cuda_products

tar -czf "$OUT_DIR/gpu_check.tar.gz" -C "$RES" . 2>>"$LOG"
rm -rf "$RES"
echo "== done after $((SECONDS - START))s; results: $OUT_DIR/gpu_check.tar.gz, log: $LOG" | tee -a "$LOG"
