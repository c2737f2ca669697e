#!/usr/bin/env bash
# Certificates for a Docker daemon's mutual-TLS listener in pruneguard's tests (`dockerd
# --tlsverify`): a private CA, a server certificate and a client certificate it signed, with
# EC P-256 keys (made in milliseconds, unlike RSA), written with the openssl CLI.
#
# Usage:
#   scripts/tls-certs.sh DIR [--ip IP]... [--dns NAME]...
#       Write into DIR (created; it must not hold certificates yet):
#         ca.pem, ca-key.pem                the CA (certificate, key)
#         server-cert.pem, server-key.pem   for dockerd --tlscert/--tlskey; serverAuth, with the
#                                           subjectAltNames IP:127.0.0.1, DNS:localhost and
#                                           every --ip and --dns given
#         cert.pem, key.pem                 the client's; clientAuth
#       Docker's file names: DIR is a DOCKER_CERT_PATH as it is (ca.pem, cert.pem, key.pem).
#       Keys are mode 0600. A test that needs a CA the daemon does not trust runs this twice,
#       into two directories.
set -Eeuo pipefail

PROG=tls-certs.sh
# say, die.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Long enough for any test run, short enough that a stray one is worth nothing for long.
DAYS=30

[ $# -ge 1 ] || die "usage: $0 DIR [--ip IP]... [--dns NAME]..."
dir=$1
shift
sans='IP:127.0.0.1,DNS:localhost'
while [ $# -gt 0 ]; do
  case "$1" in
    --ip | --dns)
      if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value"; fi
      # A comma would end the subjectAltName entry and start another one.
      case "$2" in *,* | *' '*) die "$1 $2: no commas or spaces" ;; esac
      if [ "$1" = --ip ]; then sans+=",IP:$2"; else sans+=",DNS:$2"; fi
      shift 2
      ;;
    *) die "unknown option: $1 (usage: $0 DIR [--ip IP]... [--dns NAME]...)" ;;
  esac
done
command -v openssl >/dev/null 2>&1 || die "no openssl CLI (Debian package openssl)"
[ -e "$dir/ca.pem" ] && die "$dir already holds certificates (use a new directory)"
mkdir -p "$dir"

# Our own configuration, so that the system's openssl.cnf adds nothing to the certificates.
conf=$(mktemp "$dir/.openssl.XXXXXX.cnf")
trap 'rm -f "$conf" "$dir"/*.csr' EXIT
cat >"$conf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = pruneguard test
[ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $sans
[client]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

# new_key FILE: an EC P-256 key (PKCS#8 PEM), mode 0600 from the start.
new_key() {
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null) ||
    die "openssl cannot make an EC P-256 key in $1"
}

# sign NAME KEY CERT CN: a certificate for KEY, signed by the CA, with the [NAME] extensions.
sign() {
  local section=$1 key=$2 cert=$3 cn=$4 serial
  serial=0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
  if ! openssl req -new -config "$conf" -key "$key" -subj "/CN=$cn" -out "$dir/$section.csr" 2>/dev/null ||
    ! openssl x509 -req -in "$dir/$section.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
      -set_serial "$serial" -days "$DAYS" -extfile "$conf" -extensions "$section" \
      -out "$cert" 2>/dev/null; then
    die "openssl cannot make the $section certificate $cert"
  fi
}

new_key "$dir/ca-key.pem"
openssl req -x509 -new -config "$conf" -key "$dir/ca-key.pem" -subj "/CN=pruneguard test CA" \
  -days "$DAYS" -extensions ca -out "$dir/ca.pem" 2>/dev/null ||
  die "openssl cannot make the CA certificate $dir/ca.pem"
new_key "$dir/server-key.pem"
sign server "$dir/server-key.pem" "$dir/server-cert.pem" "pruneguard test server"
new_key "$dir/key.pem"
sign client "$dir/key.pem" "$dir/cert.pem" "pruneguard test client"
chmod 0644 "$dir/ca.pem" "$dir/server-cert.pem" "$dir/cert.pem"
# What a TLS client would check, here rather than as a handshake failure in some test.
openssl verify -CAfile "$dir/ca.pem" -purpose sslserver "$dir/server-cert.pem" >/dev/null ||
  die "the server certificate does not verify against $dir/ca.pem"
openssl verify -CAfile "$dir/ca.pem" -purpose sslclient "$dir/cert.pem" >/dev/null ||
  die "the client certificate does not verify against $dir/ca.pem"
