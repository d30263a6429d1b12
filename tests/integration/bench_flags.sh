#!/bin/sh
# The speed benches' flags (bench_train_gpt, bench_gpt2_cuda,
# bench_attention_cpu): bad values
# refused with the flag named and exit status 2; bench_train_gpt's --python
# that cannot import torch, or no bench/torch_gpt.py to run, refused with
# status 1 instead of a silent Tyr-only run; bench_train_gpt --no-torch from
# the repository root times the small preset and prints its row.
set -eu
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$src"

refused() { # expected exit status, expected substring, then the flags
  want_rc=$1 want=$2
  shift 2
  bin=${use:-$build/bench/bench_train_gpt}
  rc=0
  "$bin" "$@" >"$tmp/o.log" 2>"$tmp/e.log" || rc=$?
  [ "$rc" = "$want_rc" ] || { echo "FAIL: '$*' exited $rc, not $want_rc"; cat "$tmp/e.log"; exit 1; }
  grep -q -F -- "$want" "$tmp/e.log" || { echo "FAIL: '$*': no '$want' in:"; cat "$tmp/e.log"; exit 1; }
  echo "ok: '$*' -> $(head -n 1 "$tmp/e.log")"
}
refused 2 "--steps x" --steps x
refused 2 "--steps 0" --steps 0
refused 2 "--threads -1" --threads -1
refused 2 "--preset bogus" --preset bogus
refused 2 "--bogus" --bogus
refused 1 "--python $tmp/none" --python "$tmp/none" --steps 1 --preset shakespeare_cpu
(cd "$tmp" && refused 1 "bench/torch_gpt.py" --python /bin/sh --steps 1 --preset shakespeare_cpu)

use=$build/bench/bench_gpt2_cuda # flags are checked before it looks for a GPU
refused 2 "--steps x" --steps x
refused 2 "--batch 0" --batch 0
refused 2 "--mode bogus" --mode bogus
refused 2 "--only bogus" --only bogus
refused 2 "--bogus" --bogus
use=

use=$build/bench/bench_attention_cpu
refused 2 "--reps 0" --reps 0
refused 2 "--preset bogus" --preset bogus
refused 2 "--batch, --seq, --heads and --head-dim go together" --batch 4
refused 1 "failed (PyTorch missing?)" --python "$tmp/none" --preset shakespeare_cpu --reps 1
(cd "$tmp" && refused 1 "bench/torch_sdpa_cpu.py" --python /bin/sh --reps 1)
"$use" --no-torch --reps 2 --threads 2 --batch 2 --seq 40 --heads 2 --head-dim 24 >"$tmp/attn.log"
row=$(awk '$1 == "custom" && $6 > 0 && $8 > 0 { print }' "$tmp/attn.log")
[ -n "$row" ] || { echo "FAIL: bench_attention_cpu: no timed row:"; cat "$tmp/attn.log"; exit 1; }
echo "ok: bench_attention_cpu --no-torch: $row"
use=

"$build/bench/bench_train_gpt" --no-torch --steps 2 --threads 2 --preset shakespeare_cpu >"$tmp/run.log"
row=$(awk '$1 == "shakespeare_cpu" && $2 > 0 { print }' "$tmp/run.log")
[ -n "$row" ] || { echo "FAIL: no timed row:"; cat "$tmp/run.log"; exit 1; }
echo "ok: --no-torch: $row"
