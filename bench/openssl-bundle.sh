#!/usr/bin/env bash
# The cryptographic part of the dev bundle made with the openssl command line, for comparison
# with `hardstack init` (bench/init.sh): an ECDSA P-256 CA, three server certificates with the
# same SANs, three client certificates (CN = user), nine 40-character secrets, same modes.
# Config rendering is not reproduced; hardstack's number includes it.
set -euo pipefail
out=$1
umask 077
mkdir -p "$out/ca" "$out/certs/clients" "$out/secrets"
openssl ecparam -name prime256v1 -genkey -noout -out "$out/ca/ca.key" 2>/dev/null
openssl req -x509 -new -key "$out/ca/ca.key" -sha256 -days 3650 -subj "/O=hardstack/CN=hardstack-dev CA" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
  -out "$out/ca/ca.crt" 2>/dev/null
issue() { # dir cn eku [san]
  local dir=$1 cn=$2 eku=$3 san=${4:-}
  mkdir -p "$dir"
  openssl ecparam -name prime256v1 -genkey -noout -out "$dir/key.pem" 2>/dev/null
  openssl req -new -key "$dir/key.pem" -subj "/O=hardstack/CN=$cn" -out "$dir/req.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$eku"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } > "$dir/ext.cnf"
  openssl x509 -req -in "$dir/req.csr" -CA "$out/ca/ca.crt" -CAkey "$out/ca/ca.key" -CAcreateserial -days 397 \
    -sha256 -extfile "$dir/ext.cnf" -out "$dir/cert.pem" 2>/dev/null
  rm -f "$dir/req.csr" "$dir/ext.cnf"
}
for service in postgres redis qdrant; do
  issue "$out/certs/$service" "$service" serverAuth \
    "DNS:hardstack-dev-$service,DNS:$service,DNS:localhost,IP:127.0.0.1,IP:::1"
done
for user in admin health app; do
  issue "$out/certs/clients/$user" "$user" clientAuth
done
for name in pg-superuser pg-admin pg-health pg-app redis-admin redis-health redis-app qdrant-key qdrant-ro-key; do
  openssl rand -base64 48 | tr -dc 'A-Za-z0-9' | head -c 40 > "$out/secrets/$name"
done
chmod 644 "$out"/ca/ca.crt "$out"/certs/*/cert.pem "$out"/certs/clients/*/cert.pem
