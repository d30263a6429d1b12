#!/bin/sh
# The live view of train_diffusion --generate in a real terminal: tmux runs
# it and capture-pane reads the screen while it animates.  Frames show the
# progress line (block, step s/T, bar, masked count), the cells as blocks
# and characters, and ANSI colours; the last frame has nothing masked.
# Skips (77) when tmux is not installed.
set -eu
build=$1 src=$2
bin=$build/train_diffusion
command -v tmux >/dev/null 2>&1 || { echo "SKIP: tmux is not installed"; exit 77; }
tmp=$(mktemp -d)
sock=tyr_dlm_live_$$
trap 'tmux -L $sock kill-server 2>/dev/null || true; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
$bin --data "$src/data/tinyshakespeare.txt" --batch-size 8 --iters 20 --eval-interval 20 \
  --eval-iters 1 --threads 2 --no-plot --out-dir "$tmp/a" >/dev/null 2>&1 || fail "training"
tmux -L $sock new-session -d -x 100 -y 30 -s live \
  "$bin --generate $tmp/a --seed 3 --blocks 2 --frame-ms 120 --prompt 'ROMEO:' --threads 1 \
   2>$tmp/err; echo EXIT=\$?; sleep 30"
i=0
while [ $i -lt 150 ]; do
  tmux -L $sock capture-pane -p -e -t live >"$tmp/cap$i" 2>/dev/null || true
  grep -q 'EXIT=' "$tmp/cap$i" && break
  i=$((i + 1))
  sleep 0.1
done
grep -q 'EXIT=0' "$tmp/cap$i" || { cat "$tmp/cap$i" "$tmp/err"; fail "no clean exit on the terminal"; }
frames=$(cat "$tmp"/cap* | grep -o 'block [12]/2  step [0-9]*/[0-9]*' | sort -u | wc -l)
[ "$frames" -ge 4 ] || fail "only $frames distinct frames captured"
grep -q 'masked [1-9]' "$tmp"/cap* || fail "no frame with masked cells"
grep -q 'block 2/2  step [0-9]*/[0-9]*.*masked 0' "$tmp/cap$i" || fail "the last frame is not complete"
grep -q "$(printf '\342\226\210')" "$tmp"/cap* || fail "no masked block cells on screen"
grep -q "$(printf '\033')\[3[123]m" "$tmp"/cap* || fail "no colours"
grep -q 'ROMEO:' "$tmp/cap$i" || fail "the prompt is not on screen"
echo "ok: $frames distinct frames over $i captures; the last:"
sed 's/\x1b\[[0-9;]*[A-Za-z]//g' "$tmp/cap$i" | head -8
