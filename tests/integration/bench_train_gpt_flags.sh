#!/bin/sh
# bench_train_gpt's flags: bad values refused with the flag named and exit
# status 2; a --python that cannot import torch, or no bench/torch_gpt.py to
# run, refused with status 1 instead of a silent Tyr-only run; --no-torch
# from the repository root times the small preset and prints its row.
set -eu
build=$1 src=$2
bin=$build/bench/bench_train_gpt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$src"

refused() { # expected exit status, expected substring, then the flags
  want_rc=$1 want=$2
  shift 2
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

"$bin" --no-torch --steps 2 --threads 2 --preset shakespeare_cpu >"$tmp/run.log"
row=$(awk '$1 == "shakespeare_cpu" && $2 > 0 { print }' "$tmp/run.log")
[ -n "$row" ] || { echo "FAIL: no timed row:"; cat "$tmp/run.log"; exit 1; }
echo "ok: --no-torch: $row"
