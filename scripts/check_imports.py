#!/usr/bin/env python3
"""Checks the import rules of DESIGN.md §2 over src/ (run by scripts/test.sh).

1. Nothing under src/model/ or src/spec/ refers to another module of ours.
2. Nothing under src/providers/<name>/ (or src/sources/<name>/) is referred to
   from outside its folder, except by that family's registry.rs.
3. The top-level modules form a DAG: no module pair (or longer circle) refers to
   each other. Within a module, sibling files do not refer to each other in a
   circle either.

A reference is any `crate::a::b` path (in `use` lines or inline) or, inside a
module, `super::x`. Test code (`tests.rs`, `tests_*.rs`, and the trailing
`#[cfg(test)] mod … {}` block of a file) is left out: tests may reach upward to
build their fixtures. `--self-test` proves each rule can fail.
"""
import os
import re
import sys
import tempfile

LEAVES = ("model", "spec")
FAMILIES = ("providers", "sources")


def production_text(path):
    text = open(path, encoding="utf-8").read()
    m = re.search(r"^#\[cfg\(test\)\]\s*\n\s*(pub\s+)?mod\s+\w+\s*\{", text, re.M)
    if m:
        text = text[: m.start()]
    # Drop comments so doc links and prose do not count as references.
    text = re.sub(r"//[^\n]*", "", text)
    return text


def rust_files(src):
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            if f == "tests.rs" or f.startswith("tests_"):
                continue
            yield os.path.join(root, f)


def module_path(src, path):
    """src/a/b/c.rs -> ['a','b','c']; src/a/mod.rs -> ['a']; src/x.rs -> ['x']."""
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    return rel


def crate_refs(text):
    """Every crate::a::b::c path, as a list of segments (use-tree braces expanded one level)."""
    refs = []
    for m in re.finditer(r"\bcrate::((?:[A-Za-z_][A-Za-z0-9_]*::)*)(\{[^;]*?\}|[A-Za-z_][A-Za-z0-9_]*)", text, re.S):
        head = [s for s in m.group(1).split("::") if s]
        tail = m.group(2)
        if tail.startswith("{"):
            inner = tail[1:-1]
            names = re.findall(r"(?:^|,|\{)\s*([A-Za-z_][A-Za-z0-9_]*)", inner)
            if not head and not names:
                continue
            for n in names or [""]:
                refs.append(head + ([n] if n else []))
        else:
            refs.append(head + [tail])
    return refs


def check(src):
    errors = []
    top_edges = {}  # a -> {b: example}
    sibling_edges = {}  # module path tuple -> {file -> {file}}
    for path in rust_files(src):
        mod = module_path(src, path)
        if mod in (["lib"], ["main"]):
            continue
        text = production_text(path)
        rel = os.path.relpath(path, os.path.dirname(src))
        top = mod[0]
        for ref in crate_refs(text):
            if not ref:
                continue
            target = ref[0]
            if target in ("self", "super"):
                continue
            # Rule 1: leaves import nothing of ours.
            if top in LEAVES and target != top:
                errors.append(f"{rel}: src/{top}/ is a leaf but refers to crate::{'::'.join(ref)}")
            # Rule 2: a provider's/source's folder only through its registry.
            if target in FAMILIES and len(ref) >= 2 and os.path.isdir(os.path.join(src, target, ref[1])):
                inside = mod[:2] == [target, ref[1]]
                registry = mod == [target, "registry"]
                if not inside and not registry:
                    errors.append(
                        f"{rel}: refers to crate::{'::'.join(ref)}; "
                        f"src/{target}/{ref[1]}/ may only be reached through src/{target}/registry.rs"
                    )
            if target != top and os.path.exists(os.path.join(src, target + ".rs")) or os.path.isdir(os.path.join(src, target)):
                if target != top:
                    top_edges.setdefault(top, {}).setdefault(target, rel)
            # Sibling edges by crate path inside the same module.
            if target == top and len(mod) >= 2 and len(ref) >= 2:
                parent = tuple(mod[:-1])
                if list(parent) == ref[: len(parent)] and len(ref) > len(parent):
                    sib = ref[len(parent)]
                    if sib != mod[-1]:
                        sibling_edges.setdefault(parent, {}).setdefault(mod[-1], set()).add(sib)
        # Sibling edges by super:: (only from a file that is not a mod.rs).
        if len(mod) >= 2 and not path.endswith("mod.rs"):
            parent = tuple(mod[:-1])
            for m in re.finditer(r"\bsuper::(\{[^;]*?\}|[a-z_][a-z0-9_]*)", text, re.S):
                tok = m.group(1)
                names = re.findall(r"(?:^|,|\{)\s*([a-z_][a-z0-9_]*)", tok[1:-1]) if tok.startswith("{") else [tok]
                for n in names:
                    if os.path.exists(os.path.join(src, *parent, n + ".rs")) or os.path.isdir(os.path.join(src, *parent, n)):
                        if n != mod[-1]:
                            sibling_edges.setdefault(parent, {}).setdefault(mod[-1], set()).add(n)
    # Rule 3: cycles between top-level modules.
    for cyc in cycles({a: set(bs) for a, bs in top_edges.items()}):
        steps = " -> ".join(cyc + [cyc[0]])
        examples = "; ".join(f"{a}->{b} in {top_edges[a][b]}" for a, b in zip(cyc, cyc[1:] + [cyc[0]]))
        errors.append(f"modules refer to each other in a circle: {steps} ({examples})")
    for parent, edges in sorted(sibling_edges.items()):
        for cyc in cycles(edges):
            errors.append(
                f"files of src/{'/'.join(parent)}/ refer to each other in a circle: "
                + " -> ".join(cyc + [cyc[0]])
            )
    return errors


