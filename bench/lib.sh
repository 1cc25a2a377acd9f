# Sourced by the bench scripts: a release build, a scratch directory removed on exit, and the
# dev stack they measure (PostgreSQL + Redis from the local images, ports away from a real dev
# stack's).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
bin=$PWD/target/release/hardstack
work=$(mktemp -d)
cleanup() { rm -rf "$work"; }
trap 'cleanup' EXIT

# dev_stack_args NAME PG_PORT REDIS_PORT: the profile arguments of a benchmark stack, in $stack_args.
dev_stack_args() {
  stack_args=(--profile dev --set "stack.name=$1" --set 'stack.services=["postgres","redis"]'
              --set images.postgres=hardstack-local/postgres:17 --set images.redis=hardstack-local/redis:8
              --set "network.ports.postgres=$2" --set "network.ports.redis=$3")
}

# up_dev_stack NAME PG_PORT REDIS_PORT: brings such a stack up in $work/s, removed on exit.
up_dev_stack() {
  dev_stack_args "$@"
  cleanup() { "$bin" down --dir "$work/s" --volumes -q 2>/dev/null || true; rm -rf "$work"; }
  "$bin" up --dir "$work/s" -q "${stack_args[@]}"
}
