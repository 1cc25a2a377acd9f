#!/usr/bin/env bash
# A compact entrypoint with the official postgres image's contract (docker-library/postgres 17):
# POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, POSTGRES_INITDB_ARGS and their *_FILE variants,
# PGDATA, scripts in /docker-entrypoint-initdb.d (*.sh, *.sql) run once on an empty data directory
# by a temporary server that listens on the socket only.
set -Eeo pipefail
# Files the server or its init scripts create are its own only (CIS 2.1).
umask 0077

file_env() {
  local var=$1 file_var="${1}_FILE" def=${2:-}
  if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
    echo "error: both $var and $file_var are set (but are exclusive)" >&2; exit 1
  fi
  local val=$def
  if [ -n "${!var:-}" ]; then val=${!var}; elif [ -n "${!file_var:-}" ]; then val=$(< "${!file_var}"); fi
  export "$var"="$val"; unset "$file_var"
}

# The temporary server of the first start: what `pg_ctl -w start` and `pg_ctl -m fast -w stop`
# do, without their tenth-of-a-second polling (two of those ticks per first start). It is
# ready when postmaster.pid's status line says so, as pg_ctl reads it.
# It does not fsync (fsync=off, synchronous_commit=off): the init scripts' statements commit one
# by one and a new database is copied as files (the init SQL picks that strategy when fsync is
# off), each of which would otherwise wait on the disk. After its clean stop, one syncfs(2) of
# the data and WAL filesystems (initdb --sync-only) makes everything durable before the final
# start. A crash before then leaves an unfinished first start either way (the scripts run once).
# It loads no shared library: the final server loads what its configuration names; here they
# would only cost time (passwordcheck recomputes every SCRAM verifier an init script sets,
# 4 to 8 ms each under a 1-CPU limit, to compare it with the role's name).
temporary_server_start() {
  postgres "$@" -c listen_addresses='' -p 5432 -c fsync=off -c synchronous_commit=off -c shared_preload_libraries='' &
  temporary_pid=$!
  local lines=()
  until mapfile -t lines 2>/dev/null < "$PGDATA/postmaster.pid" && [[ ${lines[7]:-} == ready* ]]; do
    if ! kill -0 "$temporary_pid" 2>/dev/null; then
      wait "$temporary_pid" || true
      echo "error: the temporary server did not start" >&2; exit 1
    fi
    sleep 0.01
  done
}
temporary_server_stop() {
  kill -INT "$temporary_pid"
  wait "$temporary_pid" || { echo "error: the temporary server did not stop cleanly" >&2; exit 1; }
  initdb --sync-only --sync-method=syncfs >/dev/null
}

if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi

if [ "$1" = 'postgres' ] && [ "$(id -u)" = '0' ]; then
  mkdir -p "$PGDATA"; chown postgres:postgres "$PGDATA"; chmod 0700 "$PGDATA"
  exec setpriv --reuid postgres --regid postgres --init-groups "$BASH_SOURCE" "$@"
fi

if [ "$1" = 'postgres' ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  file_env POSTGRES_PASSWORD
  file_env POSTGRES_USER postgres
  file_env POSTGRES_DB "$POSTGRES_USER"
  file_env POSTGRES_INITDB_ARGS
  if [ -z "$POSTGRES_PASSWORD" ]; then
    echo "error: database is uninitialized and POSTGRES_PASSWORD(_FILE) is not set" >&2; exit 1
  fi
  mkdir -p "$PGDATA"; chmod 0700 "$PGDATA"
  # The official image's contract: WAL in a directory of its own (another volume).
  waldir=()
  if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
    mkdir -p "$POSTGRES_INITDB_WALDIR"; chmod 0700 "$POSTGRES_INITDB_WALDIR"
    waldir=(--waldir "$POSTGRES_INITDB_WALDIR")
  fi
  # shellcheck disable=SC2086
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") "${waldir[@]}" $POSTGRES_INITDB_ARGS
  printf '\nhost all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"

  export PGPASSWORD=$POSTGRES_PASSWORD
  temporary_server_start "${@:2}"
  if [ "$POSTGRES_DB" != 'postgres' ]; then
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --dbname postgres \
      --set db="$POSTGRES_DB" -c 'CREATE DATABASE :"db"' >/dev/null
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh)  echo "running $f"; if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
      *.sql) echo "running $f"; psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password \
               --dbname "$POSTGRES_DB" -f "$f" >/dev/null ;;
      *)     [ -e "$f" ] && echo "ignoring $f" ;;
    esac
  done
  temporary_server_stop
  unset PGPASSWORD
  echo 'PostgreSQL init process complete; ready for start up.'
fi

exec "$@"
