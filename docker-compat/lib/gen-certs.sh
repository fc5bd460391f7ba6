#!/usr/bin/env bash
# Makes a throwaway CA, a server certificate for 127.0.0.1/localhost and two client
# certificates (one signed by the CA, one by a stranger CA) in the directory given.
set -euo pipefail
dir=${1:?usage: gen-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { # name
  key "$1-key.pem"
  openssl req -x509 -new -key "$1-key.pem" -out "$1.pem" -days 2 -subj "/CN=berth-test-$1" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
leaf() { # name ca extensions...
  local name=$1 ca=$2; shift 2
  key "$name-key.pem"
  openssl req -new -key "$name-key.pem" -out "$name.csr" -subj "/CN=$name" 2>/dev/null
  printf '%s\n' "$@" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca-key.pem" -CAcreateserial \
    -out "$name-cert.pem" -days 2 -extfile "$name.ext" 2>/dev/null
}
ca ca
ca stranger
leaf server ca "subjectAltName=IP:127.0.0.1,DNS:localhost" "extendedKeyUsage=serverAuth"
leaf client ca "extendedKeyUsage=clientAuth"
leaf intruder stranger "extendedKeyUsage=clientAuth"
# The names the docker CLI looks for with --tlsverify and DOCKER_CERT_PATH.
mkdir -p client-dir
cp ca.pem client-dir/ca.pem
cp client-cert.pem client-dir/cert.pem
cp client-key.pem client-dir/key.pem
