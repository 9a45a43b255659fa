#!/usr/bin/env python3
"""Replaces what stands between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in a Markdown file
with the contents of TABLE, atomically (temp file, fsync, rename).

    scripts/replace-table.py FILE.md NAME TABLE
"""
import os
import sys

readme, name, table_path = sys.argv[1:4]
table = open(table_path).read()
text = open(readme).read()
begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
if begin not in text or end not in text:
    sys.exit(f"{readme}: no {begin} ... {end} markers")
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
tmp = readme + ".tmp"
with open(tmp, "w") as f:
    f.write(head + begin + "\n" + table.rstrip("\n") + "\n" + end + tail)
    f.flush()
    os.fsync(f.fileno())
os.replace(tmp, readme)
