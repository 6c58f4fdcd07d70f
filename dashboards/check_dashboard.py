#!/usr/bin/env python3
"""Check the Grafana dashboards against the metrics the agent really exports.

Every PromQL expression of a dashboard (panel targets, annotation queries,
template variable queries) is scanned for metric names, label names and
legend/annotation label references. Each metric name must be a `homeostat_*`
family registered, with a help text, in src/telemetry/metrics.rs (or one of the
few series Prometheus itself adds to every scrape, such as `up`). Each label
must be one the family carries, or a target label Prometheus adds.

Names are derived the way prometheus-client exposes them: the registry prefix,
the registered name, the unit suffix (`register_with_unit`), then `_total` for
counters and `_bucket`/`_sum`/`_count` for histograms. A family's own `job` or
`instance` label collides with the target labels of the scrape of the agent, so
Prometheus (with the default `honor_labels: false`, as in
deploy/prometheus/homeostat-scrape.yaml) stores it as `exported_job` /
`exported_instance`; those are the names a dashboard must use.

Also checked: valid JSON, a schemaVersion, unique panel ids, unique refIds per
panel, a datasource on every query, panels inside the 24-column grid without
overlaps, and every `$variable` defined. With `--promtool`, every expression is
also parsed by Prometheus's own parser (`promtool check rules`).

Usage:
    python3 dashboards/check_dashboard.py                # dashboards/*.json
    python3 dashboards/check_dashboard.py FILE.json ...
    python3 dashboards/check_dashboard.py --promtool     # and parse with promtool
    python3 dashboards/check_dashboard.py --self-test    # the checker's own tests

Exit status 0 when every dashboard is clean, 1 with one line per problem
otherwise, 2 on a usage error or unreadable metrics source. Standard library
only.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS_RS = os.path.join(ROOT, "src", "telemetry", "metrics.rs")

# Series Prometheus adds to every scrape of the agent itself (not in metrics.rs).
PROMETHEUS_SYNTHETIC = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
}
# Labels Prometheus attaches to every series of a scrape.
TARGET_LABELS = {"job", "instance"}

# Unit suffixes prometheus-client appends (`Unit::X` -> `_x`).
UNITS = {
    "Seconds": "seconds",
    "Bytes": "bytes",
    "Amperes": "amperes",
    "Celsius": "celsius",
    "Grams": "grams",
    "Joules": "joules",
    "Meters": "meters",
    "Ratios": "ratios",
    "Volts": "volts",
}

# Grafana's built-in variables.
GRAFANA_VARS = {
    "__rate_interval",
    "__interval",
    "__interval_ms",
    "__range",
    "__range_s",
    "__range_ms",
    "__from",
    "__to",
    "__dashboard",
    "__org",
    "__user",
    "__name",
    "__all_variables",
    "__timeFilter",
}

PROMQL_KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on",
    "ignoring", "group_left", "group_right", "atan2", "inf", "nan",
}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}

# (where, expression with variables substituted) of every expression checked,
# for the optional syntax check by promtool.
SEEN_EXPRS: list[tuple[str, str]] = []


class Family:
    """One exposed metric family: its sample names and its labels."""

    def __init__(self, name: str, kind: str, labels: set[str], help_text: str):
        self.name = name
        self.kind = kind
        self.help = help_text
        own = set(labels)
        # A family's job/instance is renamed on ingestion (honor_labels: false).
        for clash in TARGET_LABELS & own:
            own.discard(clash)
            own.add("exported_" + clash)
        self.labels = own | TARGET_LABELS

    def samples(self) -> dict[str, set[str]]:
        """Sample name -> the labels its series carry."""
        if self.kind == "counter":
            return {self.name + "_total": self.labels}
        if self.kind == "histogram":
            return {
                self.name + "_bucket": self.labels | {"le"},
                self.name + "_sum": self.labels,
                self.name + "_count": self.labels,
            }
        return {self.name: self.labels}


def _strip_rust_comments(src: str) -> str:
    return re.sub(r"//[^\n]*", "", src)


def load_families(path: str) -> dict[str, set[str]]:
    """Sample name -> labels, for every family registered in metrics.rs."""
    with open(path, encoding="utf-8") as f:
        src = _strip_rust_comments(f.read())
    prefix_m = re.search(r'Registry::with_prefix\(\s*"([^"]+)"\s*\)', src)
    prefix = prefix_m.group(1) + "_" if prefix_m else ""

    # Label sets: `struct XLabels { a: T, b: T }` deriving EncodeLabelSet.
    label_structs: dict[str, set[str]] = {}
    for m in re.finditer(r"struct\s+(\w+)\s*\{([^}]*)\}", src):
        fields = re.findall(r"(?:pub\s+)?(\w+)\s*:", m.group(2))
        label_structs[m.group(1)] = set(fields)

    # `pub struct Metrics { field: Type, ... }`: the kind and label set of each field.
    body = re.search(r"pub\s+struct\s+Metrics\s*\{(.*?)\n\}", src, re.S)
    if not body:
        raise ValueError(f"{path}: no `pub struct Metrics {{ ... }}`")
    fields: dict[str, tuple[str, set[str]]] = {}
    for name, ty in re.findall(r"^\s*(\w+)\s*:\s*([^\n]+?),\s*$", body.group(1), re.M):
        ty = ty.strip()
        if "Histogram" in ty:
            kind = "histogram"
        elif "Counter" in ty:
            kind = "counter"
        elif "Gauge" in ty:
            kind = "gauge"
        else:
            continue  # the registry itself
        generic = re.search(r"(?:Family|HistogramFamily)\s*<\s*(\w+)", ty)
        labels = label_structs.get(generic.group(1), set()) if generic else set()
        fields[name] = (kind, labels)

    samples: dict[str, set[str]] = {}
    reg = re.compile(
        r'\.register(?:_with_unit)?\(\s*"([A-Za-z_:][A-Za-z0-9_:]*)"\s*,\s*'
        r'"((?:[^"\\]|\\.)*)"\s*,\s*(?:Unit::(\w+)\s*,\s*)?m\.(\w+)\.clone\(\)',
        re.S,
    )
    for name, help_text, unit, field in reg.findall(src):
        if field not in fields:
            raise ValueError(f"{path}: {name} registers unknown field m.{field}")
        if not help_text.strip():
            continue  # undocumented: not accepted
        kind, labels = fields[field]
        full = prefix + name
        if unit:
            full += "_" + UNITS.get(unit, unit.lower())
        samples.update(Family(full, kind, labels, help_text).samples())
    if not samples:
        raise ValueError(f"{path}: no registered metric family found")
    return samples


# ----------------------------------------------------------------- PromQL scan

TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<var>\$\{[^}]+\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[^\]]+\]\])
  | (?P<num>[0-9][0-9A-Za-z_.]*|\.[0-9]+)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^=<>(){}\[\],@])
    """,
    re.X,
)


