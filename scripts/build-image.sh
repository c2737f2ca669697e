#!/usr/bin/env bash
# Builds pruneguard's container image: one layer holding only the statically linked binary
# (/pruneguard), written as a `docker load` archive, with no base image, no registry and no
# network (the classic `docker save` layout: manifest.json, the config, one layer.tar).
#
# Usage:
#   scripts/build-image.sh [--tag NAME:TAG] [--out PATH] [--binary PATH] [--profile NAME]
#       --tag     the image's tag (default pruneguard:VERSION, VERSION from Cargo.toml)
#       --out     the archive to write (default target/image/pruneguard-VERSION.tar)
#       --binary  use this static binary instead of building one
#       --profile the Cargo profile of the build (default release, the shipped image;
#                 image-test is the tests' cheaper build, see Cargo.toml)
#   Prints the archive's path; `docker load -i PATH` loads it (on every swarm node, or push it
#   to your registry from one of them).
#
# The binary is built for the gnu target with glibc linked statically
# (RUSTFLAGS='-C target-feature=+crt-static'; no musl target is needed) and refused unless
# `ldd` says it is static. Host names resolve inside the image: static glibc reads the
# /etc/hosts and /etc/resolv.conf that Docker writes into every container (its built-in
# `files` and `dns` sources); only other NSS modules (LDAP, mDNS, …) cannot be loaded.
# The image runs as root by default (the docker socket is root's); its command is
# `pruneguard watch --interval 1h`, its state lives in the volume /var/lib/pruneguard.
set -Eeuo pipefail

PROG=build-image.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(cd "$HERE/.." && pwd -P)
TARGET=x86_64-unknown-linux-gnu
# 2000-01-01T00:00:00Z: every file's mtime, so equal binaries give equal layers.
EPOCH=946684800

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n 1)
[ -n "$version" ] || die "cannot read the version from $ROOT/Cargo.toml"
tag="pruneguard:$version"
out="$ROOT/target/image/pruneguard-$version.tar"
binary=''
profile=release
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag=${2:?--tag needs NAME:TAG}; shift 2 ;;
    --out) out=${2:?--out needs a path}; shift 2 ;;
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --profile) profile=${2:?--profile needs a Cargo profile name}; shift 2 ;;
    -h | --help) sed -n '2,/^set -Eeuo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done
case "$tag" in *:*) ;; *) tag="$tag:latest" ;; esac

if [ -z "$binary" ]; then
  find_cargo
  say "$PROG: building the static binary (cargo build --profile $profile --target $TARGET, crt-static)"
  (cd "$ROOT" && RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --profile "$profile" --locked --target "$TARGET" --bin pruneguard >&2)
  # Cargo's directory for the dev profile is "debug"; every other profile has its own name.
  case $profile in dev) dir=debug ;; *) dir=$profile ;; esac
  binary="${CARGO_TARGET_DIR:-$ROOT/target}/$TARGET/$dir/pruneguard"
fi
[ -x "$binary" ] || die "no executable binary at $binary"
# ldd says "not a dynamic executable" (or "statically linked") for a static binary.
if ldd "$binary" 2>&1 | grep -q '=>\|ld-linux'; then
  die "$binary is dynamically linked ($(ldd "$binary" 2>&1 | head -n 3 | tr '\n' ' ')); build it with RUSTFLAGS='-C target-feature=+crt-static'"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs" "$work/image"
install -m 0755 "$binary" "$work/rootfs/pruneguard"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$EPOCH" --format=gnu \
  -C "$work/rootfs" -cf "$work/layer.tar" pruneguard
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)

created=$(git -C "$ROOT" log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
revision=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
cat >"$work/config.json" <<EOF
{"architecture":"amd64","os":"linux","created":"$created","config":{"Entrypoint":["/pruneguard"],"Cmd":["watch","--interval","1h"],"Env":["PRUNEGUARD_STATE_DIR=/var/lib/pruneguard"],"Volumes":{"/var/lib/pruneguard":{}},"Labels":{"org.opencontainers.image.title":"pruneguard","org.opencontainers.image.version":"$version","org.opencontainers.image.revision":"$revision","org.opencontainers.image.licenses":"MIT OR Apache-2.0"}},"rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},"history":[{"created":"$created","created_by":"scripts/build-image.sh: /pruneguard (static)"}]}
EOF
config_id=$(sha256sum "$work/config.json" | cut -d' ' -f1)
mkdir -p "$work/image/$diff_id"
mv "$work/layer.tar" "$work/image/$diff_id/layer.tar"
printf '1.0' >"$work/image/$diff_id/VERSION"
printf '{"id":"%s","created":"%s","os":"linux"}' "$diff_id" "$created" >"$work/image/$diff_id/json"
mv "$work/config.json" "$work/image/$config_id.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' \
  "$config_id" "$tag" "$diff_id" >"$work/image/manifest.json"
printf '{"%s":{"%s":"%s"}}' "${tag%:*}" "${tag##*:}" "$config_id" >"$work/image/repositories"
mkdir -p "$(dirname "$out")"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$EPOCH" --format=gnu \
  -C "$work/image" -cf "$out.tmp" .
mv "$out.tmp" "$out"
say "$PROG: $tag (image sha256:$config_id, $(du -h "$out" | cut -f1)) in $out"
printf '%s\n' "$out"
