#!/usr/bin/env bash
# Installs the compose v2 plugin from Debian trixie's docker-compose package (one static binary),
# with apt pointed at the trixie suite of this machine's own mirror.
set -euo pipefail
plugin=/usr/local/lib/docker/cli-plugins/docker-compose
if docker compose version >/dev/null 2>&1; then exit 0; fi
mirror=$( (cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true) | awk '/^URIs:/ {print $2}' | grep -v -- -security | grep /debian | head -n1)
if [ -z "$mirror" ]; then
  mirror=$(awk '$1 == "deb" {print $2}' /etc/apt/sources.list 2>/dev/null | grep -v -- -security | grep /debian | head -n1)
fi
[ -n "$mirror" ] || { echo "no Debian mirror in the apt sources" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" > "$work/sources.list"
opts=(-o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o Dir::State::Lists="$work/lists" -o Dir::Cache="$work/cache" -o APT::Get::List-Cleanup=0)
apt-get "${opts[@]}" update -qq
(cd "$work" && apt-get "${opts[@]}" download docker-compose >/dev/null)
dpkg-deb -x "$work"/docker-compose_*.deb "$work/root"
mkdir -p "$(dirname "$plugin")"
install -m 0755 "$work/root/usr/libexec/docker/cli-plugins/docker-compose" "$plugin"
docker compose version
