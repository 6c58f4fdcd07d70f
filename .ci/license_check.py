#!/usr/bin/env python3
"""License and ban check over the resolved dependency graph (cargo metadata).

Fails when any crate in the build graph is under a copyleft licence, when a
banned crate appears, or when a pinned crate drifts from its pin. Runs offline:
the advisory database cannot be fetched from here, so this covers the
`cargo deny check licenses bans` part.
"""
import json
import re
import subprocess
import sys

# SPDX ids we accept (any one alternative of an OR expression must be here,
# and every part of an AND expression).
ALLOWED = {
    "MIT", "Apache-2.0", "Apache-2.0 WITH LLVM-exception", "BSD-2-Clause", "BSD-3-Clause",
    "ISC", "Zlib", "Unicode-3.0", "Unicode-DFS-2016", "0BSD", "CC0-1.0", "MIT-0",
    "BSL-1.0", "Unlicense", "CDLA-Permissive-2.0", "OpenSSL",
}
# Crates that must never be in the graph, with the reason.
BANNED = {
    "serde_yaml": "archived and flagged unmaintained; use yaml_serde (DESIGN.md §7)",
    "openssl-sys": "one TLS stack: rustls",
}
# Crates pinned to an exact version, with the reason.
PINNED = {"evalexpr": ("11.3.1", "the last MIT release; 12+ is AGPL")}


def alternatives(expr):
    """Split an SPDX expression into OR-alternatives, each a list of AND-terms."""
    expr = expr.replace("/", " OR ").replace("(", " ").replace(")", " ")
    for alt in re.split(r"\s+OR\s+", expr.strip()):
        yield [t.strip() for t in re.split(r"\s+AND\s+", alt) if t.strip()]


def acceptable(expr):
    return any(all(term in ALLOWED for term in alt) for alt in alternatives(expr))


def main():
    host = re.search(r"^host: (\S+)$", subprocess.check_output(["rustc", "-vV"], text=True), re.M)[1]
    meta = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", host]))
    resolved = {n["id"] for n in meta["resolve"]["nodes"]}
    problems = []
    count = 0
    for pkg in meta["packages"]:
        if pkg["id"] not in resolved:
            continue
        count += 1
        name, version, lic = pkg["name"], pkg["version"], pkg.get("license")
        if pkg["source"] is None:  # our own crate
            if lic != "Apache-2.0":
                problems.append(f"{name}: our licence must be Apache-2.0, found {lic!r}")
            continue
        if name in BANNED:
            problems.append(f"{name} {version}: banned: {BANNED[name]}")
        if name in PINNED and version != PINNED[name][0]:
            problems.append(f"{name} {version}: must be {PINNED[name][0]} ({PINNED[name][1]})")
        if not lic:
            problems.append(f"{name} {version}: no SPDX licence expression (license-file: {pkg.get('license_file')})")
        elif not acceptable(lic):
            problems.append(f"{name} {version}: licence {lic!r} is not on the allow list")
    for p in problems:
        print("license-check: " + p, file=sys.stderr)
    print(f"license-check: {count} crates checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
