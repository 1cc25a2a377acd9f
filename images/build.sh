#!/usr/bin/env bash
# Builds local PostgreSQL 17, Redis and PgBouncer images from Debian trixie packages, for engines that
# cannot reach a registry (air-gapped hosts, and this project's CI machines).
#
#   images/build.sh            debootstrap the base if it is missing; (re)build the thin layers
#                              (the engine's layer cache makes that a second when nothing changed)
#   images/build.sh --force    rebuild everything
#   images/build.sh --qdrant-binary PATH [--qdrant-image NAME]
#                              also make a Qdrant image from a Qdrant release binary you have
#                              (qdrant-x86_64-unknown-linux-gnu.tar.gz from Qdrant's GitHub
#                              releases, unpacked; or one you built). Nothing is downloaded here.
#                              Default name: hardstack-local/qdrant:v1.18.3-unprivileged.
#
# The images honour the official images' contracts (docker-library/postgres 17/bookworm and
# redis/docker-library-redis debian/, their Dockerfiles and docker-entrypoint.sh):
# postgres: PGDATA=/var/lib/postgresql/data, POSTGRES_{USER,PASSWORD,DB,INITDB_ARGS}[_FILE],
#           /docker-entrypoint-initdb.d, CMD ["postgres"], uid/gid 999.
# redis:    WORKDIR /data, CMD ["redis-server"], a first argument ending in .conf runs redis-server, uid/gid 999.
# pgbouncer: ENTRYPOINT ["/usr/sbin/pgbouncer"], CMD the config's path, uid/gid 999 (psql beside it
#           for the healthcheck).
# haproxy:  as the official haproxy:3.0 image: uid/gid 99, the configuration in /usr/local/etc/haproxy
#           (the Qdrant front).
# The Debian mirror is read from this machine's apt sources; no host is written here.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
suite=trixie
base_image=hardstack-local/debian-base:trixie
pg_image=${HARDSTACK_POSTGRES_IMAGE:-hardstack-local/postgres:17}
redis_image=${HARDSTACK_REDIS_IMAGE:-hardstack-local/redis:8}
pgbouncer_image=${HARDSTACK_PGBOUNCER_IMAGE:-hardstack-local/pgbouncer:1.24}
monitoring_image=${HARDSTACK_MONITORING_IMAGE:-hardstack-local/monitoring:trixie}
haproxy_image=${HARDSTACK_HAPROXY_IMAGE:-hardstack-local/haproxy:3.0}
force=
qdrant_binary=
qdrant_image=hardstack-local/qdrant:v1.18.3-unprivileged
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=--force ;;
    --qdrant-binary) qdrant_binary=${2:?--qdrant-binary needs the path of a Qdrant binary}; shift ;;
    --qdrant-image) qdrant_image=${2:?--qdrant-image needs an image name}; shift ;;
    *) echo "error: unknown argument $1 (--force, --qdrant-binary PATH, --qdrant-image NAME)" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$qdrant_binary" ] && [ ! -x "$qdrant_binary" ]; then
  echo "error: $qdrant_binary is not an executable file; pass the qdrant binary of a Qdrant release" >&2; exit 2
fi

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

debian_mirror() {
  # First URIs/deb line of the main Debian archive (not -security) in the apt sources.
  local uri
  uri=$( (cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true) \
    | awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' | grep -v -- '-security' | grep '/debian' | head -n1)
  if [ -z "$uri" ]; then
    uri=$( (cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true) \
      | awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; break}}' \
      | grep -v -- '-security' | grep '/debian' | head -n1)
  fi
  [ -n "$uri" ] || { echo "error: no Debian mirror found in /etc/apt/sources.list*; add one and rerun" >&2; exit 2; }
  echo "$uri"
}

if [ "$force" = "--force" ] || ! have_image "$base_image"; then
  command -v debootstrap >/dev/null || { echo "error: debootstrap is missing: apt-get install debootstrap" >&2; exit 2; }
  mirror=$(debian_mirror)
  root=$(mktemp -d /var/tmp/hardstack-rootfs.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  echo "debootstrap $suite from $mirror (about 2.5 minutes)"
  debootstrap --variant=minbase --include=postgresql-17,redis-server,ca-certificates,util-linux,tzdata,locales \
    "$suite" "$root" "$mirror" >/var/tmp/hardstack-debootstrap.log 2>&1 \
    || { tail -n 30 /var/tmp/hardstack-debootstrap.log >&2; exit 2; }
  # The package's own cluster and caches are not part of the image.
  rm -rf "$root"/var/lib/postgresql/17 "$root"/etc/postgresql/17 "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/lib/apt/lists/*
  echo "docker import $base_image"
  tar -C "$root" -c . | docker import - "$base_image" >/dev/null
  rm -rf "$root"
  trap - EXIT
fi

echo "docker build $pg_image"
DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="$base_image" -t "$pg_image" "$here/postgres" >/dev/null
echo "docker build $redis_image"
DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="$base_image" -t "$redis_image" "$here/redis" >/dev/null
echo "docker build $pgbouncer_image"
DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="$base_image" -t "$pgbouncer_image" "$here/pgbouncer" >/dev/null
echo "docker build $monitoring_image"
DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="$base_image" -t "$monitoring_image" "$here/monitoring" >/dev/null
echo "docker build $haproxy_image"
DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="$base_image" -t "$haproxy_image" "$here/haproxy" >/dev/null
built="$pg_image $redis_image $pgbouncer_image $monitoring_image $haproxy_image"
if [ -n "$qdrant_binary" ]; then
  echo "docker build $qdrant_image from $qdrant_binary"
  context=$(mktemp -d /var/tmp/hardstack-qdrant.XXXXXX)
  cp "$here/qdrant/Dockerfile" "$here/qdrant/entrypoint.sh" "$context/"
  cp "$qdrant_binary" "$context/qdrant"; chmod 0755 "$context/qdrant"
  DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="$base_image" -t "$qdrant_image" "$context" >/dev/null \
    || { rm -rf "$context"; exit 2; }
  rm -rf "$context"
  built="$built $qdrant_image"
fi
echo "images built: $built"
