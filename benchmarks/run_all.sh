#!/usr/bin/env bash
# Run every benchmark on this machine and file the results:
#   benchmarks/results/<kind>-<date>.json and .md   (kind: "cpu" or "gpu-<device name>")
#   benchmarks/results/SUMMARY.md                   (all result files side by side)
#
# usage: benchmarks/run_all.sh [--device auto|cpu|cuda] [--threads N] [--quick] [--precision fp32|bf16]
#                              [--no-training] [--no-dryrun] [--no-kmeans] [--no-simclr]
#                              [other bench_training.py options, e.g. --only dec_epoch_aug,brb_step]
# Benchmarks: bench_training.py, bench_dryrun.py, bench_kmeans.py, bench_simclr.py (each --no-<name> skips it).
# --device/--threads/--quick go to all torch benchmarks; --precision to bench_training.py and bench_simclr.py
# (unset: fp32 for training, the device default for SimCLR: bf16 on cuda, fp32 on cpu).
# env:   PYTHON (default .venv/bin/python, else python3), BENCH_RESULTS_DIR (default benchmarks/results;
#        quick checks go to benchmarks/results/quick/ so they never mix with real measurements)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
INVOCATION="benchmarks/run_all.sh $*"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi

DEVICE=auto
THREADS=2
QUICK=()
EXTRA=()
PRECISION=()
DRYRUN=1
TRAINING=1
KMEANS=1
SIMCLR=1
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE="$2"; shift 2 ;;
        --device=*) DEVICE="${1#*=}"; shift ;;
        --threads) THREADS="$2"; shift 2 ;;
        --threads=*) THREADS="${1#*=}"; shift ;;
        --quick) QUICK=(--quick); shift ;;
        --precision) PRECISION=(--precision "$2"); shift 2 ;;
        --precision=*) PRECISION=(--precision "${1#*=}"); shift ;;
        --no-dryrun) DRYRUN=0; shift ;;
        --no-training) TRAINING=0; shift ;;
        --no-kmeans) KMEANS=0; shift ;;
        --no-simclr) SIMCLR=0; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) EXTRA+=("$1"); shift ;;
    esac
done

DEFAULT_RESULTS=benchmarks/results
[ ${#QUICK[@]} -gt 0 ] && DEFAULT_RESULTS=benchmarks/results/quick
RESULTS="${BENCH_RESULTS_DIR:-$DEFAULT_RESULTS}"
mkdir -p "$RESULTS"

KIND="$("$PY" - "$DEVICE" <<'EOF'
import re, sys
import torch
from brb.runtime import resolve_device
d = resolve_device(sys.argv[1])
if d.type == "cuda":
    print("gpu-" + re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(d).lower()).strip("-"))
else:
    print("cpu")
EOF
)"
# an explicit --precision is part of the name (cpu-bf16-...), as it changes what is measured
[ ${#PRECISION[@]} -gt 0 ] && KIND="${KIND}-${PRECISION[1]}"
NAME="${KIND}-$(date +%Y-%m-%d-%H%M)"
[ ${#QUICK[@]} -gt 0 ] && NAME="${NAME}-quick"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
COMMANDS=(--command "$INVOCATION")

if [ "$TRAINING" = 1 ]; then
    CMD=("$PY" benchmarks/bench_training.py --device "$DEVICE" --threads "$THREADS"
         ${QUICK[@]+"${QUICK[@]}"} ${PRECISION[@]+"${PRECISION[@]}"} ${EXTRA[@]+"${EXTRA[@]}"})
    echo "+ ${CMD[*]}" >&2
    "${CMD[@]}" --out-json "$TMP/training.json" --out-md "$TMP/training.md" > "$TMP/training.stdout.json"
    COMMANDS+=(--command "${CMD[*]}")
fi

if [ "$DRYRUN" = 1 ]; then
    CMD=("$PY" benchmarks/bench_dryrun.py ${QUICK[@]+"${QUICK[@]}"})
    echo "+ ${CMD[*]}" >&2
    "${CMD[@]}" --out-json "$TMP/dryrun.json" --out-md "$TMP/dryrun.md" > "$TMP/dryrun.stdout.json"
    COMMANDS+=(--command "${CMD[*]}")
fi

if [ "$KMEANS" = 1 ]; then
    CMD=("$PY" benchmarks/bench_kmeans.py --device "$DEVICE" --threads "$THREADS" ${QUICK[@]+"${QUICK[@]}"})
    echo "+ ${CMD[*]}" >&2
    "${CMD[@]}" --out-json "$TMP/kmeans.json" --out-md "$TMP/kmeans.md" > "$TMP/kmeans.stdout.json"
    COMMANDS+=(--command "${CMD[*]}")
fi

if [ "$SIMCLR" = 1 ]; then
    CMD=("$PY" benchmarks/bench_simclr.py --device "$DEVICE" --threads "$THREADS"
         ${QUICK[@]+"${QUICK[@]}"} ${PRECISION[@]+"${PRECISION[@]}"})
    echo "+ ${CMD[*]}" >&2
    "${CMD[@]}" --out-json "$TMP/simclr.json" --out-md "$TMP/simclr.md" > "$TMP/simclr.stdout.json"
    COMMANDS+=(--command "${CMD[*]}")
fi

PARTS=()
for B in training dryrun kmeans simclr; do
    PARTS+=(--"$B" "$TMP/$B.json" --"$B"-md "$TMP/$B.md")
done
"$PY" benchmarks/summarize.py combine --kind "$KIND" --name "$NAME" "${PARTS[@]}" \
    "${COMMANDS[@]}" --out-json "$RESULTS/$NAME.json" --out-md "$RESULTS/$NAME.md"
SUMMARY_ARGS=()
[ ${#QUICK[@]} -gt 0 ] && SUMMARY_ARGS=(--include-quick)
"$PY" benchmarks/summarize.py summary --results-dir "$RESULTS" --out "$RESULTS/SUMMARY.md" \
    ${SUMMARY_ARGS[@]+"${SUMMARY_ARGS[@]}"}
echo "results: $RESULTS/$NAME.json, $RESULTS/$NAME.md, $RESULTS/SUMMARY.md" >&2