def tokenize(expr: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot read PromQL at {expr[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind != "ws":
            out.append((kind, m.group()))
    return out


def variables(text: str) -> set[str]:
    """Grafana variables referenced in `text`: $x, ${x}, ${x:fmt}, [[x]]."""
    names = set()
    for m in re.finditer(r"\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\[\[([A-Za-z0-9_]+)(?::[^\]]*)?\]\]", text):
        names.add(next(g for g in m.groups() if g))
    return names


class Scan:
    """Metric names, selector labels (per metric) and grouping labels of one expression."""

    def __init__(self):
        self.metrics: list[str] = []
        self.selector_labels: list[tuple[str | None, str]] = []
        self.grouping_labels: list[str] = []


def scan_promql(expr: str) -> Scan:
    toks = tokenize(expr)
    scan = Scan()
    i = 0
    n = len(toks)

    def read_label_list(j: int) -> int:
        """toks[j] is `(`: collect labels until `)`; return the index after it."""
        j += 1
        while j < n and toks[j][1] != ")":
            if toks[j][0] == "ident":
                scan.grouping_labels.append(toks[j][1])
            j += 1
        return j + 1

    def read_selector(j: int, metric: str | None) -> int:
        """toks[j] is `{`: collect matcher labels until `}`; return the index after it."""
        j += 1
        while j < n and toks[j][1] != "}":
            if toks[j][0] == "ident" and j + 1 < n and toks[j + 1][1] in ("=", "!=", "=~", "!~"):
                label = toks[j][1]
                if label == "__name__" and j + 2 < n and toks[j + 2][0] == "str" and toks[j + 1][1] == "=":
                    scan.metrics.append(toks[j + 2][1][1:-1])
                else:
                    scan.selector_labels.append((metric, label))
            j += 1
        return j + 1

    while i < n:
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < n else None
        if kind == "ident":
            low = text.lower()
            if low in LABEL_LIST_KEYWORDS and nxt == "(":
                i = read_label_list(i + 1)
                continue
            if low in PROMQL_KEYWORDS:
                i += 1
                continue
            if nxt == "(" or (nxt or "").lower() in ("by", "without"):
                i += 1  # a function, or an aggregation (`sum by (x) (...)`)
                continue
            scan.metrics.append(text)
            if nxt == "{":
                i = read_selector(i + 1, text)
                continue
            i += 1
            continue
        if kind == "op" and text == "{":
            i = read_selector(i, None)
            continue
        if kind == "op" and text == "[":
            # A range or subquery: durations and variables only.
            while i < n and toks[i][1] != "]":
                i += 1
            i += 1
            continue
        i += 1
    return scan


def template_query_exprs(query: str) -> tuple[list[str], list[str]]:
    """A Prometheus template-variable query -> (PromQL expressions, labels it names)."""
    q = query.strip()
    m = re.fullmatch(r"label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)", q, re.S)
    if m:
        return [m.group(1)], [m.group(2)]
    m = re.fullmatch(r"label_values\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)", q)
    if m:
        return [], [m.group(1)]
    m = re.fullmatch(r"query_result\((.*)\)", q, re.S)
    if m:
        return [m.group(1)], []
    m = re.fullmatch(r"metrics\((.*)\)", q, re.S)
    if m:
        return [], []  # a regex over names, not a name
    if q.startswith("label_names("):
        return [], []
    return [q], []


# ----------------------------------------------------------------- dashboard walk

def all_panels(panels: list[dict]) -> list[dict]:
    out = []
    for p in panels or []:
        out.append(p)
        out.extend(all_panels(p.get("panels", [])))
    return out


def legend_labels(fmt: str | None) -> list[str]:
    if not fmt:
        return []
    return re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", fmt)


def check_expr(where: str, expr: str, known: dict[str, set[str]], extra_labels: list[str], problems: list[str]):
    """Check one PromQL expression and the labels its legend/title refers to."""
    # Variables stand in ranges (`[$__rate_interval]`) or in label values.
    clean = re.sub(r"\$\{[^}]+\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[^\]]+\]\]", "1m", expr)
    SEEN_EXPRS.append((where, clean))
    try:
        scan = scan_promql(clean)
    except ValueError as e:
        problems.append(f"{where}: {e}")
        return
    if not scan.metrics:
        problems.append(f"{where}: no metric in expression {expr!r}")
    union: set[str] = set()
    for name in scan.metrics:
        if name in known:
            union |= known[name]
        elif name in PROMETHEUS_SYNTHETIC:
            union |= TARGET_LABELS
        else:
            problems.append(f"{where}: unknown metric {name} (not registered with a help text in src/telemetry/metrics.rs)")
    for metric, label in scan.selector_labels:
        if metric in known and label not in known[metric]:
            problems.append(f"{where}: {metric} has no label {label} (it has {', '.join(sorted(known[metric]))})")
        elif metric in PROMETHEUS_SYNTHETIC and label not in TARGET_LABELS:
            problems.append(f"{where}: {metric} has no label {label}")
    if union:
        for label in scan.grouping_labels + extra_labels:
            if label not in union and label != "__name__":
                problems.append(f"{where}: label {label} is on none of the metrics of {expr!r}")


def check_dashboard(path: str, known: dict[str, set[str]]) -> list[str]:
    problems: list[str] = []
    try:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        return [f"{path}: not valid JSON: {e}"]
    name = os.path.basename(path)
    if not isinstance(dash.get("schemaVersion"), int):
        problems.append(f"{name}: no schemaVersion")
    if not dash.get("uid"):
        problems.append(f"{name}: no uid")

    defined = set(GRAFANA_VARS)
    for v in dash.get("templating", {}).get("list", []):
        defined.add(v.get("name", ""))
    used_vars: list[tuple[str, str]] = []

    def note_vars(where: str, obj):
        for var in variables(json.dumps(obj)):
            used_vars.append((where, var))

    # Template variables.
    for v in dash.get("templating", {}).get("list", []):
        where = f"{name}: variable ${v.get('name')}"
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else (q or "")
        note_vars(where, q)
        exprs, labels = template_query_exprs(q)
        for e in exprs:
            check_expr(where, e, known, labels, problems)

    # Annotations.
    for a in dash.get("annotations", {}).get("list", []):
        expr = a.get("expr") or (a.get("target") or {}).get("expr")
        if not expr:
            continue
        where = f"{name}: annotation {a.get('name')!r}"
        note_vars(where, expr)
        if not a.get("datasource"):
            problems.append(f"{where}: no datasource")
        extra = legend_labels(a.get("titleFormat")) + legend_labels(a.get("textFormat"))
        extra += [t.strip() for t in (a.get("tagKeys") or "").split(",") if t.strip()]
        check_expr(where, expr, known, extra, problems)

    # Panels.
    ids: dict[int, str] = {}
    cells: dict[tuple[int, int], str] = {}
    for p in all_panels(dash.get("panels", [])):
        title = p.get("title", "?")
        where = f"{name}: panel {title!r}"
        pid = p.get("id")
        if pid in ids:
            problems.append(f"{where}: id {pid} also used by {ids[pid]!r}")
        ids[pid] = title
        g = p.get("gridPos") or {}
        x, y, w, h = (g.get(k) for k in ("x", "y", "w", "h"))
        if None in (x, y, w, h) or x < 0 or w <= 0 or h <= 0 or x + w > 24:
            problems.append(f"{where}: gridPos {g} outside the 24-column grid")
        else:
            for cx in range(x, x + w):
                for cy in range(y, y + h):
                    if (cx, cy) in cells:
                        problems.append(f"{where}: overlaps panel {cells[(cx, cy)]!r}")
                        break
                    cells[(cx, cy)] = title
                else:
                    continue
                break
        if p.get("type") == "row":
            continue
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"{where}: no queries")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or None in refs:
            problems.append(f"{where}: refIds {refs} not unique")
        note_vars(where, p.get("title", ""))
        for t in targets:
            tw = f"{where} {t.get('refId')}"
            if not (t.get("datasource") or p.get("datasource")):
                problems.append(f"{tw}: no datasource")
            expr = t.get("expr")
            if not expr:
                problems.append(f"{tw}: no expr")
                continue
            note_vars(tw, expr)
            check_expr(tw, expr, known, legend_labels(t.get("legendFormat")), problems)
        if p.get("datasource"):
            note_vars(where, p["datasource"])

    for where, var in used_vars:
        if var not in defined:
            problems.append(f"{where}: ${var} is not a variable of the dashboard")
    return problems


# ----------------------------------------------------------------- promtool

def promtool_syntax(exprs: list[tuple[str, str]]) -> list[str] | None:
    """Parse every expression with Prometheus's own parser (`promtool check
    rules` on a file of recording rules). `None` when promtool is missing."""
    if shutil.which("promtool") is None:
        return None
    lines = ["groups:", "  - name: dashboard_check", "    rules:"]
    for i, (_, expr) in enumerate(exprs):
        # JSON strings are YAML strings.
        lines += [f"      - record: dashboard_check:expr_{i + 1}", f"        expr: {json.dumps(expr)}"]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "dashboard_rules.yml")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        out = subprocess.run(["promtool", "check", "rules", path], capture_output=True, text=True)
    if out.returncode == 0:
        return []
    problems = []
    for line in (out.stdout + out.stderr).splitlines():
        m = re.search(r"rule (\d+), \"[^\"]*\": (.*)", line)
        if m and 0 < int(m.group(1)) <= len(exprs):
            where, expr = exprs[int(m.group(1)) - 1]
            problems.append(f"{where}: promtool: {m.group(2)} in {expr!r}")
    return problems or [f"promtool check rules failed:\n{out.stdout}{out.stderr}"]


# ----------------------------------------------------------------- self-test

def self_test() -> int:
    failures = []

    def expect(cond, what):
        if not cond:
            failures.append(what)

    s = scan_promql(
        'histogram_quantile(0.99, sum by (le, group) (rate(homeostat_x_bucket{job=~"a|b", instance!="y"}[5m] offset 1h)))'
        " / on (group) group_left(kind) sum without (state) (foo:bar) and bool 1e3 > Inf"
    )
    expect(s.metrics == ["homeostat_x_bucket", "foo:bar"], f"metrics {s.metrics}")
    expect(("homeostat_x_bucket", "job") in s.selector_labels, f"selector {s.selector_labels}")
    expect(set(s.grouping_labels) == {"le", "group", "kind", "state"}, f"grouping {s.grouping_labels}")
    s = scan_promql('{__name__="homeostat_y", a="sum(b)"} unless count(homeostat_z)')
    expect(s.metrics == ["homeostat_y", "homeostat_z"], f"__name__ {s.metrics}")
    expect(template_query_exprs('label_values(homeostat_build_info{job=~"$job"}, instance)')[1] == ["instance"], "label_values")

    known = load_families(METRICS_RS)
    for name in ("homeostat_actions_total", "homeostat_action_duration_seconds_bucket",
                 "homeostat_store_series", "homeostat_build_info"):
        expect(name in known, f"{name} not derived from metrics.rs")
    expect("homeostat_actions" not in known, "a counter must be exposed with _total")
    expect("exported_job" in known.get("homeostat_scrape_target_up", set()), "job of scrape_target_up is exported_job")

    good = {
        "schemaVersion": 39, "uid": "t",
        "templating": {"list": [{"type": "datasource", "name": "datasource"}]},
        "panels": [{"id": 1, "title": "ok", "type": "timeseries", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 8},
                    "datasource": {"uid": "${datasource}"},
                    "targets": [{"refId": "A", "expr": "sum by (kind) (rate(homeostat_actions_total[$__rate_interval]))",
                                 "legendFormat": "{{kind}}"}]}],
    }
    bad = json.loads(json.dumps(good))
    bad["panels"][0]["targets"][0]["expr"] = 'sum by (kind) (rate(homeostat_nope_total{job="$nojob"}[5m]))'
    bad["panels"].append({"id": 1, "title": "twin", "type": "stat", "gridPos": {"x": 6, "y": 0, "w": 10, "h": 2},
                          "datasource": {"uid": "x"},
                          "targets": [{"refId": "A", "expr": 'homeostat_scrape_target_up{job="a"}', "legendFormat": "{{rule}}"}]})
    bad["panels"].append({"id": 3, "title": "wide", "type": "stat", "gridPos": {"x": 20, "y": 9, "w": 6, "h": 2},
                          "datasource": {"uid": "x"},
                          "targets": [{"refId": "A", "expr": 'homeostat_scrape_target_up{rule="a"}'}]})
    with tempfile.TemporaryDirectory() as d:
        for label, dash, want in (("good", good, []), ("bad", bad, [
            "unknown metric homeostat_nope_total",
            "$nojob is not a variable",
            "id 1 also used",
            "outside the 24-column grid",
            "overlaps panel",
            "label rule is on none",
            "homeostat_scrape_target_up has no label rule",
        ])):
            path = os.path.join(d, label + ".json")
            with open(path, "w") as f:
                json.dump(dash, f)
            problems = check_dashboard(path, known)
            if not want:
                expect(problems == [], f"good dashboard: {problems}")
            for w in want:
                expect(any(w in p for p in problems), f"bad dashboard: no problem {w!r} in {problems}")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "broken.json")
        with open(path, "w") as f:
            f.write("{not json")
        got = check_dashboard(path, known)
        expect(len(got) == 1 and "broken.json: not valid JSON" in got[0], f"invalid JSON: {got}")

    if shutil.which("promtool"):
        got = promtool_syntax([("ok", "sum by (kind) (rate(homeostat_actions_total[1m]))"),
                               ("broken", "sum(rate(homeostat_actions_total[1m])")])
        expect(got is not None and len(got) == 1 and got[0].startswith("broken: promtool:"), f"promtool: {got}")
    else:
        print("SKIPPED (self-test): promtool not installed, syntax check not exercised", file=sys.stderr)

    for f in failures:
        print(f"self-test FAILED: {f}", file=sys.stderr)
    print(f"self-test: {'ok' if not failures else f'{len(failures)} failed'}")
    return 1 if failures else 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dashboards", nargs="*", help="dashboard JSON files (default: dashboards/*.json)")
    ap.add_argument("--metrics", default=METRICS_RS, help="the Rust file registering the families")
    ap.add_argument("--self-test", action="store_true", help="run the checker's own tests")
    ap.add_argument(
        "--promtool",
        action="store_true",
        help="also parse every expression with promtool (required under CI=true; skipped loudly elsewhere when missing)",
    )
    args = ap.parse_args(argv)
    if args.self_test:
        return self_test()
    try:
        known = load_families(args.metrics)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    files = args.dashboards or sorted(glob.glob(os.path.join(ROOT, "dashboards", "*.json")))
    if not files:
        print("error: no dashboard found", file=sys.stderr)
        return 2
    problems = []
    for path in files:
        problems += check_dashboard(path, known)
    if args.promtool:
        syntax = promtool_syntax(SEEN_EXPRS)
        if syntax is None:
            msg = "promtool not installed (apt-get install prometheus)"
            if os.environ.get("CI") == "true":
                problems.append(f"{msg}; CI=true requires it")
            else:
                print(f"\n********\nSKIPPED: {msg}: expressions not parsed\n********\n", file=sys.stderr)
        else:
            problems += syntax
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s) in {len(files)} dashboard(s)", file=sys.stderr)
        return 1
    print(f"ok: {len(files)} dashboard(s), every metric and label is one the agent exports")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
