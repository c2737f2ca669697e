#!/usr/bin/env bash
# Benchmark: `pruneguard run` against `docker image prune` on the same dangling images, in one
# run, on one private sandbox daemon. Prints wall times, the ratio and pruneguard's peak RSS.
#
#   bench/prune_vs_docker.sh [N] [ROUNDS]     (default N=1000 dangling images, 3 rounds)
#
# Each round loads the same archive (N old dangling images + 1 tagged), times docker's prune,
# loads it again, times pruneguard with its gates opened (disk threshold 0, quiet period 0s),
# and checks both removed exactly the N dangling images. Medians are reported.
set -Eeuo pipefail

n=${1:-1000}
rounds=${2:-3}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
[ "$(id -u)" -eq 0 ] || { echo "bench: run as root" >&2; exit 1; }
bash scripts/sandbox.sh ensure-installed
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
DOCKER_HOST=$(bash scripts/sandbox.sh start "$work/sb")
export DOCKER_HOST
docker() { command docker -H "$DOCKER_HOST" "$@"; }

"$testkit" mkimages "$work/images.tar" --tag bench/app:latest --count $((n + 1)) --age $((3 * 86400)) --seed bench >/dev/null

load() {
  docker load -q -i "$work/images.tar" >/dev/null
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
  docker image prune -f --filter dangling=true --filter until=24h >/dev/null
  docker_ms+=($(($(now_ms) - start)))
  [ "$(left)" -eq 0 ] || { echo "bench: docker image prune left dangling images" >&2; exit 1; }

  load
  start=$(now_ms)
  /usr/bin/time -v -o "$work/time.txt" "$pruneguard" run --no-config --age-basis created --state-dir "$work/state" \
    --disk-threshold 0 --quiet-period 0s --output json >"$work/report.json" 2>"$work/stderr.txt"
  pg_ms+=($(($(now_ms) - start)))
  pg_rss+=("$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")")
  [ "$(left)" -eq 0 ] || { echo "bench: pruneguard left dangling images" >&2; cat "$work/stderr.txt" >&2; exit 1; }
  echo "round $round: docker image prune ${docker_ms[-1]} ms, pruneguard run ${pg_ms[-1]} ms (peak RSS ${pg_rss[-1]} KiB)" >&2
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
d=$(median "${docker_ms[@]}")
p=$(median "${pg_ms[@]}")
r=$(median "${pg_rss[@]}")
ratio=$(awk -v p="$p" -v d="$d" 'BEGIN {printf "%.2f", p / d}')
cat <<TABLE
| images removed | docker image prune (median) | pruneguard run (median) | ratio | pruneguard peak RSS |
|---:|---:|---:|---:|---:|
| $n | $d ms | $p ms | ${ratio}x | $((r / 1024)) MiB |
TABLE
echo "($rounds rounds; $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), dockerd $(docker version -f '{{.Server.Version}}'))"
