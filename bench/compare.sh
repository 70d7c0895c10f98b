#!/usr/bin/env bash
# bench/compare.sh — rewind next to PyTorch, in the same run: for every case and thread count (1, 2),
# one fresh rewind_bench process then one fresh torch_peer.py process (the order alternates from one
# measurement to the next), both started from the same weights and data (torch_peer.py --dump, loaded
# by rewind_bench --init), and one line per case and thread count:
#
#   case=<name> threads=<n> rewind_ms=<median> torch_ms=<median> speedup=<torch/rewind>
#     floor_frac=<floor/rewind> rewind_rss_mib=<x> torch_rss_mib=<y> rewind_loss0=<l> torch_loss0=<l>
#
# floor = GEMM FLOPs of one training step (one epoch for sine_epoch) / (SGEMM_GFLOPS per core × threads).
# The FLOPs are computed here (gemm_flops below), with the model of ../shared/bench/flops.py: only
# matrix products, forward + backward, no dx for the first layer's data. SGEMM_GFLOPS defaults to one
# core's sgemm rate measured at the start (rewind_bench --sgemm-peak: a 1024³ product, best of 7).
#
# Usage: bench/compare.sh [--bench PATH] [--baseline PATH] [--cases a,b] [--threads 1,2] [--steps N]
#                         [--rounds N] [--raw] [--markdown FILE]
#   --bench   rewind_bench (default: build-bench/rewind_bench, else build/rewind_bench, under the project)
#   --steps N caps the timed steps of each case (both sides); warm-ups stay as they are
#   --raw     also print each side's own key=value line
#   --rounds N  measure each case and thread count N times (fresh processes, the order alternating) and
#             report the median of the N medians, with their range (rewind_range, torch_range): on a
#             shared machine one process can land in a slow spell (seen here at 2 threads)
#   --markdown FILE  also write the lines as a Markdown table to FILE (for the README)
#   --baseline PATH  an older rewind_bench (a build of an earlier commit) measured in the same run,
#             its turn rotating with the others: adds baseline_ms, vs_baseline (= baseline / rewind:
#             above 1 when the new tree is faster), baseline_rss_mib and baseline_loss0
# The peer is Debian's python3-torch (/usr/bin/python3), installed when missing; if that fails it says
# so and prints the rewind side only (rewind then starts from its own weights and data).
# TORCH_PEER_PYTHON overrides the interpreter. When OpenBLAS would run generic kernels on this CPU,
# OPENBLAS_CORETYPE is set for both sides (scripts/deps.sh: rewind_fix_openblas_core).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bench=""
baseline=""
cases="tiny,lstm_medium,gru_medium,rnn_medium,lstm_large,bilstm_medium,sine_epoch"
threads="1,2"
steps=""
raw=0
markdown=""
rounds=1
# An option's value, or a message naming the option and exit 2 (not bash's "$2: unbound variable").
value() { [[ $# -ge 2 ]] || { echo "compare.sh: $1 needs a value" >&2; exit 2; }; printf '%s' "$2"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bench) bench=$(value "$@"); shift 2 ;;
    --baseline) baseline=$(value "$@"); shift 2 ;;
    --cases) cases=$(value "$@"); shift 2 ;;
    --threads) threads=$(value "$@"); shift 2 ;;
    --steps) steps=$(value "$@"); shift 2 ;;
    --raw) raw=1; shift ;;
    --markdown) markdown=$(value "$@"); shift 2 ;;
    --rounds) rounds=$(value "$@"); shift 2 ;;
    -h|--help) sed -n 2,20p "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
