#!/usr/bin/env bash
# Benchmark: backup and restore of the same data (pgbench scale 50 in the app database of a dev
# stack, PostgreSQL only, data in volumes), side by side:
#   - `hardstack backup` (pg_basebackup -Fp -X stream + pg_verifybackup in a one-off container,
#     SHA-256 of every file, the row checksums) and `hardstack restore` (after down --volumes:
#     copy, recovery, current credentials, up, verify);
#   - `pg_dump -Fc` of the app database streamed to the host, and `pg_restore` of it into the
#     same server's app database, dropped and made again;
#   - `pg_basebackup` run by hand in a container of the same image, as the backup login.
# Then `hardstack backup --test`. Prints the rows of docs/benchmarks.md.
#   bench/backup.sh
source "$(dirname "$0")/lib.sh"
dev_stack_args hs-bench-backup 25442 26389
args=("${stack_args[@]}" --set 'stack.services=["postgres"]' --set postgres.data=volume)
cleanup() {
  "$bin" down --dir "$work/s" --volumes -q 2>/dev/null || true
  docker rm -f hs-bench-basebackup >/dev/null 2>&1 || true
  rm -rf "$work"
}
now() { date +%s%N; }
ms() { echo "$(( ($2 - $1) / 1000000 ))"; }
size() { du -sb "$1" | cut -f1; }

"$bin" up --dir "$work/s" -q "${args[@]}"
pg=hs-bench-backup-postgres
superuser=(sh -c 'PGPASSWORD=$(cat /etc/hardstack/secrets/superuser.password) exec "$@"' sh)
docker exec "$pg" "${superuser[@]}" pgbench -q -i -s 50 -h /var/run/postgresql -U postgres app >/dev/null 2>&1
rows=$(docker exec "$pg" "${superuser[@]}" psql -tA -h /var/run/postgresql -U postgres -d app -c 'SELECT count(*) FROM pgbench_accounts')
echo "pgbench scale 50: $rows rows in pgbench_accounts" >&2

# hardstack backup.
t0=$(now); "$bin" backup --dir "$work/s" -q; t1=$(now)
hs_backup=$(ms "$t0" "$t1"); set_dir=$(ls -d "$work"/s/backups/2*Z | tail -1); hs_size=$(size "$set_dir")

# pg_dump -Fc, streamed to the host.
t0=$(now); docker exec "$pg" "${superuser[@]}" pg_dump -Fc -h /var/run/postgresql -U postgres -d app >"$work/app.dump"; t1=$(now)
dump_ms=$(ms "$t0" "$t1"); dump_size=$(size "$work/app.dump")

# pg_restore into the app database, dropped and made again (the superuser may reach only the
# databases hardstack makes); hardstack's own restore below brings the set back anyway.
q() { docker exec "$pg" "${superuser[@]}" psql -q -h /var/run/postgresql -U postgres -d postgres -c "$1" >/dev/null; }
q 'DROP DATABASE app WITH (FORCE)'; q 'CREATE DATABASE app OWNER app_owner'
t0=$(now); docker exec -i "$pg" "${superuser[@]}" pg_restore -h /var/run/postgresql -U postgres -d app <"$work/app.dump"; t1=$(now)
restore_dump_ms=$(ms "$t0" "$t1")

# pg_basebackup by hand: the same image, the stack network, the backup login's files.
mkdir -p "$work/bb" "$work/login"
cp "$work/s/ca/ca.crt" "$work/s/certs/clients/backup/client.crt" "$work/s/certs/clients/backup/client.key" "$work/login/"
python3 - "$work/s/secrets/postgres/backup.json" >"$work/login/pgpass" <<'PY'
import json, sys
record = json.load(open(sys.argv[1]))
current = next(v for v in record["versions"] if "current" in v["stages"])
print(f"*:*:*:backup:{current['value']}")
PY
chmod 600 "$work/login/"*
t0=$(now)
docker run --rm --name hs-bench-basebackup --network hs-bench-backup-net -v "$work/login:/login:ro" -v "$work/bb:/bb" \
  -e PGPASSFILE=/login/pgpass --entrypoint pg_basebackup hardstack-local/postgres:17 \
  -d 'host=postgres user=backup sslmode=verify-full sslrootcert=/login/ca.crt sslcert=/login/client.crt sslkey=/login/client.key' \
  -D /bb/base -Fp -X stream -c fast >/dev/null
t1=$(now)
bb_ms=$(ms "$t0" "$t1"); bb_size=$(size "$work/bb")

# hardstack restore, after down --volumes.
"$bin" down --dir "$work/s" --volumes -q
t0=$(now); "$bin" restore --dir "$work/s" -q latest; t1=$(now)
hs_restore=$(ms "$t0" "$t1")
restored=$(docker exec "$pg" "${superuser[@]}" psql -tA -h /var/run/postgresql -U postgres -d app -c 'SELECT count(*) FROM pgbench_accounts')
[ "$restored" = "$rows" ] || { echo "restore lost rows: $restored of $rows" >&2; exit 1; }

# The restore test of the set.
t0=$(now); "$bin" backup --dir "$work/s" --test -q; t1=$(now)
hs_test=$(ms "$t0" "$t1")

python3 - "$hs_backup" "$hs_size" "$dump_ms" "$dump_size" "$bb_ms" "$bb_size" "$hs_restore" "$restore_dump_ms" "$hs_test" <<'PY'
import sys
hb, hsize, dm, dsize, bm, bsize, hr, rm, ht = map(int, sys.argv[1:])
mb = lambda b: f"{b / 1e6:.0f} MB"
s = lambda m: f"{m / 1000:.1f} s"
print(f"| `backup`, pgbench scale 50 (PostgreSQL only): base backup, pg_verifybackup, SHA-256 of every file, row checksums | {s(hb)}, {mb(hsize)} | `pg_dump -Fc`: {s(dm)}, {mb(dsize)}; `pg_basebackup -Fp -X stream` by hand: {s(bm)}, {mb(bsize)} | {hb / dm:.2f} of pg_dump, {hb / bm:.2f} of pg_basebackup | `bench/backup.sh` |")
print(f"| `restore` of that set after `down --volumes` (copy, recovery, current credentials, up, verify) | {s(hr)} | `pg_restore` of the dump into an emptied database: {s(rm)} | {hr / rm:.2f} | `bench/backup.sh` |")
print(f"| `backup --test` of that set (throwaway stack, restore, compare every table, remove) | {s(ht)} | | | `bench/backup.sh` |")
PY
