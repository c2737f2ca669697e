#!/usr/bin/env bash
# Benchmark: `pruneguard run` against the engine's own `image prune` on the same dangling
# images, in one run, on one private sandbox engine. Prints wall times, the ratio and
# pruneguard's peak RSS.
#
#   bench/prune_vs_docker.sh [--engine NAME] [N] [ROUNDS]
#       (default engine docker-20.10, N=1000 dangling images, 3 rounds; engines: see
#       scripts/engines.sh list)
#
# Each round loads the same archives (N old untagged images, and 1 tagged), times the engine's
# prune (`docker image prune -f --filter dangling=true --filter until=AGE` through the engine's
# API: dockerd's prune, or on Podman its compat endpoint, which is `podman image prune`'s),
# loads them again, times pruneguard with its gates opened (disk threshold 0, quiet period 0s)
# and `--min-age AGE`, and checks both removed exactly the N untagged images. Medians are
# reported. AGE is 24h, except on the containerd store, where an image's age runs from its load
# (Metadata.LastTagTime): there AGE is 2s and each load is followed by a 3 s wait.
set -Eeuo pipefail

engine=docker-20.10
case "${1:-}" in
  --engine) engine=${2:?--engine needs a NAME}; shift 2 ;;
  --engine=*) engine=${1#*=}; shift ;;
esac
n=${1:-1000}
rounds=${2:-3}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root" >&2; exit 1; }
if [ "$engine" = docker-20.10 ]; then
  bash scripts/sandbox.sh ensure-installed
else
  bash scripts/sandbox.sh ensure-engines
fi
case "$engine" in
  docker-28-containerd*) age=2s settle=3 ;;
  *) age=24h settle=0 ;;
esac
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
PROG=$(basename "$0")
. "$repo/scripts/lib.sh"
find_cargo
# pruneguard, and the testkit that generates the images (crates/testkit).
cargo build --release --quiet -p pruneguard -p testkit
release=${CARGO_TARGET_DIR:-$repo/target}/release
pruneguard="$release/pruneguard"
testkit="$release/pruneguard-testkit"

work=$(mktemp -d /tmp/pgbench.XXXXXX)
trap 'bash scripts/sandbox.sh stop "$work/sb" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
DOCKER_HOST=$(bash scripts/sandbox.sh start "$work/sb" --engine "$engine")
export DOCKER_HOST
docker() { command docker -H "$DOCKER_HOST" "$@"; }

# Untagged images in one archive, the tagged one in another: Podman and the containerd store
# load one image per tag from an archive.
"$testkit" mkimages "$work/images.tar" --no-tag --count "$n" --age $((3 * 86400)) --seed bench >/dev/null
"$testkit" mkimages "$work/tagged.tar" --tag bench/app:latest --age $((3 * 86400)) --seed bench-tagged >/dev/null
docker load -q -i "$work/tagged.tar" >/dev/null

load() {
  docker load -q -i "$work/images.tar" >/dev/null
  sleep "$settle"
  local dangling
  dangling=$(docker images -q -a --filter dangling=true | wc -l)
  [ "$dangling" -eq "$n" ] || { echo "bench: expected $n dangling images after load, got $dangling" >&2; exit 1; }
}
left() { docker images -q -a --filter dangling=true | wc -l; }
now_ms() { date +%s%3N; }

docker_ms=() pg_ms=() pg_rss=()
for round in $(seq 1 "$rounds"); do
  load
  start=$(now_ms)
  docker image prune -f --filter dangling=true --filter "until=$age" >/dev/null
  docker_ms+=($(($(now_ms) - start)))
  [ "$(left)" -eq 0 ] || { echo "bench: docker image prune left dangling images" >&2; exit 1; }

  load
  start=$(now_ms)
  /usr/bin/time -v -o "$work/time.txt" "$pruneguard" run --no-config --age-basis created --state-dir "$work/state" \
    --disk-threshold 0 --quiet-period 0s --min-age "$age" --output json >"$work/report.json" 2>"$work/stderr.txt"
  pg_ms+=($(($(now_ms) - start)))
  pg_rss+=("$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")")
  [ "$(left)" -eq 0 ] || { echo "bench: pruneguard left dangling images" >&2; cat "$work/stderr.txt" >&2; exit 1; }
  echo "round $round ($engine): image prune ${docker_ms[-1]} ms, pruneguard run ${pg_ms[-1]} ms (peak RSS ${pg_rss[-1]} KiB)" >&2
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
d=$(median "${docker_ms[@]}")
p=$(median "${pg_ms[@]}")
r=$(median "${pg_rss[@]}")
ratio=$(awk -v p="$p" -v d="$d" 'BEGIN {printf "%.2f", p / d}')
cat <<TABLE
| engine | images removed | engine's image prune (median) | pruneguard run (median) | ratio | pruneguard peak RSS |
|---|---:|---:|---:|---:|---:|
| $engine | $n | $d ms | $p ms | ${ratio}x | $((r / 1024)) MiB |
TABLE
echo "($rounds rounds; $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), engine $engine $(docker version -f '{{.Server.Version}}'), min age $age)"
