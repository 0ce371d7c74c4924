#!/usr/bin/env python3
"""Write reference tokenizations from HF `tokenizers` for the Swift tokenizer's tests.

Usage: tokenizer_cases.py [--tokenizer PATH] [--bigbench DIR] [--tasks DIR] [--out PATH]
  --tokenizer  SmolLM2 tokenizer.json
               (default $WLEDGER_CACHE/models/smollm2-135m/f32/tokenizer.json)
  --bigbench   BIG-bench benchmark_tasks directory; a few real task inputs are
               added as cases when it exists ($WLEDGER_CACHE/bigbench/benchmark_tasks)
  --tasks      wledger's task data (scripts/wordtasks.py); news articles and analogy
               prompts are added as cases when it exists ($WLEDGER_CACHE/tasks)
  --out        output file (default $WLEDGER_CACHE/fixtures/tokenizer_cases.json)

Writes one JSON file (and, beside it, the variant tokenizer files it names):
  cases           [{text, ids, decoded}]: encode(text).ids and decode(ids) with
                  skip_special_tokens=False, for a few hundred strings: Unicode
                  (accents, CJK, emoji, combining marks, RTL), code, numbers,
                  whitespace runs, contractions, embedded special tokens, prompts,
                  bytes missing from the vocabulary, long runs, seeded random mixes
  decode_cases    [{ids, text, text_skipping_special}]: decode of id sequences
                  that need not come from encode (lone bytes of a UTF-8 sequence,
                  special tokens between them, unknown ids)
  scalar_classes  [[first, last, class]]: how the pre-tokenizer treats every Unicode
                  scalar (L letter, N number, S whitespace, O other), probed
  variants        [{name, tokenizer, cases}]: tokenizer.json edited to exercise
                  options SmolLM2 does not use (no Digits step, grouped digits,
                  unk_token, ignore_merges, added tokens with single_word, lstrip,
                  rstrip, normalized)

The output depends only on the inputs and the tokenizers version (recorded in the
file). Files are written to a temporary name and renamed into place.
"""

from __future__ import annotations

import argparse
import copy
import glob
import hashlib
import json
import os
import random
import sys

import tokenizers
from tokenizers import AddedToken, Tokenizer

CACHE = os.environ.get("WLEDGER_CACHE", os.path.expanduser("~/.cache/wledger"))

REQUIRED = [
    ("The capital of France is", [504, 3575, 282, 4649, 314]),
    ("1, 2, 3, 4,", [33, 28, 216, 34, 28, 216, 35, 28, 216, 36, 28]),
]

