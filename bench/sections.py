"""Sections of BENCHMARKS.md that a re-measuring script owns, between `<!-- NAME:begin -->` and
`<!-- NAME:end -->` (bench/report.py keeps them when it rewrites the rest of the file)."""
import re


def put(name, section, before=None, path="BENCHMARKS.md"):
    """Replaces section NAME of PATH with SECTION (which carries its own markers); a new section goes
    before section BEFORE when that exists, else at the end. Prints the section."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    assert section.startswith(begin) and section.rstrip().endswith(end), f"section {name} lacks its markers"
    try:
        doc = open(path).read()
    except FileNotFoundError:
        doc = "# Benchmarks\n"
    if begin in doc:
        doc = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda m: section, doc, flags=re.S)
    elif before and f"<!-- {before}:begin -->" in doc:
        doc = doc.replace(f"<!-- {before}:begin -->", section + f"\n\n<!-- {before}:begin -->", 1)
    else:
        doc = doc.rstrip() + "\n\n" + section + "\n"
    open(path, "w").write(doc)
    print(section)
