#!/usr/bin/env python3
"""Finds import cycles between the source files of each crate.

Every `crate::a::b` and `super::a` path in a file (in `use` lines and inline) is an edge from
that file to the file of the longest module prefix that exists (`a/b.rs`, `a/b/mod.rs`,
`a.rs`, `a/mod.rs`). Test modules (`tests.rs`, `tests/`) are left out: they may use anything.
Prints each cycle (a strongly connected component of more than one file) and exits 1 if there
is any; with `--edges`, prints the graph too.

    python3 scripts/import-cycles.py [--edges]
"""

import os
import re
import sys

CRATES = ["gateway/src", "token_module/src"]
PATH = re.compile(r"\b(crate|super)((?:::[a-z_][a-z0-9_]*)+)")


def module_of(rel):
    """`config/file.rs` -> ['config', 'file']; `lib.rs`/`mod.rs` name their directory."""
    parts = rel[:-3].split("/")
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def file_of(src, module):
    """The file that holds `module` (a list of names), or None."""
    if not module:
        return "lib.rs" if os.path.exists(os.path.join(src, "lib.rs")) else None
    base = "/".join(module)
    for candidate in (base + ".rs", base + "/mod.rs"):
        if os.path.exists(os.path.join(src, candidate)):
            return candidate
    return None


def edges(src):
    graph = {}
    for root, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, name), src)
            if name == "tests.rs" or "/tests/" in "/" + rel or rel == "main.rs":
                continue
            here = module_of(rel)
            text = open(os.path.join(src, rel), encoding="utf-8").read()
            # Inline test modules may use anything.
            text = text.split("#[cfg(test)]\nmod tests {")[0]
            targets = graph.setdefault(rel, set())
            for kind, rest in PATH.findall(text):
                names = [n for n in rest.split("::") if n]
                if kind == "crate":
                    path = names
                else:
                    # `super` in a.rs or a/mod.rs is the parent of `a`.
                    supers = 1
                    while names and names[0] == "super":
                        supers += 1
                        names = names[1:]
                    path = here[: len(here) - supers] + names
                for n in range(len(path), -1, -1):
                    target = file_of(src, path[:n])
                    if target:
                        break
                if target and target != rel:
                    targets.add(target)
    return graph


def cycles(graph):
    """Tarjan's strongly connected components with more than one member."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = False
    for crate in CRATES:
        src = os.path.join(repo, crate)
        graph = edges(src)
        if "--edges" in sys.argv:
            for v in sorted(graph):
                for w in sorted(graph[v]):
                    print(f"{crate}: {v} -> {w}")
        for component in cycles(graph):
            found = True
            print(f"{crate}: import cycle among {len(component)} files: {', '.join(component)}")
            for v in component:
                inside = sorted(w for w in graph[v] if w in component)
                print(f"    {v} -> {', '.join(inside)}")
        files = len(graph)
        count = sum(len(t) for t in graph.values())
        print(f"{crate}: {files} files, {count} import edges")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