FIXED = [
    # empty and whitespace
    "", " ", "  ", "   ", "\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r", " \n ", "\t\t\t",
    " \t \n", "a\n\n\nb", "\n\n\nparagraph\n\n", "trailing spaces   ", "  leading spaces",
    "a  b   c    d", "multiple     spaces before word", "tabs\tand\ttabs", "mixed \t\n whitespace \n\t ",
    "line1\nline2\r\nline3\rline4", "end with newline\n", "space then newline \nx", "x \n\n y",
    "    indented four", "\tindented tab", "word\u00a0nbsp", "ideographic\u3000space", "a\u2028b\u2029c",
    "a\x0bb\x0cc", "a\x85b", "x  \t  y", " ", "\u00a0\u00a0 x",
    # plain English
    "a", "Hello, world!", "hello world ", "The quick brown fox jumps over the lazy dog.",
    "Once upon a time, there was a little girl named Lily.", "UPPERCASE WORDS AND lowercase words",
    "CamelCaseIdentifier and snake_case_identifier", "e.g. i.e. etc. Mr. Dr. U.S.A.",
    "Hyphen-ated and en–dash and em—dash", "ellipsis... and more…", "(parentheses) [brackets] {braces}",
    "\"double quotes\" and 'single quotes'", "question? exclamation! semicolon; colon:",
    # contractions
    "I'm", "you're", "they've", "we'll", "he'd", "it's", "don't", "can't", "won't", "shouldn't've",
    "I'M", "YOU'RE", "THEY'VE", "WE'LL", "HE'D", "IT'S", "It'S", "It'Ll", "'s", "'t", "'re", "'ve", "'m",
    "'ll", "'d", "'tis", "'x", "'", "''", "'''s", "rock 'n' roll", "O'Neil's car", "''quoted''",
    "the dogs' bones", "it’s curly", "‘single curly’", "don 't", "don' t", "'S'T'RE", "x'sy", "!!'s",
    " 's", "''s", "'ss", "'rex", "'lll", "'dd",
    # numbers
    "12345", "3.14159", "1,000,000", "-42", "+7", "1e10", "6.02e23", "0x1F", "0b1010", "2024-01-15",
    "12:30:45", "$19.99", "€5", "50%", "v1.2.3", "a1b2c3", "abc123def", " 42", "  42", "x = 10 ** 3",
    "1 + 1 = 2", "1, 2, 3, 4, 5, 6, 7,", "100th", "3rd place", "007", "9" * 40, "①②③", "²³", "x²+y²",
    "½ ¾", "Ⅻ", "Ⅷ", "١٢٣", "٣", "४२", "१२३", "𝟙𝟚", "๓", "〇一二三", "³⁄₄",
    # accents and Latin
    "café", "naïve résumé", "Ångström", "Straße", "ß", "ﬁ ligature", "Œuvre", "Ǆ titlecase ǅ", "ǈ",
    "ʰᵐ modifier letters", "e\u0301", "e\u0301t\u0301", "\u0301\u0301a", "a\u0308o\u0308u\u0308",
    "Z\u0351\u0334a\u0337\u0358l\u0336g\u0335o\u0334", "cafe\u0301 au lait", "\u00c5 vs A\u030a",
    # scripts
    "Ελληνικά γράμματα", "Русский язык", "Українська", "中文字符", "你好，世界！", "日本語のテキスト",
    "カタカナ ひらがな", "한국어 텍스트", "עברית", "שָׁלוֹם", "العربية", "مرحبا بالعالم",
    "English עברית mixed", "\u202eRTL override\u202c", "\u200fRLM mark", "ไทย", "हिन्दी", "தமிழ்",
    "ქართული", "Հայերեն", "አማርኛ", "ᚠᚢᚦᚨᚱᚲ", "𓀀𓀁", "𝓗𝓮𝓵𝓵𝓸", "Ｆｕｌｌｗｉｄｔｈ", "ｶﾀｶﾅ",
    # emoji and symbols
    "emoji 😀🎉👍", "👍🏽", "family 👨‍👩‍👧‍👦", "flags 🇫🇷🇩🇪", "❤️", "☃", "keycap 1️⃣", "😀😀😀",
    "math ∑∫√∞ ≤ ≥ ≠", "arrows →←↑↓", "box ┌─┐│└┘", "©®™", "§¶†‡", "°C °F", "±×÷",
    "\u200b zero width", "a\u200bb", "\ufeffBOM", "a\u200db", "\u2060word joiner", "soft\u00adhyphen",
    # control characters and bytes missing from the vocabulary
    "\x00", "a\x00b", "\x04", "a\x1db", "!\x04!", "..\x1d..", "\x01\x02\x03\x04\x05\x06\x07\x08",
    "\x13\x14\x15\x16\x17", "\x1c\x1d\x1e\x1f", "\x7f", "\x1b[31mred\x1b[0m", "bell\x07",
    "\x1c\x1d a", "tab\x0bvtab",
    # code
    "def f(x):\n    return x + 1\n",
    "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); }",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
    "<html><body><p class=\"x\">Hi &amp; bye</p></body></html>",
    "{\"key\": [1, 2.5, true, null], \"nested\": {\"a\": \"b\"}}",
    "if [ -f \"$HOME/.bashrc\" ]; then source ~/.bashrc; fi",
    "let x: [Int] = (0..<10).map { $0 * $0 }",
    "fn main() -> Result<(), Box<dyn Error>> { Ok(()) }",
    "x = re.compile(r'^\\s*(\\d+)\\s*$')",
    "| col1 | col2 |\n|------|------|\n| a    | b    |",
    "https://example.com/path?query=1&b=2#frag", "user@example.com", "/usr/local/bin/python3",
    "C:\\Windows\\System32", "a->b => c :: d != e == f", "i++; --j; x += 1; y -= 2;",
    "    # comment with trailing spaces   \n", "/* block */ // line", "`backticks` and ```fences```",
    "@decorator\nclass A(B):\n    pass", "lambda x: x**2", "\t\tdeeply\n\t\t\tnested",
    # chat and special tokens
    "<|im_start|>user\nhi<|im_end|>", "<|endoftext|>", "a<|endoftext|>b", "<|im_start|><|im_end|>",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext", "<|im_start|", "<<|im_start|>>", "<repo_name>x<file_sep>y", " <|im_end|> ",
    "<|im_end|>\n\n", "hi <|im_end|>x", "<|im_start|><|im_start|>", "<|IM_START|>",
    "<reponame>repo<filename>a.py<gh_stars>10\n", "<issue_start>title<issue_comment>c<issue_closed>",
    "<jupyter_start><jupyter_text>t<jupyter_code>c<jupyter_output>o<jupyter_script><empty_output>",
    "<|im_start|>user\n  spaced  <|im_end|>", "text<|endoftext|>\n<|endoftext|>more",
    "<|im_end|><|im_end|><|im_end|>", "< |im_end| >", "<|im_end|", "|im_end|>",
    # prompts
    "Q: What is 3 + 4?\nA:", "Q: What is 3 + 4?\nA: 7", "Question: Is the sky blue?\nAnswer:",
    "Options:\n- yes\n- no\nAnswer:", "Choose the best answer.\n(A) red\n(B) blue\n(C) green\n",
    "Translate English to French:\nsea otter => loutre de mer\ncheese =>",
    "The following are multiple choice questions (with answers).\n\n",
    "Premise: A man is sleeping.\nHypothesis: A person rests.\nEntailment:",
    "What is 12 times 13?", "Solve for x: 2x + 3 = 7.", "Input: 5 3 8\nOutput: 8 5 3",
]

