#!/bin/sh
# NanoProof on a GPU machine, in one run (under 150 seconds once built: each part has a
# time limit, 30 + 50 + 60 + 10 s):
#   1. test_gpt_engine: the KV-cache engine on CUDA against the CPU's full
#      forward (decode at every position, greedy generation);
#   2. bench_nanoproof on the device: decode tokens/s with the KV cache at
#      batch 1 and 64, Tyr next to the PyTorch twin in the same run (parity
#      of logits and value logits first), for the default config (12 layers,
#      768 wide, vocab 50304);
#   3. nanoproof --preset gpu shortened (6000 sequents, 300 steps), then solve rates by
#      difficulty for sampling vs search at budgets 8 and 32, and --prove.
# Usage, from the repository root: bench/nanoproof_gpu.sh OUTDIR [BUILD_DIR]
# BUILD_DIR (default build-gpu) must be configured already (scripts/gpu-suite.sh
# --build); the three programs are built in it when missing.  PYTHON: the
# interpreter with PyTorch (default python3); DEVICE (default cuda) and
# BENCH_CONFIG (default "default") allow a dry run on the CPU.  OUTDIR
# receives nanoproof_gpu.log (everything printed) and eval.json; weights and
# checkpoints stay in a temporary directory.  The last line is
# "nanoproof_gpu: PASS ..." or "nanoproof_gpu: FAIL ...".
set -u
out=${1:?usage: bench/nanoproof_gpu.sh OUTDIR [BUILD_DIR]}
build=${2:-build-gpu}
py=${PYTHON:-python3}
dev=${DEVICE:-cuda}
big=${BENCH_CONFIG:-default}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log=$out/nanoproof_gpu.log
: >"$log"
say() { echo "$*" | tee -a "$log"; }
if [ ! -x "$build/nanoproof" ] || [ ! -x "$build/bench/bench_nanoproof" ] ||
  [ ! -x "$build/tests/test_gpt_engine" ]; then
  cmake --build "$build" -j "$(nproc)" --target nanoproof bench_nanoproof test_gpt_engine \
    >"$work/build.log" 2>&1 || { tail -n 20 "$work/build.log" | tee -a "$log"; say "nanoproof_gpu: FAIL (build)"; exit 1; }
fi
fails=""

say "== test_gpt_engine (the engine on CUDA against the CPU forward)"
timeout 30 "$build/tests/test_gpt_engine" >"$work/engine.log" 2>&1
rc=$?
grep -E "diff|OK|PASSED|FAILED|SKIPPED|ERROR" "$work/engine.log" | tee -a "$log"
[ $rc = 0 ] || fails="$fails engine-test"
[ "$dev" = cpu ] || grep -q "CUDA decode vs CPU" "$work/engine.log" || fails="$fails engine-test-skipped"

for cfg in "$big"; do
  say "== decode tok/s with the KV cache: $cfg config, $dev"
  TYR_PYTHON=$py timeout 50 "$build/bench/bench_nanoproof" --config "$cfg" --device "$dev" \
    --batches 1,64 --prompt 32 --new 48 --threads 8 --dir "$work/bench_$cfg" >"$work/b.log" 2>&1
  rc=$?
  tee -a "$log" <"$work/b.log"
  [ $rc = 0 ] && grep -q "parity: ok" "$work/b.log" || fails="$fails bench-$cfg"
done

say "== nanoproof --preset gpu, 300 steps, then sampling vs search"
timeout 60 "$build/nanoproof" --preset gpu --device "$dev" --train-sequents 6000 --iters 300 \
  --decay-steps 300 --warmup 30 --eval-interval 150 --test-sequents 5 --budgets 8,32 \
  --out-dir "$work/run" \
  >"$work/train.out" 2>"$work/train.err"
rc=$?
grep -vE '^\[|live tensors' "$work/train.err" | tr '\r' '\n' | grep -v '^\[' | tee -a "$log"
tee -a "$log" <"$work/train.out"
[ $rc = 0 ] && [ -s "$work/run/eval.json" ] || fails="$fails train-eval"
cp "$work/run/eval.json" "$out/" 2>/dev/null
timeout 10 "$build/nanoproof" --prove "(a -> b) & (b -> c) |- a -> c" "$work/run" --device "$dev" \
  --budget 64 >"$work/prove.out" 2>/dev/null
prc=$?
tee -a "$log" <"$work/prove.out"

if [ -z "$fails" ]; then
  say "nanoproof_gpu: PASS (engine test, parity and decode benchmarks, training and evaluation; --prove exit $prc)"
else
  say "nanoproof_gpu: FAIL:$fails (--prove exit $prc)"
  exit 1
fi
