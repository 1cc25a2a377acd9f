#!/usr/bin/env bash
# Benchmark: `hardstack up` from a fresh bundle to verified-usable (every service answering a
# TLS-verified login and a real query: up's readiness), against
# `docker compose up --wait` on the generated compose file (every healthcheck passing). Same
# images (the local builds), same machine, runs alternating, stack removed with its volumes
# after each run. A third column times `up` with its closing `verify` (verify's 40 checks), which compose
# has no counterpart for.
#   bench/up.sh [RUNS]     prints the rows of docs/benchmarks.md (default 7 runs each)
runs=${1:-7}
source "$(dirname "$0")/lib.sh"
cleanup() {
  "$bin" down --dir "$work/h" --volumes -q 2>/dev/null || true
  docker compose -f "$work/c/docker-compose.yml" down -v >/dev/null 2>&1 || true
  rm -rf "$work"
}
dev_stack_args hs-bench 25432 26379
args=("${stack_args[@]}")
now() { date +%s%N; }
# Each run starts from a quiet disk: the previous teardown's deletions are written out first.
settle() { sync; }
# hardstack_up_ms [FLAGS]: one `up` from a fresh bundle, in milliseconds; then down.
hardstack_up_ms() {
  rm -rf "$work/h"
  local t0 t1
  t0=$(now); "$bin" up --dir "$work/h" -q "${args[@]}" "$@"; t1=$(now)
  "$bin" down --dir "$work/h" --volumes -q; settle
  echo "$(( (t1 - t0) / 1000000 ))"
}
hs=() hv=() cs=()
for i in $(seq 1 "$runs"); do
  hs+=("$(hardstack_up_ms --no-verify)")

  rm -rf "$work/c"; "$bin" init --dir "$work/c" -q "${args[@]}"
  t0=$(now); docker compose -f "$work/c/docker-compose.yml" up -d --wait >/dev/null 2>&1; t1=$(now)
  cs+=("$(( (t1 - t0) / 1000000 ))")
  docker compose -f "$work/c/docker-compose.yml" down -v >/dev/null 2>&1; settle

  hv+=("$(hardstack_up_ms)")
done
echo "hardstack up --no-verify (ms): ${hs[*]}; compose (ms): ${cs[*]}; hardstack up (ms): ${hv[*]}" >&2
python3 - "${hs[*]}" "${cs[*]}" "${hv[*]}" <<'PY'
import statistics, sys
h, c, v = (statistics.median(map(float, a.split())) / 1000 for a in sys.argv[1:4])
n = len(sys.argv[1].split())
print(f"| `up --no-verify` to verified-usable, dev (postgres + redis), median of {n}, alternating | {h:.2f} s | `docker compose up --wait` on the generated file: {c:.2f} s | {h / c:.2f} | `bench/up.sh {n}` |")
print(f"| `up` to verified-usable and then verified closed (verify's 40 checks), same runs | {v:.2f} s | `docker compose up --wait` (no such checks): {c:.2f} s | {v / c:.2f} | `bench/up.sh {n}` |")
PY