# Pieces for seeded random mixes.
FRAGMENTS = [
    "the", " the", "The", "quick", " brown", "fox", "jump", "ed", "ing", "'s", "'t", "'re", "'ll", "'S",
    "'", "\"", "0", "1", "42", "3.14", "1999", " 7", "  ", " ", "   ", "\t", "\n", "\n\n", "\r\n", ".",
    ",", "!", "?", "...", "--", "=>", "()", "[]", "{}", "<", ">", "|", "<|", "|>", "<|im_end|>",
    "<|im_start|>", "<|endoftext|>", "é", "e\u0301", "ß", "中", "文", "日本", "한", "😀", "👍🏽",
    "\u200b", "\u00a0", "\u3000", "α", "ω", "Ж", "١", "²", "½", "ⅷ", "_", "__init__", "#", "@",
    "$", "%", "^", "&", "*", "~", "`", "\\", "/", "\x04", "\x1d", "\x7f", "ǅ", "𝟙", "ｶ", "x", "Y",
]


def probe_class(pre, c):
    """L, N, S or O: what the pre-tokenizer pipeline does with scalar c (see scalar_classes)."""
    if c == " ":
        return "S"
    first = len(pre.pre_tokenize_str(c + c + "b"))
    if first == 1:
        return "L"        # letters run together with the following letter
    if first == 2:
        return "O"        # a run of "other", then the letter
    # c, c, b: whitespace (\s+(?!\S) then \s+) or an isolated digit; a trailing
    # whitespace run stays whole, digits stay apart.
    return "S" if len(pre.pre_tokenize_str("x" + c + c)) == 2 else "N"


def scalar_classes(tok):
    pre = tok.pre_tokenizer
    ranges = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        k = probe_class(pre, chr(cp))
        if ranges and ranges[-1][2] == k and ranges[-1][1] == (0xD7FF if cp == 0xE000 else cp - 1):
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp, k])
    return ranges


