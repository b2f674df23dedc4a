#!/usr/bin/env python3
"""Fails when a top-level module of src/ reaches, directly or through others, a module
that reaches it back, or when two files of one folder do (a folder's mod.rs aside: its
files may use the types it declares). An edge is any path to a module in code (`use`
lines and qualified paths, through `crate::`, `super::`, `self::` or a declared child);
comments, doc comments, string literals and `#[cfg(test)]` modules do not count."""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def strip(text):
    """Drops comments and string literals, so doc links and messages are no edges."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return re.sub(r"//[^\n]*", "", text)


def uses(code):
    """Every top-level module a file names: `crate::a::..` and `use crate::{a, b::c}`."""
    found = set(re.findall(r"\bcrate::([a-z_][a-z0-9_]*)", code))
    for group in re.findall(r"\bcrate::\{([^;]*?)\}\s*;", code, flags=re.S):
        depth, item = 0, ""
        for ch in group + ",":
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                name = re.match(r"\s*([a-z_][a-z0-9_]*)", item)
                if name:
                    found.add(name.group(1))
                item = ""
            else:
                item += ch
    return found


def graph():
    edges = {}
    for dirpath, _, files in os.walk(ROOT):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, ROOT)
            top = rel.split(os.sep)[0].removesuffix(".rs")
            if top in ("lib", "main"):
                continue
            with open(path, encoding="utf-8") as f:
                code = strip(f.read())
            for target in uses(code):
                if target != top and target not in ("self", "super"):
                    edges.setdefault(top, set()).add(target)
    return edges


def cycles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return out


def file_graph():
    """Edges between the modules of files (`config::schema`), from their non-test code."""
    raw = {}
    for dirpath, _, files in os.walk(ROOT):
        for name in files:
            if not name.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), ROOT)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel in (["lib"], ["main"]):
                continue
            with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                code = strip(f.read())
            code = code.split("#[cfg(test)]")[0]
            here, parent = "::".join(rel), "::".join(rel[:-1])
            found = set(re.findall(r"\bcrate::((?:[a-z_]+::)*[a-z_]+)", code))
            for base, kw in ((parent, "super"), (here, "self")):
                for path in re.findall(rf"\b{kw}::((?:[a-z_]+::)*[a-z_]+)", code):
                    found.add(f"{base}::{path}" if base else path)
                for group in re.findall(rf"\buse {kw}::\{{([^;]*)\}};", code, flags=re.S):
                    for item in re.findall(r"(?:^|,)\s*([a-z_]+)", group):
                        found.add(f"{base}::{item}" if base else item)
            for child in re.findall(r"^\s*(?:pub(?:\([a-z]+\))? )?mod ([a-z_]+);", code, flags=re.M):
                if re.search(rf"(?<![:\w]){child}::", code):
                    found.add(f"{here}::{child}")
            raw[here] = found
    known = set(raw)

    def module(path):
        while path and path not in known:
            path = "::".join(path.split("::")[:-1])
        return path

    return {m: {module(p) for p in ps if module(p) not in ("", m)} for m, ps in raw.items()}


def sibling_cycles():
    """Cycles among the files of one folder, the folder's own mod.rs left out."""
    edges = file_graph()
    siblings = {}
    for m, targets in edges.items():
        parent = m.rpartition("::")[0]
        if not parent:
            continue
        same = {t for t in targets if t.rpartition("::")[0] == parent}
        siblings[m] = same
    return cycles(siblings), siblings


def main():
    edges = graph()
    if "-v" in sys.argv:
        for v in sorted(edges):
            print(f"{v} -> {', '.join(sorted(edges[v]))}")
    found = cycles(edges)
    for comp in found:
        inner = [f"{a} -> {b}" for a in comp for b in sorted(edges.get(a, ())) if b in comp]
        print(f"module cycle among {', '.join(comp)}: {'; '.join(inner)}", file=sys.stderr)
    within, siblings = sibling_cycles()
    for comp in within:
        inner = [f"{a} -> {b}" for a in comp for b in sorted(siblings[a]) if b in comp]
        print(f"file cycle among {', '.join(comp)}: {'; '.join(inner)}", file=sys.stderr)
    if found or within:
        sys.exit(1)
    tops = len(set(edges) | {w for ws in edges.values() for w in ws})
    print(f"no module cycles among {tops} top-level modules of src/, nor among the "
          f"{len(siblings)} files of their folders")


main()
