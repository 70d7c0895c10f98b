#!/usr/bin/env bash
# scripts/peers.sh — an example against its PyTorch peer, over several seeds, same budget.
#
#   bash scripts/peers.sh NAME [--seeds 0,1,2] [--quick] [-- FLAGS...]
#   NAME: forecast, fashion, charrnn, words or g2p (each has examples/peers/NAME_torch.py)
#   FLAGS: given to both sides (e.g. `-- --attention none` for g2p); the default OUT then ends in the
#   flags' words (out/peers/g2p-attention-none).
#
# For each seed, runs the rewind example (build/examples/NAME --seed S) and then its peer
# (examples/peers/NAME_torch.py --seed S), one at a time, under `nice -n 19`, with one BLAS thread
# each. Logs and RESULT lines go to out/peers/NAME/ (rewind-S.log, peer-S.log, results.txt,
# times.txt); a seed whose logs already hold a RESULT line is not run again. At the end it
# prints, for every figure both sides report (keys ending in _acc, _mse or _bpc, and keys with a _per
# or _wer part: g2p's phoneme and word error rates), the median [min–max] over the seeds of each side
# and a verdict: does rewind's median reach the peer's (higher accuracy; lower MSE, bits per
# character or error rate)?
#
# Environment: REWIND_BUILD (default build) is the CMake build directory; PYTHON (default Debian's
# /usr/bin/python3) runs the peer; OUT (default out/peers/NAME) gets the files.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: bash scripts/peers.sh NAME [--seeds 0,1,2] [--quick] [-- FLAGS...]" >&2; exit 2; }
(($# >= 1)) || usage
name=$1; shift
[[ $name != -* ]] || { echo "peers: the first argument is the example's NAME, got $name" >&2; usage; }
seeds=0,1,2
quick=()
flags=()
while (($#)); do
  case $1 in
    --seeds) (($# >= 2)) || { echo "peers: --seeds needs a value" >&2; usage; }; seeds=$2; shift 2 ;;
    --quick) quick=(--quick); shift ;;
    --) shift; flags=("$@"); break ;;
    *) echo "peers: unknown argument $1" >&2; usage ;;
  esac
done
# Checked before anything is built or run (a seed "x" failed only once both sides were built).
[[ $seeds =~ ^[0-9]+(,[0-9]+)*$ ]] ||
  { echo "peers: --seeds takes non-negative integers separated by commas (0,1,2), got '$seeds'" >&2; exit 2; }

build=${REWIND_BUILD:-build}
python=${PYTHON:-/usr/bin/python3}  # Debian's, with python3-torch (not a pyenv shim)
peer=examples/peers/${name}_torch.py
suffix=""
for f in "${flags[@]}"; do suffix+="-${f#--}"; done
out=${OUT:-out/peers/$name$suffix}
[[ -f $peer ]] || { echo "peers: no peer $peer" >&2; exit 2; }
if [[ ! -d $build ]]; then cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null; fi
cmake --build "$build" -j 2 --target "$name" rewind_blas_info >/dev/null
source scripts/deps.sh
rewind_fix_openblas_core "$build"
# The peer is Debian's PyTorch: installed when missing.
if [[ -z ${PYTHON:-} ]] && ! "$python" -c "import torch, numpy" 2>/dev/null; then
  rewind_install_packages python3-torch python3-numpy
fi
mkdir -p "$out"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1  # one core per run, both sides

# run SIDE SEED CMD...: one training process, its output in $out/SIDE-SEED.log and its wall, user
# and system seconds in $out/SIDE-SEED.time. A run whose log already ends in a RESULT line is kept,
# so adding seeds later (or resuming) reruns nothing.
run() {
  local side=$1 seed=$2; shift 2
  local log=$out/$side-$seed.log
  if [[ -s $out/$side-$seed.time ]] && grep -q '^RESULT ' "$log" 2>/dev/null; then
    echo "peers: $name $side seed $seed: kept from $log" >&2
    return
  fi
  echo "peers: $name $side seed $seed: $*" >&2
  local TIMEFORMAT='%R %U %S'
  { time nice -n 19 "$@" >"$log" 2>&1; } 2>"$out/$side-$seed.time.tmp" ||
    { echo "peers: $side seed $seed failed, see $log" >&2; exit 1; }
  tail -n 1 "$out/$side-$seed.time.tmp" >"$out/$side-$seed.time" && rm "$out/$side-$seed.time.tmp"
  echo "  $side $seed: $(grep '^RESULT ' "$log" | tail -n 1)" >&2
}

IFS=, read -r -a seed_list <<<"$seeds"
for seed in "${seed_list[@]}"; do
  run rewind "$seed" "./$build/examples/$name" --seed "$seed" --out "$out/rewind-$seed" "${quick[@]}" "${flags[@]}"
  run peer "$seed" "$python" "$peer" --seed "$seed" "${quick[@]}" "${flags[@]}"
done

# results.txt: "SIDE SEED key=value ..." per run; times.txt: "SIDE SEED wall user sys".
: >"$out/results.txt"
: >"$out/times.txt"
for seed in "${seed_list[@]}"; do
  for side in rewind peer; do
    result=$(grep '^RESULT ' "$out/$side-$seed.log" | tail -n 1) ||
      { echo "peers: no RESULT line in $out/$side-$seed.log" >&2; exit 1; }
    echo "$side $seed ${result#RESULT }" >>"$out/results.txt"
    echo "$side $seed $(cat "$out/$side-$seed.time")" >>"$out/times.txt"
  done
done

# The summary: median [min–max] per side for each figure, then the verdict.
"$python" - "$name" "$out/results.txt" "$out/times.txt" <<'EOF'
import re, statistics, sys
name, results, times = sys.argv[1:]
runs = {"rewind": {}, "peer": {}}  # side -> key -> [values]
for line in open(results):
    side, seed, *fields = line.split()
    for f in fields:
        k, _, v = f.partition("=")
        try:
            runs[side].setdefault(k, []).append(float(v))
        except ValueError:
            pass
figure = re.compile(r"(_acc|_mse|_bpc)$|_(per|wer)(_|$)")
keys = [k for k in runs["rewind"] if figure.search(k) and k in runs["peer"]]
def stats(v):
    return f"{statistics.median(v):.4g} [{min(v):.4g}-{max(v):.4g}]"
print(f"\n{name}: median [min-max] over seeds")
print(f"  {'figure':<20} {'rewind':<30} {'peer':<30}")
short = []
for k in keys:
    r, p = runs["rewind"][k], runs["peer"][k]
    print(f"  {k:<20} {stats(r) + f' n={len(r)}':<30} {stats(p) + f' n={len(p)}':<30}")
    higher_better = k.endswith("_acc")
    rm, pm = (float(f"{statistics.median(v):.4g}") for v in (r, p))  # to the 4 digits both print
    if (rm < pm) if higher_better else (rm > pm):
        short.append(f"{k} ({rm:.4g} vs {pm:.4g})")
t = {"rewind": [], "peer": []}
for line in open(times):
    side, seed, wall, user, sys_ = line.split()
    t[side].append((float(wall), float(user) + float(sys_)))
for side, v in t.items():
    if v:
        print(f"  {side} per run: wall median {statistics.median(w for w, _ in v):.0f} s, "
              f"CPU median {statistics.median(c for _, c in v):.0f} s")
print(f"VERDICT {name}: " + ("rewind's median reaches the peer's on every figure" if not short
                             else "rewind's median is short of the peer's on " + ", ".join(short)))
EOF