# Checked before anything runs: a --rounds 0 printed lines with no figures in them, a --threads x was
# read as 1 by rewind_bench and as an error by the peer, after the minute the sgemm peak and the
# peer's weights take.
positive='^[1-9][0-9]*$'
[[ $rounds =~ $positive ]] || { echo "compare.sh: --rounds takes a positive integer, got '$rounds'" >&2; exit 2; }
[[ -z $steps || $steps =~ $positive ]] || { echo "compare.sh: --steps takes a positive integer, got '$steps'" >&2; exit 2; }
[[ $threads =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] ||
  { echo "compare.sh: --threads takes positive integers separated by commas (1,2), got '$threads'" >&2; exit 2; }
[[ $cases =~ ^[A-Za-z0-9_]+(,[A-Za-z0-9_]+)*$ ]] ||
  { echo "compare.sh: --cases takes case names separated by commas (tiny,lstm_medium), got '$cases'" >&2; exit 2; }
# The table is written at the end: a path that cannot be written fails now, not after the whole run.
if [[ -n $markdown ]] && ! { : >>"$markdown"; } 2>/dev/null; then
  echo "compare.sh: --markdown: cannot write $markdown" >&2; exit 2
fi
if [[ -n "$baseline" && ! -x "$baseline" ]]; then echo "no baseline rewind_bench at $baseline" >&2; exit 2; fi
if [[ -z "$bench" ]]; then
  for b in "$root/build-bench/rewind_bench" "$root/build/rewind_bench"; do
    [[ -x "$b" ]] && { bench=$b; break; }
  done
fi
[[ -x "$bench" ]] || { echo "no rewind_bench (build it, or pass --bench PATH)" >&2; exit 2; }

# OpenBLAS's kernels for this CPU, for both sides (rewind_bench would restart itself anyway; the
# peer's PyTorch reads the same variable).
source "$root/scripts/deps.sh"
rewind_fix_openblas_core "$(dirname "$bench")"
# One core's sgemm rate, for the GEMM floor (with the kernels just chosen).
sgemm=${SGEMM_GFLOPS:-$({ OPENBLAS_NUM_THREADS=1 "$bench" --sgemm-peak 2>/dev/null || true; } | sed -n 's/^sgemm_peak_gflops=\([0-9.]*\).*/\1/p')}
[[ -n $sgemm ]] || sgemm=130  # an older rewind_bench without --sgemm-peak

PY=${TORCH_PEER_PYTHON:-$( [[ -x /usr/bin/python3 ]] && echo /usr/bin/python3 || command -p -v python3 || true)}
# The peer is Debian's PyTorch: installed when missing (as for every other dependency of the scripts).
if [[ -z ${TORCH_PEER_PYTHON:-} ]] && ! "$PY" -c "import torch, numpy" 2>/dev/null && command -v dpkg-query >/dev/null; then
  rewind_install_packages python3-torch python3-numpy || echo "# could not install python3-torch" >&2
  PY=/usr/bin/python3
fi
have_torch=0
if [[ -n "$PY" ]] && "$PY" -c "import torch, numpy" 2>/dev/null; then
  have_torch=1
else
  echo "# PyTorch is not available to Debian's python3 ($PY): printing the rewind side only"
fi

init=$(mktemp -d)
trap 'rm -rf "$init"' EXIT
init_args=()
if [[ $have_torch == 1 ]]; then
  "$PY" "$here/torch_peer.py" --cases "$cases" --dump "$init" >/dev/null
  init_args=(--init "$init")
fi
step_args=()
[[ -n "$steps" ]] && step_args=(--steps "$steps")

# GEMM FLOPs of one training step (× batches per epoch for sine_epoch): cell input hidden layers batch seq last
gemm_flops() {
  awk -v cell="$1" -v I="$2" -v H="$3" -v L="$4" -v B="$5" -v T="$6" -v last="$7" -v batches="$8" 'BEGIN {
    g = (cell == "lstm") ? 4 : (cell == "gru") ? 3 : 1; G = g * H; tout = last ? 1 : T
    f = 0
    for (l = 0; l < L; l++) {
      in_ = (l == 0) ? I : H
      f += 2*T*B*G*in_ + 2*T*B*G*H                    # forward: input projection + recurrence
      f += 2*T*B*G*in_ + 2*T*B*G*H + 2*T*B*G*H        # backward: dW_ih, dW_hh, dh
      if (l > 0) f += 2*T*B*G*in_                     # dx into the layer below
    }
    f += 2*tout*B*H + 4*tout*B*H                      # head forward, dW and dh
    printf "%.6g", f * batches }'
}
case_flops() {
  case "$1" in
    tiny)        gemm_flops rnn 2 5 1 1 3 1 1 ;;
    lstm_medium) gemm_flops lstm 32 256 1 64 50 0 1 ;;
    gru_medium)  gemm_flops gru 32 256 1 64 50 0 1 ;;
    rnn_medium)  gemm_flops rnn 32 256 1 64 50 0 1 ;;
    lstm_large)  gemm_flops lstm 128 512 1 64 100 0 1 ;;
    bilstm_medium) awk -v f="$(gemm_flops lstm 32 256 1 64 50 0 1)" 'BEGIN { printf "%.6g", 2 * f }' ;;  # two directions; two heads of H = one of 2·H
    sine_epoch)  gemm_flops rnn 1 20 2 32 50 1 "$(awk 'BEGIN { print 7000 / 32 }')" ;;
    *) echo 0 ;;
  esac
}
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -1; }

run_rewind() { OPENBLAS_NUM_THREADS=$2 "$bench" --cases "$1" --threads "$2" "${init_args[@]}" "${step_args[@]}"; }
run_baseline() { OPENBLAS_NUM_THREADS=$2 "$baseline" --cases "$1" --threads "$2" "${init_args[@]}" "${step_args[@]}"; }
run_torch() { "$PY" "$here/torch_peer.py" --cases "$1" --threads "$2" "${step_args[@]}"; }