def cycles(edges):
    """One representative cycle per strongly connected component (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strong(w)
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
                out.append(path_through(edges, sorted(comp)))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            strong(v)
    return out


def path_through(edges, comp):
    """A simple cycle inside the component, starting at its first node."""
    start = comp[0]
    members = set(comp)
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges.get(v, ())):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path))
            if w in members and w not in prev:
                prev[w] = v
                queue.append(w)
    return comp


def self_test():
    cases = {
        "leaf": {"model/mod.rs": "use crate::store::Store;\n", "store/mod.rs": ""},
        "provider": {
            "providers/mod.rs": "",
            "providers/registry.rs": "use crate::providers::x::X;\n",
            "providers/x/mod.rs": "",
            "config/mod.rs": "use crate::providers::x::config::XConfig;\n",
        },
        "pair": {"a/mod.rs": "use crate::b::B;\n", "b/mod.rs": "fn f() { crate::a::g() }\n"},
        "files": {"q/mod.rs": "", "q/x.rs": "use super::y::Y;\n", "q/y.rs": "use crate::q::x::X;\n"},
    }
    expect = {"leaf": "is a leaf", "provider": "only be reached through", "pair": "in a circle: a -> b", "files": "files of src/q/"}
    ok = True
    for name, files in cases.items():
        with tempfile.TemporaryDirectory() as d:
            for rel, text in files.items():
                p = os.path.join(d, "src", rel)
                os.makedirs(os.path.dirname(p), exist_ok=True)
                open(p, "w").write(text)
            errs = check(os.path.join(d, "src"))
            if not any(expect[name] in e for e in errs):
                print(f"self-test {name}: expected an error containing {expect[name]!r}, got {errs}")
                ok = False
            if name == "provider" and any(e.startswith("src/providers/registry.rs") for e in errs):
                print(f"self-test provider: the registry itself was flagged: {errs}")
                ok = False
        # A clean tree passes.
    with tempfile.TemporaryDirectory() as d:
        for rel, text in {"model/mod.rs": "", "b/mod.rs": "use crate::model::X;\n", "a/mod.rs": "use crate::b::B;\n"}.items():
            p = os.path.join(d, "src", rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            open(p, "w").write(text)
        errs = check(os.path.join(d, "src"))
        if errs:
            print(f"self-test clean: unexpected errors {errs}")
            ok = False
    print("self-test: " + ("ok" if ok else "FAILED"))
    return ok


def main():
    if "--self-test" in sys.argv:
        if not self_test():
            sys.exit(1)
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    errors = check(os.path.normpath(src))
    for e in errors:
        print(e)
    if errors:
        print(f"{len(errors)} import rule violation(s) (DESIGN.md §2)")
        sys.exit(1)
    print("imports: leaves import nothing, providers/sources only through their registry, no module circles")


if __name__ == "__main__":
    main()
