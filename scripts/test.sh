#!/usr/bin/env bash
# The project's test command (README's second command; .ci/run calls it).
# Installs the real components the tests run against, then: format, licences,
# lints, every test, and the benches in test mode (each bench body runs once).
set -euo pipefail
cd "$(dirname "$0")/.."

# --- external programs the tests use (Debian packages), installed idempotently ---
need_pkgs=()
command -v promtool >/dev/null 2>&1 || need_pkgs+=(prometheus)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    echo "!! missing ${need_pkgs[*]} and not root: tests that need them will fail under CI=true and skip loudly otherwise"
  fi
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== licence and ban check"
python3 .ci/license_check.py

echo "== clippy"
cargo clippy --all-targets --locked -- -D warnings

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast
else
  cargo test --locked --no-fail-fast
fi

echo "== benches (test mode: every bench body runs once)"
cargo test --locked --benches -q
