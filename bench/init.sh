#!/usr/bin/env bash
# Benchmark: wall time of `hardstack init` for the dev bundle against the same cryptographic
# artefacts made with the openssl command line (bench/openssl-bundle.sh). hyperfine alternates
# nothing here, so both run back to back on the same machine; medians of 30 runs each.
#   bench/init.sh            prints the row of docs/benchmarks.md
source "$(dirname "$0")/lib.sh"
command -v hyperfine >/dev/null || { echo "hyperfine is missing: apt-get install hyperfine" >&2; exit 2; }
hyperfine -N --warmup 3 --runs 30 --export-json "$work/result.json" \
  --prepare "rm -rf $work/h $work/o" \
  -n "hardstack init" "$bin init --dir $work/h --quiet" \
  -n "openssl script" "bash bench/openssl-bundle.sh $work/o" >/dev/null
python3 - "$work/result.json" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
h = results["hardstack init"]["median"] * 1000
o = results["openssl script"]["median"] * 1000
print(f"| `init`, dev bundle | {h:.1f} ms | openssl CLI script: {o:.1f} ms | {h / o:.2f} | `bench/init.sh` |")
PY
