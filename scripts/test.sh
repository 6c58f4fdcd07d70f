#!/usr/bin/env bash
# The project's test command (README's second command; .ci/run calls it).
# Installs the real components the tests run against, then: format, licences,
# lints, every test, and the benches in test mode (each bench body runs once).
set -euo pipefail
cd "$(dirname "$0")/.."

# --- external programs the tests use (Debian packages), installed idempotently ---
need_pkgs=()
command -v promtool >/dev/null 2>&1 || need_pkgs+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need_pkgs+=(prometheus-alertmanager)
command -v haproxy >/dev/null 2>&1 || need_pkgs+=(haproxy)
command -v docker-compose >/dev/null 2>&1 || need_pkgs+=(docker-compose)
command -v systemd-analyze >/dev/null 2>&1 || need_pkgs+=(systemd)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    echo "!! missing ${need_pkgs[*]} and not root: tests that need them will fail under CI=true and skip loudly otherwise"
  fi
fi

# The OpenTelemetry Python SDK, for the OTLP receiver test (a real trace client).
if ! python3 -c 'import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http' >/dev/null 2>&1; then
  echo "== installing the OpenTelemetry Python SDK"
  python3 -m pip install -q opentelemetry-sdk opentelemetry-exporter-otlp-proto-http \
    || python3 -m pip install -q --break-system-packages opentelemetry-sdk opentelemetry-exporter-otlp-proto-http
fi

# kubernetes-validate: checks deploy/kubernetes/ against the Kubernetes schemas (bundled, offline).
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  echo "== installing kubernetes-validate"
  python3 -m pip install -q kubernetes-validate \
    || python3 -m pip install -q --break-system-packages kubernetes-validate
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== licence and ban check"
python3 .ci/license_check.py

echo "== dashboard: every metric and label it uses exists; promtool parses every query"
python3 dashboards/check_dashboard.py --self-test
python3 dashboards/check_dashboard.py --promtool

echo "== docs: every relative link resolves; README opens with the two commands"
python3 scripts/check_docs.py --self-test
python3 scripts/check_docs.py

echo "== clippy"
cargo clippy --all-targets --locked -- -D warnings
# The provider adapters are features: the slim build (process + webhook) must build too.
cargo clippy --lib --locked --no-default-features -- -D warnings

echo "== tests"
test_log=$(mktemp)
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast 2>&1 | tee "$test_log"
else
  cargo test --locked --no-fail-fast 2>&1 | tee "$test_log"
fi
# nextest: "Summary [ 8.4s] 338 tests run: 338 passed, 1 skipped"
summary=$(grep -E 'tests run: [0-9]+ passed' "$test_log" | tail -n 1 || true)
passed=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$summary")
failed=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$summary")
skipped=$(sed -nE 's/.* ([0-9]+) skipped.*/\1/p' <<<"$summary")
rm -f "$test_log"

echo "== benches (test mode: every bench body runs once)"
# (`--bench '*'`, not `--benches`: the library counts as a bench target and
# its unit tests already ran above.)
cargo test --locked --bench '*' -q

echo "== fuzz: every target 30 s (cargo-fuzz on stable via RUSTC_BOOTSTRAP=1, see scripts/fuzz.sh)"
bash scripts/fuzz.sh all 30

echo "== the demo (README's first command, debug build): every step must happen"
demo_dir=$(mktemp -d)
demo_log=$(mktemp)
trap 'rm -rf "$demo_dir"' EXIT
cargo run --locked -q -- demo --data-dir "$demo_dir" --listen 127.0.0.1:19898 > "$demo_log" 2>&1 || {
  cat "$demo_log"; echo "!! the demo failed"; exit 1; }
tail -n 25 "$demo_log"
rm -f "$demo_log"

# The closing line CI reads: the counts of the test run above.
echo "tests: ${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
