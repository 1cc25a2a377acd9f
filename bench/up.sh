#!/usr/bin/env bash
# Benchmark: `hardstack up` from a fresh bundle to verified-usable, against `docker compose up
# --wait` on the generated compose file (every healthcheck passing). Same images (the local
# builds), same machine, runs alternating, stack removed with its volumes after each run.
#   bench/up.sh [RUNS]     prints the README row (default 7 runs each)
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
# Each run starts on a quiet machine: the previous run's teardown (the engine removing
# containers and volumes, the kernel writing back what they wrote) finishes first.
settle() { sync; }
hs=() cs=()
for i in $(seq 1 "$runs"); do
  rm -rf "$work/h"
  t0=$(now); "$bin" up --dir "$work/h" -q "${args[@]}"; t1=$(now)
  hs+=("$(( (t1 - t0) / 1000000 ))")
  "$bin" down --dir "$work/h" --volumes -q
  settle

  rm -rf "$work/c"; "$bin" init --dir "$work/c" -q "${args[@]}"
  t0=$(now); docker compose -f "$work/c/docker-compose.yml" up -d --wait >/dev/null 2>&1; t1=$(now)
  cs+=("$(( (t1 - t0) / 1000000 ))")
  docker compose -f "$work/c/docker-compose.yml" down -v >/dev/null 2>&1
  settle
done
echo "hardstack runs (ms): ${hs[*]}; compose runs (ms): ${cs[*]}" >&2
python3 - "${hs[*]}" "${cs[*]}" <<'PY'
import statistics, sys
h = statistics.median(map(float, sys.argv[1].split())) / 1000
c = statistics.median(map(float, sys.argv[2].split())) / 1000
print(f"| `up` to verified-usable, dev (postgres + redis), median of {len(sys.argv[1].split())} | {h:.2f} s | `docker compose up --wait`: {c:.2f} s | {h / c:.2f} | `bench/up.sh` |")
PY
