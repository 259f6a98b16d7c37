#!/usr/bin/env python3
"""Lists the source files over 400 lines and the functions over 80 lines, tests left out
(`tests.rs`, `tests/`, and inline `#[cfg(test)] mod tests`), longest first.

    python3 scripts/sizes.py
"""

import os
import re

CRATES = ["gateway/src", "token_module/src"]
FN = re.compile(r"^(\s*)(pub(\([^)]*\))?\s+)?(async\s+)?(const\s+)?fn\s+([a-z_0-9]+)")


def code_files(repo):
    for crate in CRATES:
        for root, _, files in os.walk(os.path.join(repo, crate)):
            for name in files:
                path = os.path.join(root, name)
                rel = os.path.relpath(path, repo)
                if name.endswith(".rs") and name != "tests.rs" and "/tests/" not in rel:
                    yield rel, open(path, encoding="utf-8").read().split("#[cfg(test)]\nmod tests {")[0]


def functions(text):
    """(name, first line, length) of each fn whose body is a brace block."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m:
            continue
        depth, opened = 0, False
        for j in range(i, len(lines)):
            code = re.sub(r'"(\\.|[^"\\])*"|//.*', "", lines[j])
            depth += code.count("{") - code.count("}")
            opened = opened or "{" in code
            if opened and depth <= 0:
                yield m.group(6), i + 1, j - i + 1
                break
            if not opened and code.rstrip().endswith(";"):
                break


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files, fns = [], []
    for rel, text in code_files(repo):
        n = text.count("\n")
        if n > 400:
            files.append((n, rel))
        fns += [(length, f"{rel}:{line} {name}") for name, line, length in functions(text) if length > 80]
    print(f"files over 400 lines: {len(files)}")
    for n, rel in sorted(files, reverse=True):
        print(f"  {n:5} {rel}")
    print(f"functions over 80 lines: {len(fns)}")
    for n, where in sorted(fns, reverse=True):
        print(f"  {n:5} {where}")


if __name__ == "__main__":
    main()
