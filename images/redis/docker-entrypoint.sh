#!/bin/sh
# The official redis image's contract: a first argument that is an option or a .conf file runs
# redis-server with it; started as root, the server drops to the redis user (uid 999).
set -e
case "$1" in
  -*|*.conf) set -- redis-server "$@" ;;
esac
if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
  exec setpriv --reuid redis --regid redis --clear-groups "$0" "$@"
fi
umask 0077
exec "$@"
