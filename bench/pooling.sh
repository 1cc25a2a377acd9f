#!/usr/bin/env bash
# Benchmark: PostgreSQL directly against PgBouncer in front of it, on a dev stack (PostgreSQL +
# PgBouncer from the local images), pgbench's select-only script over TLS verify-full as the
# application login, alternating direct and pooled, medians of RUNS (default 7), min and max:
#   - connection per operation (`pgbench -C`: a new TLS connection and SCRAM login per
#     transaction), transactions per second;
#   - simple-query latency on one connection per client, milliseconds;
#   - PgBouncer's memory after the runs, and the exporters' and Prometheus's (scraping every
#     15 s all the while) beside the servers' (`docker stats`).
#   bench/pooling.sh [RUNS]    prints the rows of docs/benchmarks.md
source "$(dirname "$0")/lib.sh"
runs=${1:-7}
stack_args=(--profile dev --set "stack.name=hs-bench-pool"
            --set 'stack.services=["postgres","redis","pgbouncer","postgres-exporter","redis-exporter","prometheus"]'
            --set images.postgres=hardstack-local/postgres:17 --set images.redis=hardstack-local/redis:8
            --set images.postgres_exporter=hardstack-local/monitoring:trixie
            --set images.redis_exporter=hardstack-local/monitoring:trixie
            --set images.prometheus=hardstack-local/monitoring:trixie
            --set network.ports.postgres=25452 --set network.ports.pgbouncer=26452
            --set network.ports.redis=26379 --set network.ports.prometheus=29090)
cleanup() { "$bin" down --dir "$work/s" --volumes -q 2>/dev/null || true; rm -rf "$work"; }
"$bin" up --dir "$work/s" -q "${stack_args[@]}"
eval "$("$bin" env --dir "$work/s")"
pooled=$DATABASE_URL direct=$DATABASE_DIRECT_URL
echo 'SELECT 1;' > "$work/select.sql"
# pgbench URL: its own options, then the connection string as the database name.
bench() { # bench URL ARGS... -> the pgbench summary
  pgbench -n -f "$work/select.sql" -T 5 -c 4 -j 2 "${@:2}" "$1" 2>&1
}
: > "$work/results"
for run in $(seq "$runs"); do
  for target in direct pooled; do
    url=${!target}
    tps=$(bench "$url" -C | awk '/^tps/ {print $3; exit}')
    latency=$(bench "$url" | awk '/^latency average/ {print $4; exit}')
    echo "$target $tps $latency" >> "$work/results"
  done
done
memory_of() { docker stats --no-stream --format '{{.MemUsage}}' "hs-bench-pool-$1" | cut -d/ -f1 | tr -d ' '; }
memory=$(memory_of pgbouncer)
monitoring="postgres-exporter $(memory_of postgres-exporter), redis-exporter $(memory_of redis-exporter), prometheus $(memory_of prometheus)"
servers="postgres $(memory_of postgres), redis $(memory_of redis)"
python3 - "$work/results" "$runs" "$memory" "$monitoring" "$servers" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
runs, memory, monitoring, servers = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
def of(target, column):
    values = [float(r[column]) for r in rows if r[0] == target]
    return statistics.median(values), min(values), max(values)
def show(v, unit, fmt):
    return f"{v[0]:{fmt}} {unit} (min {v[1]:{fmt}}, max {v[2]:{fmt}})"
d_tps, p_tps = of("direct", 1), of("pooled", 1)
d_lat, p_lat = of("direct", 2), of("pooled", 2)
print(f"| connection per operation through PgBouncer (`pgbench -C`, `SELECT 1`, 4 clients, a new TLS verify-full connection and SCRAM login each), median of {runs}, alternating | {show(p_tps, 'tps', '.0f')} | directly to PostgreSQL: {show(d_tps, 'tps', '.0f')} | {p_tps[0] / d_tps[0]:.2f}x the throughput | `bench/pooling.sh` |")
print(f"| simple-query latency through PgBouncer (`SELECT 1`, 4 clients on one connection each), median of {runs}, alternating | {show(p_lat, 'ms', '.3f')} | directly: {show(d_lat, 'ms', '.3f')} | {p_lat[0] / d_lat[0]:.2f} | `bench/pooling.sh` |")
print(f"| memory PgBouncer adds (after the runs above) | {memory} | | | `bench/pooling.sh` |")
print(f"| memory the exporters and Prometheus add (after the runs above, scraping every 15 s) | {monitoring} | the servers they watch: {servers} | | `bench/pooling.sh` |")
PY
