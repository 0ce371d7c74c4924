#!/usr/bin/env python3
"""Phase breakdown of one wledger run from `perf record -g` samples.

    perf script -i perf.data -F tid,time,ip,sym,dso | python3 bench/phases.py [--period-ms 0.05]

Each sample's call stack (symbols and DSO names) is matched against the phase patterns below (first
match wins). Prints a Markdown table: per phase, CPU ms on the main thread and on other threads
(libdispatch workers, OpenBLAS), plus the wall span of the run and the main thread's CPU total
(span minus main CPU = time the main thread was blocked: waiting for workers, I/O, fsync).
"""
import argparse
import re
import subprocess
import sys

PHASES = [
    ("OpenBLAS worker thread spinning (sched_yield)", r"sched_yield"),
    ("process startup: dynamic loading", r"_dl_|do_lookup_x|ld-linux"),
    ("process startup: argument parsing, Swift metadata", r"parseAsRoot"),
    ("mmap + MAP_POPULATE of weight files", r"mm_populate|SafetensorsFile"),
    ("XXH3-128 fingerprints (scan, verify)", r"libxxhash|XXH3"),
    ("low-rank encoding: f64 copies, randomized SVD (BLAS), factor patch", r"LowRankEncoding|LowRankPatch\w*make|TensorMath|lowRankApproximation|libopenblas|gemm"),
    ("zstd / byte shuffle / XOR (patch, keyframe codec)", r"libzstd|ZSTD_|Patch|Shuffle|wl_shuffle|wl_xor|wl_unshuffle"),
    ("SHA-256 (OpenSSL)", r"libcrypto|EVP_|SHA256Digest|SHA256Hasher"),
    ("fsync / fdatasync", r"fsync|fdatasync"),
    ("pwrite / write (page cache copy)", r"pwrite|__libc_write|ksys_write"),
    ("SQLite", r"libsqlite3|sqlite3"),
    ("munmap / freeing buffers", r"munmap|_swift_release_dealloc|DictionaryStorageCfD|__libc_free|_int_free"),
    ("page faults / zero-fill of fresh buffers (memset, memcpy)", r"exc_page_fault|memset|memmove|memcpy|clear_page"),
    ("ΔW statistics, NaN scan", r"DeltaStatistics|countNonFinite|wl_delta|wl_count"),
    ("work-tree scan: other", r"WorkTreeComparison"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--period-ms", type=float, default=0.05, help="sampling period (1000 / perf -F)")
    ap.add_argument("--faults", type=int, default=5, help="list the top N callers of page faults / zero-fill / memcpy")
    args = ap.parse_args()
    text = sys.stdin.read()
    samples = []
    samples_frames = []
    for block in text.split("\n\n"):
        lines = [l for l in block.strip().split("\n") if l.strip()]
        if not lines:
            continue
        head = lines[0].split()
        try:
            tid, t = int(head[0]), float(head[1].rstrip(":"))
        except (ValueError, IndexError):
            continue
        stack = " ".join(l.strip() for l in lines[1:])
        frames = []
        for l in lines[1:]:
            parts = l.strip().split(" ", 1)
            rest = parts[1] if len(parts) > 1 else ""
            sym, _, dso = rest.rpartition(" (")
            frames.append((sym or rest, dso))
        samples.append((tid, t, stack))
        samples_frames.append((tid, t, stack, frames))
    if not samples:
        print("(no samples)")
        return
    main_tid = samples[0][0]
    t0 = min(s[1] for s in samples)
    t1 = max(s[1] for s in samples)
    compiled = [(name, re.compile(p)) for name, p in PHASES]
    stats = {}
    for tid, t, stack in samples:
        label = "other"
        for name, rx in compiled:
            if rx.search(stack):
                label = name
                break
        s = stats.setdefault(label, [0, 0, None, None])
        if tid == main_tid:
            s[0] += 1
            s[2] = t if s[2] is None else min(s[2], t)
            s[3] = t if s[3] is None else max(s[3], t)
        else:
            s[1] += 1
    order = [n for n, _ in PHASES] + ["other"]
    print(f"wall span of samples: {(t1 - t0) * 1000:.1f} ms; sampling period {args.period_ms} ms\n")
    mains = sum(v[0] for v in stats.values())
    others = sum(v[1] for v in stats.values())
    print(f"main thread on CPU {mains * args.period_ms:.1f} ms, other threads {others * args.period_ms:.1f} ms\n")
    print("| phase | main-thread CPU ms | other-thread CPU ms |")
    print("|---|---:|---:|")
    for n in order:
        if n not in stats:
            continue
        a, b, _, _ = stats[n]
        print(f"| {n} | {a * args.period_ms:.1f} | {b * args.period_ms:.1f} |")
    if args.faults:
        # Who touches fresh memory: first user-space frames of samples in page faults, memset, memcpy.
        fault = re.compile(r"exc_page_fault|clear_page|memset|memmove|memcpy")
        callers = {}
        for tid, t, stack, frames in samples_frames:
            if not fault.search(stack):
                continue
            user = []
            for sym, dso in frames:
                if "kernel.kallsyms" in dso or sym.startswith("[unknown]") or re.search(r"memset|memmove|memcpy", sym):
                    continue
                user.append(sym)
                if len(user) == 2:
                    break
            key = tuple(user)
            callers[key] = callers.get(key, 0) + 1
        if callers:
            names = demangle({sym for key in callers for sym in key})
            print()
            print("Top callers of page faults / zero-fill / memcpy on fresh buffers (CPU ms, all threads):")
            print()
            for key, v in sorted(callers.items(), key=lambda kv: -kv[1])[: args.faults]:
                label = " ← ".join(names.get(sym, sym) for sym in key) or "no user frame (inside SQLite or zstd)"
                print(f"- {v * args.period_ms:.0f} ms: `{label}`")


def demangle(symbols):
    """Short Swift names (Type.method) for mangled symbols, via swift-demangle when present."""
    symbols = sorted(symbols)
    out = {}
    try:
        res = subprocess.run(["swift-demangle", "--simplified", "--compact"], input="\n".join(symbols),
                             capture_output=True, text=True, timeout=30)
        lines = res.stdout.split("\n")
        if len(lines) >= len(symbols):
            for sym, d in zip(symbols, lines):
                d = re.sub(r"^(closure #\d+ in |specialized |merged |partial apply for )+", "", d)
                d = d.split("(")[0]
                out[sym] = d[:70]
    except (OSError, subprocess.SubprocessError):
        pass
    return out


if __name__ == "__main__":
    main()
