#!/usr/bin/env python3
"""Fails when a top-level module of src/ reaches, directly or through others, a module
that reaches it back, or when two files of one folder do (a folder's mod.rs aside: its
files may use the types it declares).

An edge is a path to a module in code: `use` trees (groups, `self`, aliases) and
qualified paths through `crate::`, `super::` (repeated), `self::` or a declared child
module, with a `pub use` followed to the module it re-exports from. Comments, strings,
char literals and `#[cfg(test)]` items do not count; macros are not expanded.
`-v` prints the top-level graph; `--self-test` checks the checker on a made-up tree."""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
RAW = re.compile(r'b?r(#*)"(?:.|\n)*?"\1')
CHAR = re.compile(r"b?'(?:[^'\\\n]|\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]{1,6}\}|.))'")
STRING = re.compile(r'b?"(?:\\.|[^"\\])*"', re.S)


def strip(text):
    """The code alone: comments, string and char literals blanked (lifetimes kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        word_before = i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            out.append(" ")
        elif not word_before and (m := RAW.match(text, i) or STRING.match(text, i)):
            out.append('""')
            i = m.end()
        elif not word_before and (m := CHAR.match(text, i)):
            out.append("' '")
            i = m.end()
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def matching(code, open_at):
    """The index just past the brace that closes the one at `open_at`."""
    depth = 0
    for j in range(open_at, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(code)


def without_tests(code):
    """Drops every `#[cfg(test)]` item: a braced item whole, else up to its `;`."""
    while (at := code.find("#[cfg(test)]")) >= 0:
        i = at + len("#[cfg(test)]")
        while True:
            rest = code[i:].lstrip()
            i = len(code) - len(rest)
            if not rest.startswith("#["):
                break
            i = code.index("]", i) + 1
        brace, semi = code.find("{", i), code.find(";", i)
        end = matching(code, brace) if 0 <= brace and (semi < 0 or brace < semi) else semi + 1
        code = code[:at] + code[end:]
    return code


def split_top(text):
    """Splits a use group's inside at its top-level commas."""
    parts, depth, item = [], 0, ""
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(item)
            item = ""
        else:
            item += ch
    return [p for p in parts + [item] if p.strip()]


def use_paths(tree):
    """Every (path, name) a use tree brings in: `a::{b, c::d as e}` -> a::b, a::c::d."""
    tree = re.sub(r"\s*(::|[{},])\s*", r"\1", tree.strip())
    if "{" in tree:
        brace = tree.index("{")
        prefix, inner = tree[:brace], tree[brace + 1: matching(tree, brace) - 1]
        return [(prefix + p, n) for part in split_top(inner) for p, n in use_paths(part)]
    path, alias = re.fullmatch(rf"(.*?)(?:\s+as\s+({IDENT}))?", tree).groups()
    segments = [s for s in path.split("::") if s]
    if segments and segments[-1] == "self":
        segments = segments[:-1]
    name = alias or (segments[-1] if segments else "")
    return [("::".join(segments), name)]


def modules():
    """Each module's path (`config::schema`) -> its code, from src/'s files."""
    found = {}
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
                found["::".join(rel)] = without_tests(strip(f.read()))
    return found


