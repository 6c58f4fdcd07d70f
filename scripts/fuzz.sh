#!/usr/bin/env bash
# Fuzz the parsers of outside input (DESIGN.md §12) with cargo-fuzz.
#
#   scripts/fuzz.sh TARGET|all SECONDS
#
# Targets: exposition otlp_protobuf otlp_json alertmanager promql rules.
# Each runs SECONDS with libFuzzer under AddressSanitizer, debug assertions
# (so arithmetic overflow panics) and a 10 s limit per input, seeded from the
# repository's own examples (fixtures, rule files, queries). Prints one line
# per target: executions and crashes. Exits non-zero if any target crashed;
# the crashing input is in fuzz/artifacts/TARGET/.
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer); on a stable toolchain
# RUSTC_BOOTSTRAP=1 lets rustc accept them, which is what this script does.
# Installs cargo-fuzz (cargo install, from crates.io) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL=(exposition otlp_protobuf otlp_json alertmanager promql rules)
if [ $# -ne 2 ] || ! [[ "$2" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 TARGET|all SECONDS   (targets: ${ALL[*]})" >&2
  exit 2
fi
if [ "$1" = all ]; then targets=("${ALL[@]}"); else targets=("$1"); fi
secs=$2

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

# Seeds: copies of what the repository already has, per target.
seed() {
  local t=$1 dir=fuzz/corpus/$1
  mkdir -p "$dir"
  case $t in
    exposition)
      for f in ../shared/corpus/exposition/*.prom; do
        [ -f "$f" ] && cp "$f" "$dir/seed-$(basename "$f")"
      done ;;
    otlp_json)
      cat > "$dir/seed-one-span.json" <<'JSON'
{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET /pay","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000250000000","status":{"code":2}}]}]}]}
JSON
      ;;
    otlp_protobuf) ;; # libFuzzer finds the wire format from nothing
    alertmanager)
      cp tests/fixtures/alertmanager/*.json "$dir/" ;;
    rules)
      for f in rules/*.yaml rules/examples/*.yaml; do
        cp "$f" "$dir/seed-$(basename "$f")"
      done ;;
    promql)
      # One expression per file, from the rule files and PromQL test cases.
      grep -rhoE "expr: .*" rules tests/promql 2>/dev/null | sed 's/^expr: *//; s/^"//; s/"$//' \
        | sort -u | head -300 | awk -v d="$dir" '{ f = sprintf("%s/seed-%03d", d, NR); printf "%s", $0 > f; close(f) }'
      for q in 'sum by (job) (rate(http_requests_total[5m]))' \
               'histogram_quantile(0.9, sum by (le) (rate(lat_bucket[1m])))' \
               'max_over_time(up[10m:1m]) and on(job) group_left up offset 1m' \
               'label_replace(up, "x", "$1", "job", "(.*)")' \
               'topk(2, count_values("v", up)) > bool 0' 'weird / -weird ^ 2 % 3'; do
        printf '%s' "$q" > "$dir/seed-$(printf '%s' "$q" | cksum | cut -d' ' -f1)"
      done ;;
  esac
}

status=0
summary=()
for t in "${targets[@]}"; do
  seed "$t"
  log=fuzz/fuzz-$t.log
  echo "== $t: ${secs}s" >&2
  set +e
  (cd fuzz && cargo fuzz run --debug-assertions --sanitizer address "$t" "corpus/$t" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1) >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
  crashes=$(ls fuzz/artifacts/"$t" 2>/dev/null | wc -l)
  line="$t: ${execs:-?} execs in ${secs}s, exit $rc, $crashes artifact(s) in fuzz/artifacts/$t"
  summary+=("$line")
  echo "$line" >&2
  if [ "$rc" -ne 0 ]; then
    status=1
    tail -40 "$log" >&2
  fi
done
printf '%s\n' "${summary[@]}"
exit $status
