#!/usr/bin/env python3
"""Rewrites the expected text in Tests/CLITests/HelpTests.swift from the built binary.

Run after a deliberate change to a command's help strings (swift build first):
    scripts/update-help-tests.py [path/to/wledger]
Then review the diff: it is the change users will see.
"""
import os, re, subprocess, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, ".build/debug/wledger")
path = os.path.join(root, "Tests/CLITests/HelpTests.swift")
src = open(path).read()

def current(args):
    out = subprocess.run([binary] + args, env={**os.environ, "COLUMNS": "80"}, capture_output=True, text=True).stdout
    lines = [l.rstrip(" \t\r") for l in out.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines

def replace(m):
    args = re.findall(r'"([^"]*)"', m.group(1))
    body = "\n".join(("        " + l) if l else "" for l in current(args))
    return f'try assertHelp([{m.group(1)}], #"""\n{body}\n        """#)'

new = re.sub(r'try assertHelp\(\[([^\]]*)\], #"""\n.*?\n        """#\)', replace, src, flags=re.S)
open(path, "w").write(new)
print("updated", path)
