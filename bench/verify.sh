#!/usr/bin/env bash
# Benchmark: wall time of `hardstack verify` (every check) on a running dev stack (PostgreSQL +
# Redis from the local images), median of 20 runs with hyperfine.
#   bench/verify.sh     prints the row of docs/benchmarks.md
source "$(dirname "$0")/lib.sh"
up_dev_stack hs-bench-verify 25442 26389
"$bin" verify --dir "$work/s" -q >/dev/null
checks=$("$bin" verify --dir "$work/s" -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["checks"]))')
hyperfine -N --warmup 2 --runs 20 --export-json "$work/r.json" "$bin verify --dir $work/s -q" >/dev/null
python3 - "$work/r.json" "$checks" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"| `verify`, running dev stack (postgres + redis), {sys.argv[2]} checks, median of 20 | {r['median'] * 1000:.0f} ms | target: under 500 ms | {r['median'] / 0.5:.2f} of target | `bench/verify.sh` |")
PY
