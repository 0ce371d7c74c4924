#!/usr/bin/env python3
"""Crash-safety harness: SIGKILL wledger at random moments and check nothing is lost or mixed.

    crash_harness.py --wledger BIN --model DIR [--trials 200] [--seed 1] [--work DIR] [--json OUT]

Sets up a ledger on a copy of the model (init + 3 large rank-one edits), then runs trials. Each trial
picks an operation — commit (of a fresh simulated edit), checkout (of a random commit), revert
HEAD, prune (the newest edit) --keep 40%, restrain (the edits since the last restrain) — measures how long it takes uninterrupted (first time
only), starts it again and SIGKILLs it after a uniformly random delay in [0, 1.2 × that time].
After every kill:

  1. `wledger fsck` exits 0 (every object, tensor version and commit verifies);
  2. the next command works: `wledger status` answers, with no stale lock blocking it
     (WLEDGER_LOCK_TIMEOUT=5);
  3. the work tree is exactly the old or the new state, never a mix: either HEAD did not move
     and every file's sha256 equals what it was before the operation, or HEAD moved to the new
     commit and `wledger status --rehash` finds the work tree equal to it (every tensor's
     sha256, every header and side file).

Then the repository is brought back to a clean state for the next trial (a lost commit's edit
is committed again; a dirty tree is reset with `checkout --force HEAD`). Prints one line per
trial and a summary; exit 1 if any trial failed. Results as JSON with --json.
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from edit import apply_edit  # noqa: E402


def sha_dir(d):
    out = {}
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        if name.startswith(".") or not os.path.isfile(p):
            continue
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while True:
                b = f.read(1 << 22)
                if not b:
                    break
                h.update(b)
        out[name] = h.hexdigest()
    return out


class Repo:
    def __init__(self, binary, work):
        self.bin, self.work = binary, work
        self.env = dict(os.environ, WLEDGER_LOCK_TIMEOUT="5", WLEDGER_AUTHOR="crash <crash@wledger>")

    def run(self, *args, check=True, timeout=600):
        r = subprocess.run([self.bin, *args], cwd=self.work, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"wledger {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
        return r

    def head(self):
        return json.loads(self.run("log", "-n", "1", "--json").stdout)[0]["id"]

    def commits(self):
        return [c["id"] for c in json.loads(self.run("log", "--json").stdout)]

    def restrain_range(self):
        """What restrain takes: the commits since the newest restrain on HEAD's history (a
        restrain already in force is not restrained again), else the default base..HEAD."""
        restrains = [c["id"] for c in json.loads(self.run("log", "--json").stdout) if c["kind"] == "restrain"]
        return [f"{restrains[0]}..HEAD"] if restrains else []

    def last_edit(self):
        """The newest edit on HEAD's history (prune takes edits only), or HEAD where there is none."""
        edits = [c["id"] for c in json.loads(self.run("log", "--json").stdout) if c["kind"] == "edit"]
        return edits[0] if edits else self.head()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wledger", required=True)
    ap.add_argument("--model", required=True, help="a Hugging Face model directory (copied)")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    work_root = a.work or os.path.join(os.environ.get("TMPDIR", "/tmp"), f"wledger-crash-{os.getpid()}")
    shutil.rmtree(work_root, ignore_errors=True)
    os.makedirs(work_root)
    work = os.path.join(work_root, "model")
    shutil.copytree(a.model, work)
    repo = Repo(os.path.abspath(a.wledger), work)
    repo.run("init", "-q")
    layer = [0]

    def fresh_edit(scale=0.05):
        layer[0] += 1
        apply_edit(work, f"model.layers.{layer[0] % 30}.mlp.down_proj.weight", "rank1", seed=rng.randrange(1 << 30), scale=scale)

    # Large enough that restrain has singular values to restrain (σ of ΔW > σmax of W).
    for i in range(3):
        fresh_edit(scale=0.5)
        repo.run("commit", "-q", "-m", f"setup edit {i}")

    ops = ["commit", "checkout", "revert", "prune", "restrain"]
    durations = {}
    results = []
    failures = 0
    start_all = time.time()
    for trial in range(a.trials):
        op = ops[trial % len(ops)] if trial < len(ops) else rng.choice(ops)
        # Prepare: the operation's preconditions on a clean repository.
        if op == "commit":
            fresh_edit()
            args = ["commit", "-q", "-m", f"trial {trial}"]
        elif op == "checkout":
            branch_head = repo.head()
            target = rng.choice(repo.commits())
            args = ["checkout", "-q", target]
        elif op == "revert":
            args = ["revert", "-q", "HEAD"]
        elif op == "prune":
            args = ["prune", "-q", repo.last_edit(), "--keep", "40%"]
        else:
            args = ["restrain", "-q", *repo.restrain_range()]
        before_head = repo.head()
        before_tree = sha_dir(work)
        if op not in durations:
            # Measure an uninterrupted run on a scratch copy of the repository.
            scratch = os.path.join(work_root, "scratch")
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.copytree(work, scratch, symlinks=True)
            t0 = time.time()
            r = subprocess.run([repo.bin, *args], cwd=scratch, env=repo.env, capture_output=True, text=True)
            durations[op] = time.time() - t0
            shutil.rmtree(scratch, ignore_errors=True)
            if r.returncode not in (0, 1):
                raise RuntimeError(f"uninterrupted {op} failed: {r.stderr.strip()}")
        delay = rng.uniform(0, 1.2 * durations[op])
        p = subprocess.Popen([repo.bin, *args], cwd=work, env=repo.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            p.wait(timeout=delay)
            killed = False
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait()
            killed = True
        rc = p.returncode
        problems = []
        fsck = repo.run("fsck", "-q", "--full", check=False)
        if fsck.returncode != 0:
            problems.append(f"fsck exit {fsck.returncode}: {(fsck.stdout + fsck.stderr).strip()[:300]}")
        st = repo.run("status", "--json", check=False, timeout=60)
        if st.returncode != 0:
            problems.append(f"status exit {st.returncode}: {st.stderr.strip()[:200]}")
        after_head = repo.head() if st.returncode == 0 else None
        state = "?"
        if after_head == before_head:
            if sha_dir(work) == before_tree:
                state = "old"
            else:
                problems.append("HEAD did not move but the work tree changed")
        elif after_head is not None:
            clean = repo.run("status", "--rehash", "--json", check=False)
            if clean.returncode == 0 and json.loads(clean.stdout).get("clean"):
                state = "new"
            else:
                problems.append("HEAD moved but the work tree differs from it")
        results.append({"trial": trial, "op": op, "delay": round(delay, 4), "killed": killed, "rc": rc, "state": state,
                        "problems": problems})
        failures += bool(problems)
        print(f"{trial:4d} {op:9s} delay {delay:6.3f}s {'killed' if killed else f'exit {rc}':7s} state {state:3s} "
              f"{'OK' if not problems else 'FAIL: ' + '; '.join(problems)}", flush=True)
        # Restore a clean state for the next trial.
        if problems:
            repo.run("checkout", "-q", "--force", "HEAD", check=False)
        if op == "commit" and state == "old":
            repo.run("commit", "-q", "-m", f"trial {trial} (again)", check=False)
        if op == "checkout" and repo.head() != branch_head:
            repo.run("checkout", "-q", "main", check=False)
        st = json.loads(repo.run("status", "--json").stdout)
        if not st.get("clean"):
            repo.run("checkout", "-q", "--force", "HEAD")
    elapsed = time.time() - start_all
    killed = sum(r["killed"] for r in results)
    summary = {"trials": len(results), "killed": killed, "failures": failures, "seconds": round(elapsed, 1),
               "uninterrupted_seconds": {k: round(v, 3) for k, v in durations.items()},
               "states": {s: sum(r["state"] == s for r in results) for s in ("old", "new", "?")},
               "by_op": {op: sum(r["op"] == op for r in results) for op in ops}}
    print(json.dumps(summary))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"summary": summary, "trials": results}, f, indent=1)
    shutil.rmtree(work_root, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
