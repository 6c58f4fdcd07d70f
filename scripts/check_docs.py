#!/usr/bin/env python3
"""Check README.md and docs/**/*.md.

1. Every relative link (inline `[text](target)`, images, reference
   definitions `[id]: target`) points at a file or directory that exists
   inside the repository, and a `#anchor` on a markdown target names a
   heading there (GitHub-style slugs, duplicates numbered -1, -2, ...) or an
   HTML `id`/`name`. Links inside code are not links and are ignored.
2. README.md opens with the two commands that must keep working: its first
   fenced code block contains `cargo run --release -- demo`, its second
   `bash .ci/run`, and both come before the first `## ` heading.

Usage: python3 scripts/check_docs.py [--root DIR]   (exit 1 listing every problem)
       python3 scripts/check_docs.py --self-test    (proves each check can fail)
Standard library only.
"""
import argparse
import os
import re
import sys
import tempfile
import unicodedata

DEMO_COMMAND = "cargo run --release -- demo"
TEST_COMMAND = "bash .ci/run"

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_ANCHOR = re.compile(r"<a\s+[^>]*(?:id|name)=\"([^\"]+)\"", re.I)
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def strip_code_spans(line):
    return CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)


def prose_lines(text):
    """(line number, line) outside fenced code blocks."""
    fence = None
    for n, line in enumerate(text.split("\n"), 1):
        m = FENCE.match(line)
        if fence is None:
            if m:
                fence = m.group(1)
                continue
            yield n, line
        elif m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) \
                and line.strip() == m.group(1):
            fence = None


def fenced_blocks(text):
    """(start line, body, index of that line) of each fenced code block."""
    blocks, fence, body, start = [], None, [], 0
    for n, line in enumerate(text.split("\n"), 1):
        m = FENCE.match(line)
        if fence is None:
            if m:
                fence, body, start = m.group(1), [], n
        elif m and m.group(1)[0] == fence[0] and line.strip() == m.group(1):
            blocks.append((start, "\n".join(body)))
            fence = None
        else:
            body.append(line)
    return blocks


def heading_text(raw):
    """The text GitHub renders of a heading: links by their text, no HTML tags.
    (Backticks and emphasis stars are punctuation, which `slug` drops.)"""
    t = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)
    return re.sub(r"<[^>]+>", "", t)


def slug(text):
    """GitHub's heading slug (github-slugger): lowercase, drop punctuation, spaces to '-'."""
    out = []
    for ch in text.strip().lower():
        cat = unicodedata.category(ch)
        if ch == " ":
            out.append("-")
        elif ch in "-_" or cat[0] in "LNM":
            out.append(ch)
    return "".join(out)


def anchors(text):
    seen, result = {}, set()
    for _, line in prose_lines(text):
        m = HEADING.match(line)
        if m:
            base = slug(heading_text(m.group(2)))
            k = seen.get(base, 0)
            result.add(base if k == 0 else f"{base}-{k}")
            seen[base] = k + 1
        for a in HTML_ANCHOR.findall(line):
            result.add(a)
    return result


def links(text):
    for n, line in prose_lines(text):
        for m in INLINE_LINK.finditer(strip_code_spans(line)):
            yield n, m.group(1).strip("<>")
        m = REF_DEF.match(line)
        if m:
            yield n, m.group(1).strip("<>")


def markdown_files(root):
    files = [os.path.join(root, "README.md")]
    docs = os.path.join(root, "docs")
    for d, _, names in os.walk(docs):
        files += [os.path.join(d, f) for f in names if f.endswith(".md")]
    return sorted(f for f in files if os.path.isfile(f))


def check_links(root, counted=None):
    problems, cache = [], {}
    root_real = os.path.realpath(root)

    def anchors_of(path):
        if path not in cache:
            with open(path, encoding="utf-8") as f:
                cache[path] = anchors(f.read())
        return cache[path]

    for md in markdown_files(root):
        rel = os.path.relpath(md, root)
        with open(md, encoding="utf-8") as f:
            text = f.read()
        for n, target in links(text):
            if SCHEME.match(target) or target.startswith("//"):
                continue  # http:, https:, mailto: ... are not checked here
            if counted is not None:
                counted.append(target)
            path, _, anchor = target.partition("#")
            dest = md if path == "" else os.path.normpath(os.path.join(os.path.dirname(md), path))
            where = f"{rel}:{n}: link ({target})"
            if not os.path.realpath(dest).startswith(root_real + os.sep) and os.path.realpath(dest) != root_real:
                problems.append(f"{where} points outside the repository")
                continue
            if not os.path.exists(dest):
                problems.append(f"{where}: no such file {os.path.relpath(dest, root)}")
                continue
            if anchor and dest.endswith(".md"):
                if anchor not in anchors_of(dest):
                    problems.append(f"{where}: no heading #{anchor} in {os.path.relpath(dest, root)}")
            elif anchor and os.path.isdir(dest):
                problems.append(f"{where}: an anchor on a directory")
    return problems


