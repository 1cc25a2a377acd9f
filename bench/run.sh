#!/usr/bin/env bash
# Every benchmark of hardstack, each against its baseline measured in the same run, alternating
# (baseline, hardstack, baseline, ...), medians of RUNS (default 7) with min and max. Prints the
# rows of the README's table, after a line saying when and on what machine. Nothing is typed in
# by hand: every number in a row is measured here, or read from the stack (auth_delay).
#
#   bench/run.sh [NAME...]      NAME: up-postgres up-dev verify backup restore rotate memory init pooling failover
#                               redis-failover
#   RUNS=9 bench/run.sh up-postgres
#   BASELINE_BIN=/path/to/an/older/hardstack bench/run.sh restore   (restore and backup --test
#                               against an older build; without it those rows show no baseline)
#   BENCH_RAW=1 bench/run.sh up-dev   (the `up` rows' runs, each side's milliseconds in order, on
#                               stderr)
#
# Needs the engine and the local images (.ci/setup), psql, redis-cli, curl, python3; `init`
# needs hyperfine and openssl, `pooling` pgbench. Uses ports 25400-29100 on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-7}
all=(up-postgres up-dev verify backup restore rotate memory init pooling failover redis-failover)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${all[@]}")
for name in "${names[@]}"; do
  [[ " ${all[*]} " == *" $name "* ]] || { echo "unknown benchmark $name; one of: ${all[*]}" >&2; exit 64; }
done

