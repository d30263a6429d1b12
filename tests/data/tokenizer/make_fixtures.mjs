// Regenerates the tokenizer fixtures from the npm package `tiktoken`:
//   gpt2.tiktoken.zst, cl100k_base.tiktoken.zst   rank files ("base64 rank" lines, zstd -19)
//   expected.json                                 tiktoken's ids for the texts below
//
// Usage (nothing is installed in the repository):
//   mkdir -p /tmp/tokgen && cd /tmp/tokgen && npm install tiktoken@1.0.22
//   node <repo>/tests/data/tokenizer/make_fixtures.mjs          (run from /tmp/tokgen)
// The package is resolved from the current directory (or $TOKGEN_DIR); the
// `zstd` program must be on PATH.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(process.env.TOKGEN_DIR || process.cwd(), "package.json"));
const { Tiktoken } = require("tiktoken");
const pkg = JSON.parse(
  readFileSync(join(dirname(require.resolve("tiktoken")), "package.json"), "utf8"),
);

const CHAT = [
  "<|bos|>",
  "<|user_start|>",
  "<|user_end|>",
  "<|assistant_start|>",
  "<|assistant_end|>",
  "<|python_start|>",
  "<|python_end|>",
  "<|output_start|>",
  "<|output_end|>",
];

// The package stores ranks as "! <first rank> tok tok ..." (base64 tokens of
// consecutive ranks; a new "!" restarts the numbering).
function ranksOf(bpe) {
  const out = [];
  const parts = bpe.split(/\s+/).filter((x) => x.length);
  let rank = 0;
  for (let i = 0; i < parts.length; i++) {
    if (parts[i] === "!") {
      rank = Number(parts[++i]);
      continue;
    }
    out.push([parts[i], rank++]);
  }
  return out;
}

// A fixed pseudo-random generator, so the texts never change.
function lcg(seed) {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x;
  };
}
const rnd = lcg(12345);
let letters = "";
for (let i = 0; i < 600; i++) letters += String.fromCharCode(97 + (rnd() % 26));
let mixed = "";
const pool = "ab c1.,;é東😀\n\t  '";
for (let i = 0; i < 400; i++) mixed += [...pool][rnd() % [...pool].length];

const shakespeare = readFileSync(join(here, "../../../data/tinyshakespeare.txt"), "utf8");

const TEXTS = [
  ["empty", ""],
  ["hello", "Hello, world! This is a test."],
  [
    "english",
    "The quick brown fox jumps over the lazy dog. It was the best of times, it was the worst " +
      "of times; it was the age of wisdom, it was the age of foolishness...",
  ],
  [
    "contractions",
    "I'm sure you'll see they've done it; we'd say it's what he's DONE. Don't! WON'T, I'LL, " +
      "SHE'S, y'all, 'tis 'twas rock'n'roll '' ' 's 'S 'Re",
  ],
  [
    "code_c",
    "#include <stdio.h>\n\nint main(int argc, char **argv) {\n  for (int i = 0; i < argc; i++)\n" +
      "    printf(\"%s\\n\", argv[i]);\n\treturn 0; // done\n}\n",
  ],
  [
    "code_py",
    "def f(x):\n    if x <= 1:\n        return [x ** 2 for _ in range(10)]\n    return {'k': x}\n\n\n" +
      "class A(object):\n    pass\r\n",
  ],
  [
    "unicode",
    "Grüße aus Köln — naïve café, 東京都に住んでいます。한국어 텍스트, Ελληνικά, " +
      "русский текст, עברית, العربية, हिन्दी, e\u0301 n\u0303 ß ﬁ",
  ],
  ["emoji", "😀👍🏽 👨‍👩‍👧‍👦 🇺🇸 ✨ emoji-in-words😀😀 ❤️ 🤖🤖🤖 ☃"],
  [
    "whitespace",
    "a  b   c\t\td\n\n\ne \r\n f   \n   \n\t x      y\n\n\n\n  \t  " +
      " ".repeat(200) +
      "x" +
      "\n".repeat(50) +
      "end   ",
  ],
  ["unicode_space", "em\u2003space\u3000ideographic\u00a0nbsp\u2009thin \u202f narrow\u2028line"],
  [
    "numbers",
    "1 12 123 1234 12345 123456789 3.14159 1,000,000 0x1F 1e-10 -42 +7 ٣٤٥ ２０２４ 2024-11-24 " +
      "½ ² Ⅻ 0000000",
  ],
  [
    "specials",
    "<|endoftext|>Hello<|bos|><|user_start|>hi there<|user_end|><|assistant_start|>ok" +
      "<|assistant_end|> <|python_start|>print(1)<|python_end|><|output_start|>1\n<|output_end|>" +
      " <|endof <|bos| <|bos|><|bos|>x<|endoftext|>",
  ],
  ["long_word", letters],
  ["long_punct", "=".repeat(300) + "-".repeat(257) + "!?".repeat(100)],
  ["long_repeat", "a".repeat(1000) + " " + "ab".repeat(300)],
  ["mixed_random", mixed],
  ["shakespeare", shakespeare.slice(0, 4096)],
];

function build(name, file) {
  const enc = require(`tiktoken/encoders/${name}.json`);
  const ranks = ranksOf(enc.bpe_ranks);
  let maxId = 0;
  for (const [, r] of ranks) maxId = Math.max(maxId, r);
  for (const id of Object.values(enc.special_tokens)) maxId = Math.max(maxId, id);
  const specials = { ...enc.special_tokens };
  CHAT.forEach((s, i) => (specials[s] = maxId + 1 + i));
  const tk = new Tiktoken(enc.bpe_ranks, specials, enc.pat_str);

  const text = ranks.map(([b, r]) => `${b} ${r}\n`).join("");
  const raw = join(here, `${file}`);
  writeFileSync(raw, text);
  execFileSync("zstd", ["-q", "-f", "-19", "--rm", raw, "-o", `${raw}.zst`]);

  const cases = TEXTS.map(([cname, t]) => ({
    name: cname,
    text: t,
    ordinary: Array.from(tk.encode_ordinary(t)),
    special: Array.from(tk.encode(t, "all")),
  }));
  tk.free();
  return {
    rank_file: `${file}.zst`,
    n_ranks: ranks.length,
    pattern: enc.pat_str,
    specials,
    cases,
  };
}

const out = {
  generator: `tiktoken ${pkg.version} (npm) via make_fixtures.mjs`,
  gpt2: build("gpt2", "gpt2.tiktoken"),
  cl100k_base: build("cl100k_base", "cl100k_base.tiktoken"),
};
writeFileSync(join(here, "expected.json"), JSON.stringify(out) + "\n");
console.log(
  `wrote expected.json (${TEXTS.length} texts), gpt2.tiktoken.zst, cl100k_base.tiktoken.zst`,
);