def task_texts(root):
    """Real text from wledger's task data (scripts/wordtasks.py): the first articles of the Lee
    news corpus (cut to 800 characters) and the first analogy prompts with their answers."""
    if not root or not os.path.isdir(root):
        return []
    out = []
    corpus = os.path.join(root, "corpus", "lee_background.txt")
    if os.path.isfile(corpus):
        with open(corpus, encoding="utf-8") as f:
            out += [line.rstrip("\n")[:800] for _, line in zip(range(6), f)]
    for path in sorted(glob.glob(os.path.join(root, "analogies", "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            for _, line in zip(range(2), f):
                q = json.loads(line)
                out.append(q["context"] + q["choices"][q["gold"]])
    return out


def bigbench_inputs(root):
    """The first inputs of a few BIG-bench tasks, in a fixed order."""
    if not root or not os.path.isdir(root):
        return []
    out = []
    tasks = ["arithmetic", "anachronisms", "analogical_similarity", "causal_judgment", "code_line_description",
             "date_understanding", "emoji_movie", "hindu_knowledge", "logical_deduction", "navigate",
             "odd_one_out", "strategyqa", "unit_conversion", "word_sorting"]
    for task in tasks:
        files = sorted(glob.glob(os.path.join(root, task, "**", "task.json"), recursive=True))
        for path in files[:2]:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            prefix = data.get("example_input_prefix", "\nQ: ")
            suffix = data.get("example_output_prefix", "\nA: ")
            for ex in data.get("examples", [])[:2]:
                if isinstance(ex.get("input"), str):
                    out.append(prefix + ex["input"] + suffix)
    return out


def random_mixes(rng, count):
    out = []
    for _ in range(count):
        n = rng.randint(1, 14)
        out.append("".join(rng.choice(FRAGMENTS) for _ in range(n)))
    return out


def long_cases(rng):
    b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    lorem = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
             "incididunt ut labore et dolore magna aliqua. ")
    return [
        "a" * 1000, " " * 500, "ab" * 300, "=" * 2000, "\n" * 300, "😀" * 200, "中" * 500,
        "".join(rng.choice(b64) for _ in range(4000)), lorem * 20, "x" + " " * 100 + "y",
        "".join(chr(rng.randint(0x20, 0x7E)) for _ in range(3000)),
        "".join(chr(rng.choice([rng.randint(0xA0, 0x2FF), rng.randint(0x370, 0x52F), rng.randint(0x4E00, 0x4FFF)]))
                for _ in range(1500)),
    ]


def decode_id_lists(tok, rng):
    vocab = tok.get_vocab()
    c3, a9 = vocab["Ã"], vocab["©"]          # the bytes of "é" in the byte alphabet
    f0, nine_f = vocab["ð"], vocab["Ł"]       # first bytes of a four-byte emoji
    lists = [
        [], [0], [1, 2], [c3], [a9], [c3, a9], [a9, c3], [c3, 0, a9], [c3, 2, a9], [f0, nine_f],
        [f0, nine_f, 504], [504, 3575, 282, 4649, 314], [99999, 504], [49151, 49152, 49153],
        [1, 4093, 198, 6004, 2], [0, 0, 0], [216, 216, 0, 216],
    ]
    lists += [[i] for i in range(0, 300)]
    lists += [[i] for i in range(300, 49152, 331)]
    for _ in range(100):
        lists.append([rng.randrange(0, 49152) for _ in range(rng.randint(1, 12))])
    for _ in range(50):
        lists.append([rng.choice([0, 1, 2, c3, a9, f0, nine_f] + list(range(100, 300))) for _ in range(rng.randint(1, 10))])
    return lists


def encode_cases(tok, texts):
    cases = []
    seen = set()
    for text in texts:
        if text in seen:
            continue
        seen.add(text)
        ids = tok.encode(text).ids
        cases.append({"text": text, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
    return cases


def variants(base):
    """(name, Tokenizer) pairs for options SmolLM2 does not use; each is saved with to_str(), so
    the files are HF's own serialization (merges as pairs, added tokens with HF-assigned ids)."""
    out = []

    gpt2 = copy.deepcopy(base)
    gpt2["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    gpt2["model"]["unk_token"] = "<|endoftext|>"
    gpt2["model"]["fuse_unk"] = False
    out.append(("gpt2-unk", Tokenizer.from_str(json.dumps(gpt2))))

    grouped = copy.deepcopy(base)
    grouped["pre_tokenizer"]["pretokenizers"][0]["individual_digits"] = False
    grouped["model"]["unk_token"] = "<|endoftext|>"
    grouped["model"]["fuse_unk"] = True
    grouped["model"]["ignore_merges"] = True
    out.append(("grouped-digits-fused-unk-ignore-merges", Tokenizer.from_str(json.dumps(grouped))))

    added = Tokenizer.from_str(json.dumps(base))
    added.add_tokens([
        AddedToken("hello", single_word=True),                       # in the vocabulary
        AddedToken("foo", lstrip=True, rstrip=True),
        AddedToken("foobar", single_word=True, normalized=False),
        AddedToken("é"),                                             # a byte token's spelling
        AddedToken("<|im", normalized=True),
        AddedToken("qqq zzz"),                                       # new: gets the next free id
    ])
    added.add_special_tokens([
        AddedToken("<mask>", lstrip=True, normalized=False),
        AddedToken("[SEP]", rstrip=True, normalized=False),
    ])
    out.append(("added-token-options", added))

    no_regex = copy.deepcopy(base)
    no_regex["pre_tokenizer"]["pretokenizers"][1]["use_regex"] = False
    out.append(("digits-no-regex", Tokenizer.from_str(json.dumps(no_regex))))
    return out


VARIANT_TEXTS = [
    "hello world", "say hello", "hellohello", "hello_there", "hello, hello!", "xhello", "héllo hello",
    "a <mask> b", "a   <mask>   b", "<mask><mask>", " \t<mask>", "x[SEP]   y", "[SEP]\n\n", "[SEP][SEP] z",
    "a foo b", "a   foo   b", "foofoo", "foobar", "a foobar b", "xfoobar", "foobarx", "foo bar", "café é",
    "<|im_start|>x", "<|im|>", "<|im_end|>", "éé hello <mask> [SEP] foo", "qqq zzz", "qqq  zzz qqq zzzz",
]


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=True, separators=(",", ":"))
        f.write("\n")
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokenizer", default=os.path.join(CACHE, "models/smollm2-135m/f32/tokenizer.json"))
    ap.add_argument("--bigbench", default=os.path.join(CACHE, "bigbench/benchmark_tasks"))
    ap.add_argument("--tasks", default=os.path.join(CACHE, "tasks"))
    ap.add_argument("--out", default=os.path.join(CACHE, "fixtures/tokenizer_cases.json"))
    args = ap.parse_args()

    with open(args.tokenizer, "rb") as f:
        raw = f.read()
    base = json.loads(raw)
    tok = Tokenizer.from_str(raw.decode("utf-8"))
    for text, ids in REQUIRED:
        got = tok.encode(text).ids
        if got != ids:
            sys.exit(f"tokenizer_cases: {text!r} encodes to {got}, expected {ids}")

    rng = random.Random(20240611)
    texts = [t for t, _ in REQUIRED] + FIXED + bigbench_inputs(args.bigbench) + task_texts(args.tasks) + random_mixes(rng, 150) + long_cases(rng)
    cases = encode_cases(tok, texts)

    decode_cases = []
    for ids in decode_id_lists(tok, rng):
        decode_cases.append({"ids": ids, "text": tok.decode(ids, skip_special_tokens=False),
                             "text_skipping_special": tok.decode(ids, skip_special_tokens=True)})

    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    variant_entries = []
    for name, vtok in variants(base):
        file_name = f"tokenizer_variant_{name}.json"
        write_json(os.path.join(out_dir, file_name), json.loads(vtok.to_str()))
        variant_entries.append({"name": name, "tokenizer": file_name,
                                "cases": encode_cases(vtok, VARIANT_TEXTS + texts)})

    result = {
        "format": 1,
        "tokenizers_version": tokenizers.__version__,
        "tokenizer_sha256": hashlib.sha256(raw).hexdigest(),
        "cases": cases,
        "decode_cases": decode_cases,
        "scalar_classes": scalar_classes(tok),
        "variants": variant_entries,
    }
    write_json(args.out, result)
    print(f"tokenizer_cases: {len(cases)} cases, {len(decode_cases)} decode cases, "
          f"{len(variant_entries)} variants -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