def graph():
    """Module -> the modules its code names, re-exports followed."""
    code = modules()
    known = set(code)
    children = {
        m: set(re.findall(rf"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+({IDENT})\s*;", c, re.M))
        for m, c in code.items()
    }

    def absolute(module, path):
        """A path written in `module`, from the crate root; None when not the crate's."""
        segments, base = path.split("::"), module.split("::")
        if segments[0] == "crate":
            base, segments = [], segments[1:]
        elif segments[0] in ("self", "super"):
            while segments and segments[0] in ("self", "super"):
                if segments.pop(0) == "super":
                    base = base[:-1]
        elif segments[0] not in children.get(module, ()):
            return None
        return base + segments

    uses = {
        m: [
            (p, n, bool(public))
            for public, tree in re.findall(r"\b(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", c)
            for p, n in use_paths(tree)
        ]
        for m, c in code.items()
    }
    reexports = {
        m: {n: absolute(m, p) for p, n, public in us if public and n != "*" and absolute(m, p)}
        for m, us in uses.items()
    }

    def resolve(segments, seen=()):
        """The module a crate-rooted path lands in, through re-exports."""
        depth = 0
        while depth < len(segments) and "::".join(segments[: depth + 1]) in known:
            depth += 1
        module = "::".join(segments[:depth])
        rest = segments[depth:]
        target = reexports.get(module, {}).get(rest[0]) if rest else None
        if target and module not in seen:
            return resolve(target + rest[1:], seen + (module,))
        return module

    edges = {}
    for m, c in code.items():
        paths = [p for p, _, _ in uses[m]]
        body = re.sub(r"\buse\s+[^;]+;", " ", c)
        paths += re.findall(rf"(?<![\w:])((?:crate|super|self)(?:::{IDENT})+)", body)
        for child in children[m]:
            paths += re.findall(rf"(?<![\w:])({child}(?:::{IDENT})+)", body)
        targets = set()
        for p in paths:
            segments = absolute(m, p)
            if segments:
                target = resolve(segments)
                if target and target != m:
                    targets.add(target)
        edges[m] = targets
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


def report(kind, edges):
    found = cycles(edges)
    for comp in found:
        inner = [f"{a} -> {b}" for a in comp for b in sorted(edges.get(a, ())) if b in comp]
        print(f"{kind} cycle among {', '.join(comp)}: {'; '.join(inner)}", file=sys.stderr)
    return bool(found)


def layers(edges):
    """The top-level graph, and each folder's files' graph among themselves."""
    top = {}
    for m, targets in edges.items():
        head = m.split("::")[0]
        top.setdefault(head, set()).update(t.split("::")[0] for t in targets)
        top[head].discard(head)
    siblings = {
        m: {t for t in targets if t.rpartition("::")[0] == m.rpartition("::")[0]}
        for m, targets in edges.items()
        if "::" in m
    }
    return top, siblings


def self_test():
    """A tree with one module cycle, one file cycle through a re-export, and edges
    that must not count (a comment, a string, a char literal, a test module)."""
    global ROOT
    import tempfile

    files = {
        "a.rs": "use crate::b::X;\nconst Q: char = '\"';\n// use crate::f;\nconst S: &str = \"crate::f\";\n",
        "b.rs": "pub struct X;\nfn g() { crate::a::h(); }\n",
        "c/mod.rs": "mod d;\nmod e;\npub use d::D;\n",
        "c/d.rs": "pub struct D;\nuse super::{e::{E}};\n",
        "c/e.rs": "pub struct E;\nfn k(_: super::super::c::D) {}\n",
        "f.rs": "#[cfg(test)]\nmod tests {\n    use crate::a::h;\n}\nfn l() { crate::b::g(); }\n",
    }
    with tempfile.TemporaryDirectory() as root:
        for name, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
            with open(os.path.join(root, name), "w", encoding="utf-8") as f:
                f.write(text)
        ROOT = root
        top, siblings = layers(graph())
    assert top == {"a": {"b"}, "b": {"a"}, "c": set(), "f": {"b"}}, top
    assert cycles(top) == [["a", "b"]], cycles(top)
    assert cycles(siblings) == [["c::d", "c::e"]], siblings
    print("module-cycles self-test: the made-up cycles are found, the decoys are not")


def main():
    if "--self-test" in sys.argv:
        self_test()
        return
    edges = graph()
    top, siblings = layers(edges)
    if "-v" in sys.argv:
        for m in sorted(top):
            print(f"{m} -> {', '.join(sorted(top[m]))}")
    bad = report("module", top) | report("file", siblings)
    if bad:
        sys.exit(1)
    print(f"no module cycles among {len(top)} top-level modules of src/, nor among the "
          f"{len(siblings)} files of their folders")


main()