def check_readme_commands(root):
    path = os.path.join(root, "README.md")
    if not os.path.isfile(path):
        return ["README.md: missing"]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    blocks = fenced_blocks(text)
    first_h2 = next((n for n, l in prose_lines(text) if l.startswith("## ")), None)
    problems = []
    for i, (cmd, name) in enumerate([(DEMO_COMMAND, "first"), (TEST_COMMAND, "second")]):
        if len(blocks) <= i:
            problems.append(f"README.md: no {name} fenced code block (it must contain `{cmd}`)")
            continue
        start, body = blocks[i]
        if cmd not in body:
            problems.append(f"README.md:{start}: the {name} fenced code block does not contain `{cmd}`")
        if first_h2 is not None and start > first_h2:
            problems.append(f"README.md:{start}: the {name} code block (`{cmd}`) comes after the first ## heading (line {first_h2})")
    return problems


def run(root, counted=None):
    return check_links(root, counted) + check_readme_commands(root)


# ------------------------------------------------------------------ self-test

GOOD_README = """# x

```sh
cargo run --release -- demo
```

```sh
bash .ci/run
```

See [the rules](docs/rules.md#a-rule-reference), [the config](docs/config.md#config-reference-homeostatyaml),
[a dir](docs/) and [out](https://example.com/nope). `[not a link](nowhere.md)`

## Metrics

| family |
|---|
| `homeostat_x` |
"""
GOOD_FILES = {
    "README.md": GOOD_README,
    "docs/rules.md": "# Rules\n\n## A rule reference\n\n## Again\n\n## Again\n\n[self](#again-1) [back](../README.md#metrics)\n\n```\n[in code](missing.md)\n```\n",
    "docs/config.md": "# Config reference (`homeostat.yaml`)\n",
    "docs/metrics.md": "# Metrics\n\n| family |\n|---|\n| `homeostat_x` |\n",
}


def write_tree(root, files):
    for rel, text in files.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w", encoding="utf-8") as f:
            f.write(text)


def self_test():
    cases = [
        ("a good tree passes", {}, []),
        ("a link to a missing file", {"docs/config.md": "# C\n\n[gone](providers/gone.md)\n"},
         ["docs/config.md:3: link (providers/gone.md): no such file docs/providers/gone.md"]),
        ("a missing anchor", {"docs/config.md": "# C\n\n[x](rules.md#no-such-heading)\n"},
         ["no heading #no-such-heading in docs/rules.md"]),
        ("a duplicate heading's second slug is -1, not -2", {"docs/config.md": "# C\n\n[x](rules.md#again-2)\n"},
         ["no heading #again-2"]),
        ("a reference definition", {"docs/config.md": "# C\n\n[x][r]\n\n[r]: ../nowhere.md\n"},
         ["no such file nowhere.md"]),
        ("a link out of the repository", {"docs/config.md": "# C\n\n[x](../../outside.md)\n"},
         ["points outside the repository"]),
        ("README without the demo command",
         {"README.md": GOOD_README.replace("cargo run --release -- demo", "cargo run -- demo")},
         ["the first fenced code block does not contain `cargo run --release -- demo`"]),
        ("README without the test command",
         {"README.md": GOOD_README.replace("bash .ci/run", "bash scripts/test.sh")},
         ["the second fenced code block does not contain `bash .ci/run`"]),
        ("README with both commands in one block",
         {"README.md": GOOD_README.replace("```\n\n```sh\nbash", "bash", 1)},
         ["no second fenced code block"]),
        ("README with no code at all", {"README.md": "# x\n\n## Metrics\n\n| family |\n|---|\n| `homeostat_x` |\n"},
         ["no first fenced code block", "no second fenced code block"]),
        ("commands after the first ## heading",
         {"README.md": "# x\n\n## Intro\n\n" + GOOD_README.split("\n", 2)[2]},
         ["comes after the first ## heading"]),
    ]
    failures = 0
    for name, overrides, expected in cases:
        with tempfile.TemporaryDirectory() as root:
            write_tree(root, {**GOOD_FILES, **overrides})
            problems = run(root)
        ok = (not expected and not problems) or (
            expected and all(any(e in p for p in problems) for e in expected))
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
        if not ok:
            failures += 1
            print(f"     expected {expected or 'no problems'}, got {problems}")
    slugs = {
        "Config reference (`homeostat.yaml`)": "config-reference-homeostatyaml",
        "HTTP API and CLI": "http-api-and-cli",
        "A provider that is down at start-up": "a-provider-that-is-down-at-start-up",
        "`scale_out` / `scale_in`": "scale_out--scale_in",
        "**Bold** and [a link](x.md)": "bold-and-a-link",
    }
    for raw, want in slugs.items():
        got = slug(heading_text(raw))
        ok = got == want
        print(f"{'ok  ' if ok else 'FAIL'} slug of {raw!r} is {want!r}")
        if not ok:
            failures += 1
            print(f"     got {got!r}")
    print(f"self-test: {failures} failure(s)")
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    root = os.path.abspath(args.root)
    counted = []
    problems = run(root, counted)
    for p in problems:
        print(p)
    n = len(markdown_files(root))
    if problems:
        print(f"check_docs: {len(problems)} problem(s) in {n} files")
        return 1
    anchored = sum(1 for c in counted if "#" in c)
    print(f"check_docs: OK ({n} files; {len(counted)} relative links resolve, {anchored} of them"
          " with an anchor; README opens with the two commands)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