header="# compare.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) bench=$bench baseline=${baseline:-none} sgemm_gflops_per_core=$sgemm torch=$have_torch steps=${steps:-default}"
echo "$header"
lines=()
k=0
IFS=, read -ra case_list <<<"$cases"
IFS=, read -ra thread_list <<<"$threads"
median_of() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
range_of() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "-" hi }'; }
for c in "${case_list[@]}"; do
  for n in "${thread_list[@]}"; do
    rs=""; ts=""; bs=""; r=""; t=""; b=""
    for ((round = 0; round < rounds; round++)); do
      rr=""; tt=""; bb=""
      if [[ $have_torch == 1 && $((k % 2)) == 1 ]]; then tt=$(run_torch "$c" "$n"); fi
      if [[ -n "$baseline" && $((k % 2)) == 1 ]]; then bb=$(run_baseline "$c" "$n"); fi
      rr=$(run_rewind "$c" "$n")
      if [[ -n "$baseline" && $((k % 2)) == 0 ]]; then bb=$(run_baseline "$c" "$n"); fi
      if [[ $have_torch == 1 && $((k % 2)) == 0 ]]; then tt=$(run_torch "$c" "$n"); fi
      k=$((k + 1))
      if [[ $raw == 1 ]]; then echo "# $rr"; [[ -n "$tt" ]] && echo "# $tt"; [[ -n "$bb" ]] && echo "# baseline: $bb"; fi
      r=$rr; t=$tt; b=$bb
      rs+=" $(field "$rr" median_ms)"
      [[ -n "$tt" ]] && ts+=" $(field "$tt" median_ms)"
      [[ -n "$bb" ]] && bs+=" $(field "$bb" median_ms)"
    done
    rms=$(median_of <<<"$rs")
    floor_ms=$(awk -v f="$(case_flops "$c")" -v g="$sgemm" -v n="$n" 'BEGIN { printf "%.6g", f / (g * n * 1e9) * 1e3 }')
    line="case=$c threads=$n rewind_ms=$rms"
    if [[ -n "$t" ]]; then
      tms=$(median_of <<<"$ts")
      line+=" torch_ms=$tms speedup=$(awk -v a="$tms" -v b="$rms" 'BEGIN { printf "%.3f", a / b }')"
    else
      line+=" torch_ms=NA speedup=NA"
    fi
    line+=" floor_frac=$(awk -v a="$floor_ms" -v b="$rms" 'BEGIN { printf "%.3g", a / b }') floor_ms=$floor_ms"
    line+=" rewind_rss_mib=$(field "$r" peak_rss_mib) torch_rss_mib=$([[ -n "$t" ]] && field "$t" peak_rss_mib || echo NA)"
    line+=" rewind_loss0=$(field "$r" loss0) torch_loss0=$([[ -n "$t" ]] && field "$t" loss0 || echo NA)"
    if [[ -n "$b" ]]; then
      bms=$(median_of <<<"$bs")
      line+=" baseline_ms=$bms vs_baseline=$(awk -v a="$bms" -v b="$rms" 'BEGIN { printf "%.3f", a / b }')"
      line+=" baseline_rss_mib=$(field "$b" peak_rss_mib) baseline_loss0=$(field "$b" loss0)"
    fi
    if ((rounds > 1)); then
      line+=" rounds=$rounds rewind_range=$(range_of <<<"$rs") torch_range=$([[ -n "$t" ]] && range_of <<<"$ts" || echo NA)"
      [[ -n "$b" ]] && line+=" baseline_range=$(range_of <<<"$bs")"
    fi
    echo "$line"
    lines+=("$line")
  done
done

if [[ -n "$markdown" ]]; then
  {
    echo "| case | threads | rewind ms | PyTorch ms | speedup | GEMM-floor fraction | rewind peak RSS MiB | PyTorch peak RSS MiB | first loss rewind / PyTorch |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    for l in "${lines[@]}"; do
      rms=$(field "$l" rewind_ms); tms=$(field "$l" torch_ms)
      if ((rounds > 1)); then rms+=" [$(field "$l" rewind_range)]"; tms+=" [$(field "$l" torch_range)]"; fi
      printf '| %s | %s | %s | %s | %s× | %s | %s | %s | %s / %s |\n' "$(field "$l" case)" "$(field "$l" threads)" \
        "$rms" "$tms" "$(field "$l" speedup)" "$(field "$l" floor_frac)" \
        "$(field "$l" rewind_rss_mib)" "$(field "$l" torch_rss_mib)" "$(field "$l" rewind_loss0)" "$(field "$l" torch_loss0)"
    done
  } >"$markdown"
fi