cargo build --release -q
bin=$PWD/target/release/hardstack
work=$(mktemp -d)
stacks=()
# The data volumes the floors' containers leave (the `up` benchmarks keep every run's data
# until the end; see alternate_rounds), removed on exit.
floor_volumes=$work/floor-volumes
cleanup() {
  for dir in "${stacks[@]}"; do "$bin" down --dir "$dir" --volumes -q >/dev/null 2>&1 || true; done
  docker rm -f -v hs-bench-floor-postgres hs-bench-floor-redis hs-bench-floor-qdrant hs-bench-basebackup >/dev/null 2>&1 || true
  [ -f "$floor_volumes" ] && xargs -r docker volume rm <"$floor_volumes" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# The local images (what `up` falls back to where no registry answers), and Qdrant's where built.
pg_image=hardstack-local/postgres:17
redis_image=hardstack-local/redis:8
qdrant_image=$(docker images --format '{{.Repository}}:{{.Tag}}' | grep -m1 -E '(^|/)qdrant' || true)
images=(--set images.postgres=$pg_image --set images.redis=$redis_image)

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# stats VALUES...: "median min max" (milliseconds in, as given).
stats() { python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(statistics.median(v), min(v), max(v))' "$@"; }
# seconds "median min max" -> "1.23 s (1.10-1.40)"
seconds() { python3 -c 'import sys; m,a,b=(float(x)/1000 for x in sys.argv[1:4]); print(f"{m:.2f} s ({a:.2f}-{b:.2f})")' $1; }
millis() { python3 -c 'import sys; m,a,b=(float(x) for x in sys.argv[1:4]); print(f"{m:.0f} ms ({a:.0f}-{b:.0f})")' $1; }
ratio() { python3 -c 'import sys; print(f"{float(sys.argv[1].split()[0]) / float(sys.argv[2].split()[0]):.2f}")' "$1" "$2"; }
row() { echo "| $1 | $2 | $3 | $4 | $5 |"; }
# stack_dir NAME: sets the caller's `dir` to a stack directory removed (with its stack) on exit.
stack_dir() { dir=$work/$1; stacks+=("$dir"); }

# --- the floor: an image started alone, as `docker run` would, until it answers over TCP -----

# limits_of CONTAINER: "NANO_CPUS INITDB_ARGS" of a container hardstack made.
limits_of() {
  echo "$(docker inspect -f '{{.HostConfig.NanoCpus}}' "$1")" \
    "$(docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$1" | sed -n 's/^POSTGRES_INITDB_ARGS=//p')"
}

# floor NAME NANO_CPUS READY -- DOCKER_RUN_ARGS...: starts a container of that name alone with
# that CPU limit, runs the function READY every 10 ms until it succeeds, removes the container
# (its data volume stays until the end, as every run's does); prints the milliseconds from
# `docker run` to READY.
floor() {
  local name=$1 cpus=$2 ready=$3 t0 t1; shift 4
  t0=$(now_ms)
  docker run -d --name "$name" --cpus "$(python3 -c "print($cpus / 1e9)")" "$@" >/dev/null
  until "$ready" >/dev/null 2>&1; do sleep 0.01; done
  t1=$(now_ms)
  docker inspect -f '{{range .Mounts}}{{if eq .Type "volume"}}{{println .Name}}{{end}}{{end}}' "$name" >>"$floor_volumes"
  docker rm -f "$name" >/dev/null; sync
  echo $((t1 - t0))
}

# floor_postgres "NANO_CPUS INITDB_ARGS": the image alone with that CPU limit and those initdb
# arguments (limits_of the container hardstack made), until `select 1` over TCP succeeds.
postgres_answers() { PGPASSWORD=bench-floor psql -w -tA -h 127.0.0.1 -p 25400 -U postgres -c 'select 1'; }
floor_postgres() {
  floor hs-bench-floor-postgres "${1%% *}" postgres_answers -- \
    -e POSTGRES_PASSWORD=bench-floor -e POSTGRES_INITDB_ARGS="${1#* }" -p 127.0.0.1:25400:5432 \
    "$pg_image" postgres -c listen_addresses='*'
}

# floor_redis "NANO_CPUS": the image alone (same CPU limit) until PING answers over TCP.
redis_answers() { [ "$(redis-cli -p 25401 PING)" = PONG ]; }
floor_redis() {
  floor hs-bench-floor-redis "${1%% *}" redis_answers -- -p 127.0.0.1:25401:6379 "$redis_image" redis-server --protected-mode no
}

# floor_qdrant "NANO_CPUS": the image alone (same CPU limit) until its REST API lists collections.
qdrant_answers() { curl -fs http://127.0.0.1:25402/collections; }
floor_qdrant() {
  floor hs-bench-floor-qdrant "${1%% *}" qdrant_answers -- -p 127.0.0.1:25402:6333 "$qdrant_image"
}

# hardstack_up DIR ARGS...: one `up --no-verify` of a new stack from the fresh directory DIR,
# named as DIR is, in milliseconds; `down_stack` then removes its containers and network, and
# its volumes stay until the end.
hardstack_up() {
  local dir=$1 t0 t1; shift
  t0=$(now_ms); "$bin" up --dir "$dir" -q --no-verify --set "stack.name=${dir##*/}" "$@"; t1=$(now_ms)
  echo $((t1 - t0))
}
down_stack() { "$bin" down --dir "$1" -q; sync; }

# alternate_rounds FLOOR NAME ARGS...: RUNS rounds of the function FLOOR (milliseconds, appended
# to the caller's `floor`) and one `up` of a new stack NAME-ROUND (appended to the caller's
# `hs`), the side that goes first alternating from round to round (ABBA).
# No run's data is deleted before the harness ends, so every run starts as a first `up` on a
# machine that deleted nothing just before. This machine kind's root filesystem (ext4 without a
# journal) skips every inode freed in the last minutes when it allocates one, scanning past
# them one by one: in a series that removed each run's data, every new file cost more than the
# one before (initdb took 1.2 s in the first run and 2.5 s in the eighth), and a run that makes
# more files (hardstack's stack has the application's database beside initdb's three) paid
# proportionally more. The containers are removed after each run; each run ends with a sync.
alternate_rounds() {
  local floor_of=$1 name=$2 round dir; shift 2
  for round in $(seq "$runs"); do
    (( round % 2 )) && floor+=("$("$floor_of")")
    stack_dir "$name-$round"
    hs+=("$(hardstack_up "$dir" "$@")"); down_stack "$dir"
    (( round % 2 )) || floor+=("$("$floor_of")")
  done
  [ -z "${BENCH_RAW:-}" ] || echo "$name: hardstack ${hs[*]}; baseline ${floor[*]}" >&2
}

bench_up_postgres() {
  local dir hs=() floor=()
  local args=(--set 'stack.services=["postgres"]' --set network.ports.postgres=25410 "${images[@]}")
  # A first run, not counted, warms the caches and gives the container's limits.
  stack_dir hs-bench-up-0
  hardstack_up "$dir" "${args[@]}" >/dev/null
  local limits; limits=$(limits_of hs-bench-up-0-postgres)
  down_stack "$dir"
  floor_once() { floor_postgres "$limits"; }
  alternate_rounds floor_once hs-bench-up "${args[@]}"
  local h f
  h=$(stats "${hs[@]}"); f=$(stats "${floor[@]}")
  row "\`up --no-verify\`, dev, PostgreSQL only: to an application's TLS login and query, median of $runs (min-max), alternating" \
    "$(seconds "$h")" "the same image alone (\`docker run\`, same CPU limit and initdb arguments) to \`select 1\` over TCP: $(seconds "$f")" \
    "$(ratio "$h" "$f")" "≤ 1.2"
}

bench_up_dev() {
  local dir hs=() floor=() services='"postgres","redis"'
  [ -n "$qdrant_image" ] && services='"postgres","redis","qdrant","qdrant-front"'
  local args=(--set "stack.services=[$services]" --set network.ports.postgres=25420
              --set network.ports.redis=25421 --set network.ports.qdrant=25422 --set network.ports.qdrant_grpc=25423 "${images[@]}")
  [ -n "$qdrant_image" ] && args+=(--set "images.qdrant=$qdrant_image" --set images.qdrant_front=hardstack-local/haproxy:3.0)
  stack_dir hs-bench-dev-0
  hardstack_up "$dir" "${args[@]}" >/dev/null
  local pg redis qdrant=""
  pg=$(limits_of hs-bench-dev-0-postgres); redis=$(limits_of hs-bench-dev-0-redis)
  [ -n "$qdrant_image" ] && qdrant=$(limits_of hs-bench-dev-0-qdrant)
  down_stack "$dir"
  # The slowest of the images, each started alone the same way.
  floor_once() {
    local alone=("$(floor_postgres "$pg")" "$(floor_redis "$redis")")
    [ -n "$qdrant_image" ] && alone+=("$(floor_qdrant "$qdrant")")
    printf '%s\n' "${alone[@]}" | sort -n | tail -1
  }
  alternate_rounds floor_once hs-bench-dev "${args[@]}"
  local h f what=${services//\"/}
  h=$(stats "${hs[@]}"); f=$(stats "${floor[@]}")
  row "\`up --no-verify\`, dev, every service ($what): each usable as an application would use it, median of $runs (min-max), alternating" \
    "$(seconds "$h")" "the slowest of the images alone, each started the same way: $(seconds "$f")" "$(ratio "$h" "$f")" "≤ 1.2"
}

bench_verify() {
  local dir times=() t0 t1 checks delay
  stack_dir verify
  "$bin" up --dir "$dir" -q --set stack.name=hs-bench-verify --set 'stack.services=["postgres","redis"]' \
    --set network.ports.postgres=25430 --set network.ports.redis=25431 "${images[@]}"
  checks=$("$bin" verify --dir "$dir" -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["checks"]))')
  delay=$(sed -n 's/^auth_delay.milliseconds = //p' "$dir/config/postgres/postgresql.conf")
  for _ in $(seq "$runs"); do
    t0=$(now_ms); "$bin" verify --dir "$dir" -q >/dev/null; t1=$(now_ms); times+=($((t1 - t0)))
  done
  local v; v=$(stats "${times[@]}")
  row "\`verify\`, running dev stack (PostgreSQL, Redis), $checks checks, median of $runs (min-max)" "$(millis "$v")" \
    "PostgreSQL's auth_delay ($delay ms, paid by the refused logins) + 100 ms: $((delay + 100)) ms" \
    "$(python3 -c "print(f'{${v%% *} / $((delay + 100)):.2f}')")" "≤ 1"
}

# A dev stack with PostgreSQL only, data in volumes, pgbench scale 50 in the app database.
pgbench_stack() {
  local dir=$1 name=$2 port=$3 build=${4:-$bin}
  "$build" up --dir "$dir" -q --no-verify --set "stack.name=$name" --set 'stack.services=["postgres"]' \
    --set postgres.data=volume --set "network.ports.postgres=$port" "${images[@]}"
  docker exec "$name-postgres" sh -c 'PGPASSWORD=$(cat /etc/hardstack/secrets/superuser.password) exec pgbench -q -i -s 50 -h /var/run/postgresql -U postgres app' >/dev/null 2>&1
}

# basebackup_by_hand DIR NAME: pg_basebackup -Fp -X stream in a container of the same image on
# the stack network, as the backup login (its certificate and password); milliseconds.
basebackup_by_hand() {
  local dir=$1 name=$2 login=$work/login out=$work/by-hand t0 t1
  if [ ! -d "$login" ]; then
    mkdir -p "$login"
    cp "$dir/ca/ca.crt" "$dir/certs/clients/backup/client.crt" "$dir/certs/clients/backup/client.key" "$login/"
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("*:*:*:backup:" + next(v["value"] for v in r["versions"] if "current" in v["stages"]))' \
      "$dir/secrets/postgres/backup.json" >"$login/pgpass"
    chmod 600 "$login"/*
  fi
  rm -rf "$out"; mkdir -p "$out"; sync
  t0=$(now_ms)
  docker run --rm --name hs-bench-basebackup --network "$name-net" -v "$login:/login:ro" -v "$out:/bb" \
    -e PGPASSFILE=/login/pgpass --entrypoint pg_basebackup "$pg_image" \
    -d 'host=postgres user=backup sslmode=verify-full sslrootcert=/login/ca.crt sslcert=/login/client.crt sslkey=/login/client.key' \
    -D /bb/base -Fp -X stream -c fast >/dev/null
  t1=$(now_ms)
  rm -rf "$out"
  echo $((t1 - t0))
}

bench_backup() {
  local dir hs=() by_hand=() t0 t1 size
  stack_dir backup
  pgbench_stack "$dir" hs-bench-backup 25440
  for _ in $(seq "$runs"); do
    by_hand+=("$(basebackup_by_hand "$dir" hs-bench-backup)")
    sync; t0=$(now_ms); "$bin" backup --dir "$dir" -q; t1=$(now_ms); hs+=($((t1 - t0)))
  done
  size=$(du -sb "$(ls -d "$dir"/backups/2*Z | tail -1)" | cut -f1)
  local h b
  h=$(stats "${hs[@]}"); b=$(stats "${by_hand[@]}")
  row "\`backup\`, pgbench scale 50 ($((size / 1000000)) MB): base backup, checked against the server's manifest, BLAKE3 of every file, rows counted, median of $runs (min-max), alternating" \
    "$(seconds "$h")" "\`pg_basebackup -Fp -X stream\` by hand, same image, same login: $(seconds "$b")" "$(ratio "$h" "$b")" "≤ 1.3"
}

# restore and backup --test of a set, this build against BASELINE_BIN when given (each of a
# set it made).
bench_restore() {
  local dir restore=() test=() old_restore=() old_test=() t0 t1
  stack_dir restore
  local dirs=("$dir") builds=("$bin")
  pgbench_stack "$dir" hs-bench-restore 25450
  "$bin" backup --dir "$dir" -q
  if [ -n "${BASELINE_BIN:-}" ]; then
    # The baseline restores and tests a set it made, of a stack it made (a set's format is a
    # build's own: an older build need not read a newer one's).
    stack_dir restore-baseline
    dirs=("$dir" "${dirs[@]}"); builds=("$BASELINE_BIN" "${builds[@]}")
    pgbench_stack "$dir" hs-bench-restore-baseline 25452 "$BASELINE_BIN"
    "$BASELINE_BIN" backup --dir "$dir" -q
  fi
  for _ in $(seq "$runs"); do
    for i in "${!builds[@]}"; do
      local build=${builds[$i]} d=${dirs[$i]}
      "$build" down --dir "$d" --volumes -q; sync
      t0=$(now_ms); "$build" restore --dir "$d" -q latest; t1=$(now_ms)
      local r=$((t1 - t0))
      sync; t0=$(now_ms); "$build" backup --dir "$d" --test -q; t1=$(now_ms)
      local t=$((t1 - t0))
      if [ "$build" = "$bin" ]; then restore+=("$r"); test+=("$t"); else old_restore+=("$r"); old_test+=("$t"); fi
    done
  done
  local r t baseline_r="" baseline_t="" ratio_r="" ratio_t=""
  r=$(stats "${restore[@]}"); t=$(stats "${test[@]}")
  if [ -n "${BASELINE_BIN:-}" ]; then
    local version; version=$("$BASELINE_BIN" --version | cut -d' ' -f2-)
    local orr ott; orr=$(stats "${old_restore[@]}"); ott=$(stats "${old_test[@]}")
    baseline_r="hardstack $version: $(seconds "$orr")"; ratio_r=$(ratio "$r" "$orr")
    baseline_t="hardstack $version: $(seconds "$ott")"; ratio_t=$(ratio "$t" "$ott")
  fi
  row "\`restore\` of that set after \`down --volumes\` (set checked, copy, recovery, current credentials, up, verify), median of $runs (min-max)" \
    "$(seconds "$r")" "$baseline_r" "$ratio_r" "≤ 1 (no slower)"
  row "\`backup --test\` of that set (throwaway stack, restore, every table's rows and checksum, remove), median of $runs (min-max)" \
    "$(seconds "$t")" "$baseline_t" "$ratio_t" "≤ 1 (no slower)"
}

bench_rotate() {
  local line
  line=$(cargo test --release -q --test it rotate::load_test -- --nocapture 2>/dev/null | grep -m1 'load test:' || true)
  row "rotation of every password and certificate, three rounds, under load (4 clients, a new TLS connection and login per operation)" \
    "${line#load test: }" "" "" "0 failures"
  if [ -n "$qdrant_image" ]; then
    line=$(HARDSTACK_REQUIRE_QDRANT=1 cargo test --release -q --test it front::every_users_key_rotates -- --nocapture 2>/dev/null | grep -m1 'front rotation:' || true)
    row "Qdrant keys behind the front: REST and gRPC clients that re-read their key before each request" "${line#front rotation: }" "" "" "0 failures"
  fi
}

# Peak resident memory of every command on a dev stack (GNU time's maximum RSS).
bench_memory() {
  local dir peaks=()
  stack_dir memory
  local args=(--set stack.name=hs-bench-memory --set 'stack.services=["postgres","redis"]' --set postgres.data=volume
              --set network.ports.postgres=25460 --set network.ports.redis=25461 "${images[@]}")
  peak() { # peak LABEL COMMAND...
    local label=$1; shift
    /usr/bin/time -f '%M' -o "$work/rss" "$@" >/dev/null 2>&1 || { echo "$label failed" >&2; return 1; }
    peaks+=("$label $(cat "$work/rss")")
  }
  peak init "$bin" init --dir "$dir" -q "${args[@]}"
  peak up "$bin" up --dir "$dir" -q
  peak plan "$bin" plan --dir "$dir"
  peak status "$bin" status --dir "$dir" --details
  peak env "$bin" env --dir "$dir"
  peak verify "$bin" verify --dir "$dir" -q
  peak audit "$bin" audit --dir "$dir"
  peak doctor "$bin" doctor --dir "$dir"
  peak rotate "$bin" rotate --dir "$dir" --force -q
  peak backup "$bin" backup --dir "$dir" -q
  peak "backup --test" "$bin" backup --dir "$dir" --test -q
  "$bin" down --dir "$dir" --volumes -q
  peak restore "$bin" restore --dir "$dir" -q latest
  peak down "$bin" down --dir "$dir" --volumes -q
  local most listed
  most=$(printf '%s\n' "${peaks[@]}" | awk '{print $NF}' | sort -n | tail -1)
  listed=$(printf '%s\n' "${peaks[@]}" | awk '{kb=$NF; $NF=""; printf "%s%s %.1f", sep, $0, kb/1024; sep="; "} END {print ""}' | sed 's/  / /g')
  row "peak memory of every command (MB, maximum resident set)" "$listed" "" "" "largest $(python3 -c "print(f'{$most / 1024:.1f}')") MB, target < 40"
}

bench_init() {
  command -v hyperfine >/dev/null || { echo "init: hyperfine is missing (apt-get install hyperfine)" >&2; return 1; }
  hyperfine -N --warmup 3 --runs "$((runs * 4))" --export-json "$work/init.json" --prepare "rm -rf $work/h $work/o" \
    -n hardstack "$bin init --dir $work/h --quiet" -n openssl "bash bench/openssl-bundle.sh $work/o" >/dev/null
  python3 - "$work/init.json" "$((runs * 4))" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
h, o = r["hardstack"], r["openssl"]
ms = lambda x: f'{x["median"] * 1000:.1f} ms ({min(x["times"]) * 1000:.1f}-{max(x["times"]) * 1000:.1f})'
print(f'| `init`, dev bundle (CA, certificates, secrets, every configuration), median of {sys.argv[2]} (min-max) | {ms(h)} | the certificates and secrets alone with the openssl command line (`bench/openssl-bundle.sh`): {ms(o)} | {h["median"] / o["median"]:.2f} | |')
PY
}

bench_pooling() {
  local dir
  stack_dir pooling
  "$bin" up --dir "$dir" -q --set stack.name=hs-bench-pool \
    --set 'stack.services=["postgres","pgbouncer"]' --set images.pgbouncer=hardstack-local/pgbouncer:1.24 \
    --set network.ports.postgres=25470 --set network.ports.pgbouncer=25471 "${images[@]}"
  eval "$("$bin" env --dir "$dir")"
  echo 'SELECT 1;' >"$work/select.sql"
  local direct=() pooled=()
  for _ in $(seq "$runs"); do
    direct+=("$(pgbench -n -f "$work/select.sql" -T 5 -c 4 -j 2 -C "$DATABASE_DIRECT_URL" 2>&1 | awk '/^tps/ {print $3; exit}')")
    pooled+=("$(pgbench -n -f "$work/select.sql" -T 5 -c 4 -j 2 -C "$DATABASE_URL" 2>&1 | awk '/^tps/ {print $3; exit}')")
  done
  local d p
  d=$(stats "${direct[@]}"); p=$(stats "${pooled[@]}")
  tps() { python3 -c 'import sys; m,a,b=(float(x) for x in sys.argv[1:4]); print(f"{m:.0f} tps ({a:.0f}-{b:.0f})")' $1; }
  row "a new TLS connection and SCRAM login per \`SELECT 1\` through PgBouncer (\`pgbench -C\`, 4 clients), median of $runs (min-max), alternating" \
    "$(tps "$p")" "directly to PostgreSQL: $(tps "$d")" "$(ratio "$p" "$d")x the throughput" ""
}

# A writer's log, "MS ok|fail" per attempt (lines starting with # are comments), for the
# failover rows. outage LOG: "MS FAILED", MS from the last write before the first failure to the
# first write after the last one (-1 when writes never came back), FAILED the failed attempts.
outage() {
  python3 - "$1" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
fails = [i for i, r in enumerate(rows) if r[1] == "fail"]
if not fails:
    print(0, 0); sys.exit()
before = int(rows[fails[0] - 1][0]) if fails[0] > 0 else int(rows[0][0])
after = next((int(r[0]) for r in rows[fails[-1] + 1:] if r[1] == "ok"), None)
print(-1 if after is None else after - before, len(fails))
PY
}
# count VALUES...: "median (min-max)" of whole numbers.
count() { python3 -c 'import statistics,sys; v=[int(x) for x in sys.argv[1:]]; print(f"{statistics.median(v):.0f} ({min(v)}-{max(v)})")' "$@"; }

# A writer during a PostgreSQL switchover, a failover by `up`, and a kill that nothing answers:
# psql over libpq's multi-host URL of every node with target_session_attrs=read-write, one
# INSERT per connection (as an application that reconnects and retries would), each attempt
# logged with its time. The outage is from the last write before the first failure to the first
# write after the last one; rounds alternate the three.
bench_failover() {
  local dir url ports
  stack_dir failover
  "$bin" up --dir "$dir" -q --set stack.name=hs-bench-failover --set 'stack.services=["postgres"]' \
    --set postgres.replicas=1 --set network.ports.postgres=25480 --set network.ports.postgres_replicas=25481 "${images[@]}"
  eval "$("$bin" env --dir "$dir")"
  url="${DATABASE_URL/@localhost:25480/@localhost:25480,localhost:25481}&target_session_attrs=read-write&connect_timeout=2"
  psql "$DATABASE_URL" -w -q -c 'CREATE TABLE written (n bigint PRIMARY KEY, kind text NOT NULL)'
  # write KIND LOG: INSERTs until $work/stop exists; "MS ok|fail" per attempt.
  write() {
    local n=0
    while [ ! -e "$work/stop" ]; do
      n=$((n + 1))
      if psql "$url" -w -tAq -c "INSERT INTO written VALUES ($(now_ms)$n, '$1')" >/dev/null 2>&1; then
        echo "$(now_ms) ok"; else echo "$(now_ms) fail"; fi
    done >"$2"
  }
  # primary: the container of the node topology.json names (node 0 without it).
  primary() {
    local node
    node=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["postgres_primary"])' "$dir/topology.json" 2>/dev/null || echo 0)
    if [ "$node" = 0 ]; then echo hs-bench-failover-postgres; else echo "hs-bench-failover-postgres-$node"; fi
  }
  # round KIND LOG: the writer through one event.
  round() {
    rm -f "$work/stop"; write "$1" "$2" & local writer=$!
    sleep 1
    case $1 in
      switchover) "$bin" switchover --dir "$dir" -q postgres >/dev/null ;;
      failover) docker kill "$(primary)" >/dev/null; "$bin" up --dir "$dir" -q >/dev/null ;;
      kill) local killed; killed=$(primary); docker kill "$killed" >/dev/null; sleep 10
            touch "$work/stop"; wait "$writer"; docker start "$killed" >/dev/null
            "$bin" up --dir "$dir" -q >/dev/null; return ;;
    esac
    sleep 2; touch "$work/stop"; wait "$writer"
  }
  local switched=() switch_failed=() failed_over=() failover_failed=() killed=() kill_failed=() lost=0 o
  for i in $(seq "$runs"); do
    round kill "$work/kill-$i"; o=($(outage "$work/kill-$i")); killed+=("${o[0]}"); kill_failed+=("${o[1]}")
    round switchover "$work/switch-$i"; o=($(outage "$work/switch-$i")); switched+=("${o[0]}"); switch_failed+=("${o[1]}")
    round failover "$work/failover-$i"; o=($(outage "$work/failover-$i")); failed_over+=("${o[0]}"); failover_failed+=("${o[1]}")
  done
  # Every write a switchover round saw committed is on the primary.
  local acknowledged present
  acknowledged=$(cat "$work"/switch-* | grep -c ' ok$' || true)
  eval "$("$bin" env --dir "$dir")"
  present=$(psql "$DATABASE_URL" -w -tA -c "SELECT count(*) FROM written WHERE kind = 'switchover'")
  [ "$present" -ge "$acknowledged" ] || lost=$((acknowledged - present))
  local never=0
  for k in "${killed[@]}"; do [ "$k" = -1 ] && never=$((never + 1)); done
  local baseline="the primary killed (\`docker kill\`) with nothing promoting: writes never came back in $never of $runs rounds of 10 s, $(count "${kill_failed[@]}") failed operations"
  row "PostgreSQL switchover (\`hardstack switchover postgres\`, 1 replica), a writer over libpq's multi-host URL with \`target_session_attrs=read-write\` (one INSERT per connection), median of $runs (min-max), alternating" \
    "writes failed for $(millis "$(stats "${switched[@]}")"), $(count "${switch_failed[@]}") failed operations, $lost acknowledged rows lost" "$baseline" "" "0 rows lost"
  row "PostgreSQL failover: the primary killed (\`docker kill\`), then \`hardstack up\` at once, the same writer, median of $runs (min-max)" \
    "writes failed for $(millis "$(stats "${failed_over[@]}")"), $(count "${failover_failed[@]}") failed operations" "$baseline" "" ""
}

# A writer during a Redis failover under Sentinel, and a kill that nothing answers: redis-py
# (bench/redis-writer.py, in the client image .ci/setup builds, on the stack's network), INCR
# every 10 ms over a pooled connection. Through the Sentinels, the primary's container killed:
# Sentinel promotes the replica, the client asks the Sentinels again; `up` then brings the old
# node back as a replica. The baseline: the Sentinels stopped, a client of the primary alone,
# the primary killed. Rounds alternate the two.
bench_redis_failover() {
  local dir client=hardstack-local/redis-client:trixie name=hs-bench-rfailover
  docker image inspect "$client" >/dev/null 2>&1 || { echo "no $client: .ci/setup builds it" >&2; exit 1; }
  stack_dir redis-failover
  "$bin" up --dir "$dir" -q --set stack.name=$name --set 'stack.services=["redis"]' \
    --set redis.replicas=1 --set redis.sentinels=3 --set network.ports.redis=25490 "${images[@]}"
  local sentinels=("$name-redis-sentinel" "$name-redis-sentinel-1" "$name-redis-sentinel-2")
  # redis_primary: the alias of the node topology.json names (node 0 without it).
  redis_primary() {
    local node
    node=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["redis_primary"])' "$dir/topology.json" 2>/dev/null || echo 0)
    if [ "$node" = 0 ]; then echo redis; else echo "redis-$node"; fi
  }
  # redis_round KIND LOG: the writer through one event (until 20 s after the kill, 10 s where
  # nothing promotes); the stack whole again after it.
  redis_round() {
    local primary writer after=20
    primary=$(redis_primary)
    "$bin" env --dir "$dir" -o json >"$work/redis-env.json"
    rm -rf "$work/redis-stop"; mkdir "$work/redis-stop"
    [ "$1" = sentinel ] || { after=10; docker stop "${sentinels[@]}" >/dev/null; }
    docker run --rm --network "$name-net" --dns-opt timeout:1 --dns-opt attempts:1 \
      -v "$work/redis-env.json:/client/env.json:ro" -v "$dir:$dir:ro" -v "$work/redis-stop:/stop:ro" \
      -v "$PWD/bench/redis-writer.py:/writer.py:ro" "$client" /writer.py "$1" "app:bench-$1" "$primary" >"$2" &
    writer=$!
    until grep -q ' ok$' "$2" 2>/dev/null; do
      kill -0 "$writer" 2>/dev/null || { echo "the Redis writer stopped: $(cat "$2")" >&2; exit 1; }
      sleep 0.05
    done
    sleep 1
    local since; since=$(date -u +%Y-%m-%dT%H:%M:%S)
    docker kill "$name-$primary" >/dev/null
    sleep "$after"; touch "$work/redis-stop/stop"; wait "$writer"
    if [ "$1" = sentinel ] && [ "$(outage "$2" | cut -d' ' -f1)" = -1 ]; then
      # Writes that did not come back: what the Sentinels did meanwhile, on stderr (the table
      # stays on stdout).
      echo "redis-failover: writes did not come back within ${after} s; the Sentinels' events:" >&2
      for s in "${sentinels[@]}"; do
        docker logs --since "$since" "$s" 2>&1 \
          | grep -E 'sdown|odown|epoch|failover|elected|vote|switch-master|selected|tilt' | sed "s/^/$s: /" >&2
      done
    fi
    [ "$1" = sentinel ] || docker start "$name-$primary" "${sentinels[@]}" >/dev/null
    "$bin" up --dir "$dir" -q >/dev/null || {
      docker ps -a --filter "label=hardstack.stack=$name" --format '{{.Names}} {{.Status}}' >&2
      for node in "$name-redis" "$name-redis-1" "${sentinels[@]}"; do docker logs --tail 15 "$node" 2>&1 | sed "s/^/$node: /" >&2; done
      exit 1
    }
  }
  local failed_over=() failover_failed=() killed=() kill_failed=() lost=() o
  for i in $(seq "$runs"); do
    redis_round direct "$work/redis-kill-$i"; o=($(outage "$work/redis-kill-$i")); killed+=("${o[0]}"); kill_failed+=("${o[1]}")
    redis_round sentinel "$work/redis-sentinel-$i"; o=($(outage "$work/redis-sentinel-$i")); failed_over+=("${o[0]}"); failover_failed+=("${o[1]}")
    # Acknowledged increments the new primary does not have (Redis replicates asynchronously).
    lost+=("$(awk '/^# acknowledged/ { print ($5 >= 0 && $3 > $5) ? $3 - $5 : 0 }' "$work/redis-sentinel-$i")")
  done
  local never=0 stuck=0 resumed=()
  for k in "${killed[@]}"; do [ "$k" = -1 ] && never=$((never + 1)); done
  # A round whose writes did not come back within the 20 s it watches counts apart, not as a
  # number in the median.
  for k in "${failed_over[@]}"; do if [ "$k" = -1 ]; then stuck=$((stuck + 1)); else resumed+=("$k"); fi; done
  [ ${#resumed[@]} -gt 0 ] || resumed=(-1)
  failed_over=("${resumed[@]}")
  row "Redis failover under Sentinel (1 replica, 3 Sentinels, \`down-after-milliseconds\` 5000, 6000, 7000): the primary killed (\`docker kill\`), redis-py through the Sentinels (INCR every 10 ms, 0.5 s timeouts), median of $runs (min-max), alternating" \
    "writes failed for $(millis "$(stats "${failed_over[@]}")") where they came back, not within 20 s in $stuck of $runs rounds; $(count "${failover_failed[@]}") failed operations, $(count "${lost[@]}") acknowledged increments lost" \
    "the primary killed with nothing promoting (the Sentinels stopped), redis-py on the primary: writes did not come back within 10 s in $never of $runs rounds, $(count "${kill_failed[@]}") failed operations" "" ""
}

echo "Measured $(date -u +%Y-%m-%d) by \`bench/run.sh\` on $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB, Debian $(cut -d. -f1 /etc/debian_version), Docker Engine $(docker version -f '{{.Server.Version}}'), $(git rev-parse --short HEAD):"
echo
row "benchmark" "hardstack" "baseline, measured in the same run" "ratio" "target"
row "---" "---" "---" "---" "---"
# In the order of `all`: the `up` benchmarks first, before anything else deletes files.
for name in "${all[@]}"; do
  if [[ " ${names[*]} " == *" $name "* ]]; then "bench_${name//-/_}"; fi
done
