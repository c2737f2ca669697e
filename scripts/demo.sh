#!/usr/bin/env bash
# A newcomer's first look at pruneguard, safely: builds it, starts a private sandbox Docker
# daemon (never your own), fills it with demo images, shows `pruneguard plan` and then
# `pruneguard run`, and stops the sandbox again. Run as root on a Debian-like machine.
#
#   scripts/demo.sh            # the whole tour
#   KEEP=1 scripts/demo.sh     # leave the sandbox running afterwards, and print how to point
#                              # pruneguard at it and how to stop it
set -Eeuo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
[ "$(id -u)" -eq 0 ] || { echo "demo.sh: run as root (it starts a private dockerd in a network namespace)" >&2; exit 1; }

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Installing what the sandbox needs (Debian's docker.io), if missing"
bash scripts/sandbox.sh ensure-installed

step "Building pruneguard and its testkit (release)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
PROG=demo.sh
. "$repo/scripts/lib.sh"
find_cargo
# The testkit that generates the images (crates/testkit).
cargo build --release --quiet -p pruneguard -p testkit
release=${CARGO_TARGET_DIR:-$repo/target}/release
pruneguard="$release/pruneguard"
testkit="$release/pruneguard-testkit"

work=$(mktemp -d /tmp/pgdemo.XXXXXX)
sandbox="$work/sb"
cleanup() {
  if [ -z "${KEEP:-}" ]; then
    bash scripts/sandbox.sh stop "$sandbox" || true
    rm -rf "$work"
  else
    cat <<KEPT

Sandbox kept. Try the "On a real host" commands against it (the binary is not on PATH):
  export DOCKER_HOST=$DOCKER_HOST PATH=$release:\$PATH
  pruneguard doctor --no-config --state-dir $work/state
  pruneguard plan --no-config --quiet-period 0s --disk-threshold 0
  pruneguard status --no-config --state-dir $work/state
Stop it and remove its files with: scripts/sandbox.sh stop $sandbox && rm -rf $work
KEPT
  fi
}
trap cleanup EXIT

step "Starting a private sandbox daemon (own data root, socket and network namespace)"
DOCKER_HOST=$(bash scripts/sandbox.sh start "$sandbox")
export DOCKER_HOST
docker() { command docker -H "$DOCKER_HOST" "$@"; }
echo "DOCKER_HOST=$DOCKER_HOST"

step "Filling it with demo images"
# Three builds of app:1 from three days ago: the last keeps the tag, two are left dangling.
"$testkit" mkimages "$work/old.tar" --tag demo/app:1 --count 3 --age $((3 * 86400)) \
  --layer-bytes $((8 * 1024 * 1024)) >"$work/old.ids"
# Two builds of app:2 from an hour ago: one dangling, but younger than min_age (24h).
"$testkit" mkimages "$work/young.tar" --tag demo/app:2 --count 2 --age 3600 >/dev/null
docker load -q -i "$work/old.tar" >/dev/null
docker load -q -i "$work/young.tar" >/dev/null
# A container that was created but never started still uses one old dangling image: it
# must be kept (containers in every state count).
docker create --name created-job "$(head -n 1 "$work/old.ids")" >/dev/null
docker images -a

# The loads above are recent events, and this sandbox's disk is nowhere near 80 % full, so
# the quiet and disk gates are opened on purpose for the demo only.
# The demo has no history: `created` measures from the images' build time (the default,
# unused_for, would wait min_age after the first look; see README, "The age basis").
demo_flags=(--no-config --state-dir "$work/state" --quiet-period 0s --age-basis created)

step "pruneguard plan (a dry run with the full reasoning)"
"$pruneguard" plan "${demo_flags[@]}" --disk-threshold 0

step "pruneguard run --disk-threshold 99 (the disk gate closes: nothing is deleted)"
"$pruneguard" run "${demo_flags[@]}" --disk-threshold 99

step "pruneguard run --disk-threshold 0 (gates open: only the old, unused dangling image goes)"
"$pruneguard" run "${demo_flags[@]}" --disk-threshold 0

step "What is left"
docker images -a
echo
echo "On a real host, install pruneguard (README, \"Install\"), then: pruneguard doctor && pruneguard plan"
[ -n "${KEEP:-}" ] || echo "To try those commands against this sandbox first: KEEP=1 scripts/demo.sh"
