#!/bin/sh
# flux_demo end to end with --random-weights tiny (tiny Qwen3, transformer
# and VAE, random weights): a valid PNG of the asked size, the same image for
# the same seed and another for another seed, PPM on request, progress and
# timings printed; bad input (empty prompt, sizes not multiples of 16, a
# missing weights directory or incomplete one, no GPU, a bad flag, an output
# directory that does not exist) refused with a message, a non-zero exit and
# no image written.
set -eu
build=$1
bin=$build/flux_demo
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
run="$bin --random-weights tiny --threads 2 --max-len 64"

$run "a red bicycle" --out "$tmp/a.png" >"$tmp/a.out" 2>"$tmp/a.log" || { cat "$tmp/a.log"; fail "tiny run"; }
[ "$(od -An -tx1 -N8 "$tmp/a.png" | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "not a PNG"
# IHDR: width and height, big endian, at bytes 16..23
[ "$(od -An -tu1 -j16 -N8 "$tmp/a.png" | tr -s ' ' | sed 's/^ //')" = "0 0 1 0 0 0 1 0" ] ||
  fail "the PNG is not 256 x 256"
for s in "\[text\]" "\[transformer\]" "\[vae\]" "4/4" "wrote"; do
  grep -q "$s" "$tmp/a.log" || fail "no '$s' in the log: $(cat "$tmp/a.log")"
done
grep -q "^timing: load .* text encoder .* transformer .* vae .* image" "$tmp/a.out" || fail "no timing line"
grep -q "^peak memory: .* GiB" "$tmp/a.out" || fail "no peak memory line"
echo "ok: a 256x256 PNG, stages and timings reported"

$run "a red bicycle" --width 64 --height 64 --out "$tmp/b1.png" >/dev/null 2>&1
$run "a red bicycle" --width 64 --height 64 --out "$tmp/b2.png" >/dev/null 2>&1
cmp -s "$tmp/b1.png" "$tmp/b2.png" || fail "one seed gave two images"
$run "a red bicycle" --width 64 --height 64 --seed 1 --out "$tmp/c.png" >/dev/null 2>&1
cmp -s "$tmp/b1.png" "$tmp/c.png" && fail "two seeds gave one image"
$run "a red bicycle" --width 128 --height 64 --steps 2 --ppm --out "$tmp/d.ppm" >/dev/null 2>&1 ||
  fail "--ppm run"
[ "$(head -c 14 "$tmp/d.ppm" | tr '\n' ' ')" = "P6 128 64 255 " ] || fail "bad PPM header"
[ "$(wc -c <"$tmp/d.ppm")" -eq $((14 + 128 * 64 * 3)) ] || fail "bad PPM size"
echo "ok: reproducible with --seed, PPM of 128x64"

bad() { # expected message, then the arguments
  msg=$1; shift
  if "$bin" "$@" --out "$tmp/bad.png" >"$tmp/bad.out" 2>"$tmp/bad.log"; then fail "accepted: $*"; fi
  grep -q -- "$msg" "$tmp/bad.log" || fail "$*: no '$msg' in: $(cat "$tmp/bad.log")"
  [ -e "$tmp/bad.png" ] && fail "$*: an image was written"
  ls "$tmp" | grep -q "bad.png.tmp" && fail "$*: a temporary file was left"
  return 0
}
bad "empty prompt" "" --random-weights tiny
bad "multiples of 16" "cat" --random-weights tiny --width 100
bad "multiples of 16" "cat" --random-weights tiny --width 64 --height 72
bad "no such directory" "cat" --weights "$tmp/none"
mkdir "$tmp/w" && touch "$tmp/w/ae.safetensors"
bad "missing: flux-2-klein-4b.safetensors (or transformer/) text_encoder/ tokenizer/tokenizer.json" \
  "cat" --weights "$tmp/w"
bad "not tiny or full" "cat" --random-weights small
bad "not cpu or gpu" "cat" --random-weights tiny --preset tpu
bad "give one of them" "cat" --random-weights tiny --weights "$tmp"
bad "unknown flag" "cat" --random-weights tiny --guidance 4
bad "must be in" "cat" --random-weights tiny --steps 0
if ! "$bin" cat --random-weights tiny --device cuda --out "$tmp/g.png" >/dev/null 2>"$tmp/g.log"; then
  grep -q "no such GPU" "$tmp/g.log" || fail "--device cuda without a GPU: $(cat "$tmp/g.log")"
  [ -e "$tmp/g.png" ] && fail "an image was written without a GPU"
fi
if $run cat --out "$tmp/nodir/x.png" >/dev/null 2>"$tmp/nd.log"; then fail "a missing --out directory"; fi
echo "ok: bad input refused, nothing written"

# --weights: a directory laid out as the released one, with the tiny models
# (BFL single files, then diffusers' transformer/ next to ae.safetensors):
# configs read from the files, the Hugging Face tokenizer, the same image
# from both layouts
data=$2/tests/data
w=$tmp/klein
mkdir -p "$w/tokenizer" "$w/text_encoder"
cp "$data/flux2/flux2_tiny.safetensors" "$w/flux-2-klein-4b.safetensors"
cp "$data/flux2/flux2_vae_tiny.safetensors" "$w/ae.safetensors"
cp "$data/flux/qwen3_tiny/"* "$w/text_encoder/"
cp "$data/flux/tokenizer.json" "$w/tokenizer/"
$bin "a cat on a windowsill" --weights "$w" --width 64 --height 48 --max-len 32 --threads 2 \
  --out "$tmp/w1.png" >"$tmp/w1.out" 2>"$tmp/w1.log" || { cat "$tmp/w1.log"; fail "--weights (BFL files)"; }
[ "$(od -An -tu1 -j16 -N8 "$tmp/w1.png" | tr -s ' ' | sed 's/^ //')" = "0 0 0 64 0 0 0 48" ] ||
  fail "the PNG is not 64 x 48"
mkdir -p "$tmp/klein2/transformer"
cp "$data/flux2/flux2_tiny_diffusers.safetensors" "$tmp/klein2/transformer/diffusion_pytorch_model.safetensors"
cp -r "$w/ae.safetensors" "$w/text_encoder" "$w/tokenizer" "$tmp/klein2/"
$bin "a cat on a windowsill" --weights "$tmp/klein2" --width 64 --height 48 --max-len 32 --threads 2 \
  --out "$tmp/w2.png" >/dev/null 2>"$tmp/w2.log" || { cat "$tmp/w2.log"; fail "--weights (diffusers transformer/)"; }
cmp -s "$tmp/w1.png" "$tmp/w2.png" || fail "the two layouts gave two images"
# a truncated transformer file: refused, nothing written
head -c 5000 "$data/flux2/flux2_tiny.safetensors" >"$w/flux-2-klein-4b.safetensors"
bad "flux-2-klein-4b.safetensors" "cat" --weights "$w"
echo "ok: --weights with BFL files and with diffusers' transformer/ give one image; a broken file is refused"
# an --out that cannot be written is refused before anything is loaded
mkdir -p "$tmp/outdir"
: >"$tmp/plain"
long=$(printf 'y%.0s' $(seq 1 250)).png
for case in "$tmp/outdir|is a directory" "|the path is empty" "$tmp/plain/x.png|is not a directory" \
  "$tmp/nodir/x.png|No such file or directory" "$tmp/$long|file name is too long"; do
  out=${case%%|*} want=${case#*|}
  if $run "a cat" --out "$out" >/dev/null 2>"$tmp/o.log"; then fail "--out '$out' was accepted"; fi
  grep -q -- "--out '.*': .*$want" "$tmp/o.log" || fail "--out '$out': no '$want' in: $(cat "$tmp/o.log")"
  grep -q "\[load\]" "$tmp/o.log" && fail "--out '$out': refused only after loading"
done
echo "ok: an unwritable --out is refused before loading"
