#!/usr/bin/env bash
# bench/device_probe.sh — the profile half of a run on the 16-core benchmark machine (../shared/device/),
# which has no perf and no Debian packages: where rewind's training step spends its time there, and how
# each way of running a recurrent step's products scales.
#
# Prepared here by the kit itself (its rewind_bench is all this needs):
#   bash ../shared/device/prepare.sh
# and run there, with .device carried, after `bash .device/run.sh` (the peers' table):
#   bash bench/device_probe.sh                 (THREADS="1 4 16" CASES=… may be set in front)
# It prints, for each N, pinned to cores 0..N-1 like the kit:
#   - `rewind_bench --profile`: each case's line, then its "profile … phase=…" lines (zero_grad,
#     forward, backward, optimizer, step: wall time, products, split loops, the rest;
#     bench/rewind_bench.cpp);
#   - `rewind_bench --gemm-threads` (N ≥ 2): lstm_medium's and lstm_large's step products on
#     OpenBLAS's one thread, on its N threads, and split on rewind's pool (bench/gemm_threads.hpp);
#   - `rewind_bench --loop-threads` (N ≥ 2): one element-wise loop (add, tanh) of a step's sizes on 1
#     thread and split on N — the pool's hand-off and join against the work (bench/loop_threads.hpp);
#   - lstm_medium and lstm_large again with `--no-packed` (their recurrent products on OpenBLAS, as
#     before packed weights: core/blas.hpp), for the packed kernel's gain on that CPU.
# About three minutes at the default THREADS and CASES. Writes $OUT/device_probe.log too.
set -u
# Settings come from the environment; an argument (`--threads 4`) was ignored and the defaults ran.
(($# == 0)) || { echo "device_probe: takes no arguments (set THREADS=\"1 4\" CASES=a,b in front), got: $*" >&2; exit 2; }
[[ ${THREADS:-1} =~ ^[1-9][0-9]*( +[1-9][0-9]*)*$ ]] ||
  { echo "device_probe: THREADS takes positive counts separated by spaces (\"1 4 16\"), got '${THREADS}'" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
dev=$root/.device
[ -x "$dev/rewind_bench" ] || { echo "device_probe: no $dev/rewind_bench (carry .device)" >&2; exit 1; }
THREADS=${THREADS:-"1 4 16"}
CASES=${CASES:-lstm_medium,gru_medium,rnn_medium,lstm_large}
export LD_LIBRARY_PATH=$dev/lib
log=${OUT:-/tmp}/device_probe.log
{
  echo "host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
  for n in $THREADS; do
    cores="0-$((n - 1))"
    timeout 150 taskset -c "$cores" "$dev/rewind_bench" --cases "$CASES" --threads "$n" --profile 2>&1 |
      grep -E "^(case|profile) ?|rror|OPENBLAS"
    [ "$n" -ge 2 ] && timeout 90 taskset -c "$cores" "$dev/rewind_bench" --gemm-threads --threads "$n" 2>&1
    [ "$n" -ge 2 ] && timeout 30 taskset -c "$cores" "$dev/rewind_bench" --loop-threads --threads "$n" 2>&1
    timeout 90 taskset -c "$cores" "$dev/rewind_bench" --cases lstm_medium,lstm_large --threads "$n" --no-packed 2>&1 |
      grep -E "^case|rror"
  done
} 2>&1 | tee "$log"
