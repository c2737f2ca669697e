#!/usr/bin/env bash
# Scale benchmark (issue 5): pruneguard on a big host, against `docker image prune`.
#
#   sudo bench/scale.sh [ROUNDS]        (default 3 rounds; as root; not part of the test suite)
#
# One private sandbox daemon (scripts/sandbox.sh; never the host's daemon) holding 10,000 images
# (8,000 tagged, each with its own tag, and 2,000 dangling created 3 days ago; all share one
# tiny layer) and 2,000 containers (created, never started; each uses one tagged image). It
# measures:
#
#   * `pruneguard plan` wall time and peak RSS (/usr/bin/time -v), with the default policy
#     (the quiet gate then reads every load/tag/create event of the set-up, minutes old) and
#     with the gates opened (text and JSON);
#   * `pruneguard plan --tier unused_tagged --tier build_cache --output json` (gates opened,
#     `unused_for = "0s"` so that every tag not in use, bar the newest, is a candidate: ~6,000
#     tags planned in order); its first round also starts the observation record for 8,000 tags;
#   * `pruneguard run` (gates opened: --disk-threshold 0 --quiet-period 0s) against
#     `docker image prune -f --filter dangling=true --filter until=24h` on the same 2,000
#     dangling images, reloaded before each; medians over ROUNDS rounds.
#
# Targets: plan <= 2 s wall and <= 50 MB RSS (with both tiers: <= 1 s, <= 30 MB, issue 13); run
# <= 1.0x docker's prune. Prints a markdown
# table with the machine (cores, RAM, dockerd version). Environment: TAGGED (8000),
# DANGLING (2000), CONTAINERS (2000) to scale it up or down.
set -Eeuo pipefail

rounds=${1:-3}
tagged=${TAGGED:-8000}
dangling=${DANGLING:-2000}
containers=${CONTAINERS:-2000}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
[ "$(id -u)" -eq 0 ] || { echo "scale: run as root" >&2; exit 1; }
[ "$containers" -le "$tagged" ] || { echo "scale: CONTAINERS must not exceed TAGGED" >&2; exit 1; }
bash scripts/sandbox.sh ensure-installed
# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
PROG=$(basename "$0")
. "$repo/scripts/lib.sh"
find_cargo
# pruneguard, and the testkit (crates/testkit) that generates the images, creates the containers
# and counts the reports' lists.
cargo build --release --quiet -p pruneguard -p testkit
release=${CARGO_TARGET_DIR:-$repo/target}/release
pruneguard="$release/pruneguard"
testkit="$release/pruneguard-testkit"

work=$(mktemp -d /tmp/pgscale.XXXXXX)
cleanup() {
  bash scripts/sandbox.sh stop "$work/sb" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
DOCKER_HOST=$(bash scripts/sandbox.sh start "$work/sb")
export DOCKER_HOST
docker() { command docker -H "$DOCKER_HOST" "$@"; }
now_ms() { date +%s%3N; }
say() { printf 'scale: %s\n' "$*" >&2; }

# --- images ------------------------------------------------------------------------------------
# Each tagged image gets its own tag (bench/tagged:N).
start=$(now_ms)
"$testkit" mkimages "$work/tagged.tar" --tag-each 'bench/tagged:{i}' --count "$tagged" \
  --age $((3 * 86400)) --seed scale-tagged >/dev/null
"$testkit" mkimages "$work/dangling.tar" --no-tag --count "$dangling" \
  --age $((3 * 86400)) --seed scale-dangling >/dev/null
say "generated the archives in $(($(now_ms) - start)) ms"

count_dangling() { docker images -a -q --no-trunc --filter dangling=true | wc -l; }
count_all() { docker images -a -q --no-trunc | sort -u | wc -l; }
load_dangling() {
  docker load -q -i "$work/dangling.tar" >/dev/null
  local n
  n=$(count_dangling)
  [ "$n" -eq "$dangling" ] || { say "expected $dangling dangling images after load, got $n"; exit 1; }
}

start=$(now_ms)
docker load -q -i "$work/tagged.tar" >/dev/null
load_dangling
total=$(count_all)
[ "$total" -eq $((tagged + dangling)) ] || { say "expected $((tagged + dangling)) images, got $total"; exit 1; }
say "loaded $total images in $(($(now_ms) - start)) ms"

# --- containers: created through the API, 8 at a time -----------------------------------------
start=$(now_ms)
"$testkit" create-containers --host "$DOCKER_HOST" --image 'bench/tagged:{i}' \
  --count "$containers" --workers 8 -- /bin/sh
made=$(docker ps -a -q | wc -l)
[ "$made" -eq "$containers" ] || { say "expected $containers containers, got $made"; exit 1; }
say "created $made containers in $(($(now_ms) - start)) ms"

# --- measurements -------------------------------------------------------------------------------
state="$work/state"
# time_cmd NAME CMD...: runs CMD under /usr/bin/time -v; sets WALL_MS and RSS_KB.
time_cmd() {
  local name=$1
  shift
  local t0
  t0=$(now_ms)
  /usr/bin/time -v -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err" || {
    say "$name failed:"
    cat "$work/$name.err" >&2
    exit 1
  }
  WALL_MS=$(($(now_ms) - t0))
  RSS_KB=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/$name.time")
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# created: the same basis as docker prune's until=24h (like for like; README, "The age basis").
opened=(--no-config --age-basis created --state-dir "$state" --disk-threshold 0 --quiet-period 0s)
printf '[tiers.unused_tagged]\nunused_for = "0s"\n' >"$work/tiers.toml"
tiers=(--config "$work/tiers.toml" --age-basis created --state-dir "$state" --disk-threshold 0 --quiet-period 0s
  --tier unused_tagged --tier build_cache --output json)
plan_default_ms=() plan_default_rss=() plan_ms=() plan_rss=() plan_json_ms=() plan_json_rss=()
plan_tiers_ms=() plan_tiers_rss=()
for round in $(seq 1 "$rounds"); do
  time_cmd plan-default "$pruneguard" plan --no-config --state-dir "$state"
  plan_default_ms+=("$WALL_MS") plan_default_rss+=("$RSS_KB")
  time_cmd plan "$pruneguard" plan "${opened[@]}"
  plan_ms+=("$WALL_MS") plan_rss+=("$RSS_KB")
  time_cmd plan-json "$pruneguard" plan "${opened[@]}" --output json
  plan_json_ms+=("$WALL_MS") plan_json_rss+=("$RSS_KB")
  planned=$("$testkit" report-count "$work/plan-json.out" candidates)
  [ "$planned" -eq "$dangling" ] || { say "plan lists $planned candidates, expected $dangling"; exit 1; }
  time_cmd plan-tiers "$pruneguard" plan "${tiers[@]}"
  plan_tiers_ms+=("$WALL_MS") plan_tiers_rss+=("$RSS_KB")
  tier_candidates=$(jq '[.tiers[] | select(.name == "unused_tagged") | .planned | length] | add' "$work/plan-tiers.out")
  say "round $round: plan with both tiers ${plan_tiers_ms[-1]} ms ${plan_tiers_rss[-1]} KiB, $tier_candidates unused_tagged candidates"
  [ "$round" -eq 1 ] || [ "$tier_candidates" -gt 0 ] || { say "the unused_tagged tier planned nothing"; exit 1; }
  say "round $round: plan (default policy) ${plan_default_ms[-1]} ms ${plan_default_rss[-1]} KiB; plan (gates opened, text) ${plan_ms[-1]} ms ${plan_rss[-1]} KiB; plan (json) ${plan_json_ms[-1]} ms ${plan_json_rss[-1]} KiB"
done

docker_ms=() pg_ms=() pg_rss=()
for round in $(seq 1 "$rounds"); do
  start=$(now_ms)
  docker image prune -f --filter dangling=true --filter until=24h >/dev/null
  docker_ms+=($(($(now_ms) - start)))
  [ "$(count_dangling)" -eq 0 ] || { say "docker image prune left dangling images"; exit 1; }
  [ "$(count_all)" -eq "$tagged" ] || { say "docker image prune removed more than the dangling images"; exit 1; }
  load_dangling

  time_cmd run "$pruneguard" run "${opened[@]}" --output json
  pg_ms+=("$WALL_MS") pg_rss+=("$RSS_KB")
  [ "$(count_dangling)" -eq 0 ] || { say "pruneguard left dangling images"; exit 1; }
  [ "$(count_all)" -eq "$tagged" ] || { say "pruneguard removed more than the dangling images"; exit 1; }
  removed=$("$testkit" report-count "$work/run.out" removed)
  [ "$removed" -eq "$dangling" ] || { say "pruneguard reports $removed removed, expected $dangling"; exit 1; }
  load_dangling
  say "round $round: docker image prune ${docker_ms[-1]} ms; pruneguard run ${pg_ms[-1]} ms (peak RSS ${pg_rss[-1]} KiB)"
done

mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN {print (v <= t) ? "met" : "MISSED"}'; }
pd=$(median "${plan_default_ms[@]}") pdr=$(median "${plan_default_rss[@]}")
p=$(median "${plan_ms[@]}") pr=$(median "${plan_rss[@]}")
pj=$(median "${plan_json_ms[@]}") pjr=$(median "${plan_json_rss[@]}")
pt=$(median "${plan_tiers_ms[@]}") ptr=$(median "${plan_tiers_rss[@]}")
d=$(median "${docker_ms[@]}") r=$(median "${pg_ms[@]}") rr=$(median "${pg_rss[@]}")
ratio=$(awk -v r="$r" -v d="$d" 'BEGIN {printf "%.2f", r / d}')

cat <<TABLE

Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, dockerd $(docker version -f '{{.Server.Version}}'), $(uname -r).
Sandbox: $((tagged + dangling)) images ($tagged tagged, $dangling dangling and 3 days old), $containers created containers. Medians of $rounds rounds.

| measurement | wall | peak RSS | target | verdict |
|---|---:|---:|---|---|
| \`pruneguard plan\` (default policy; quiet gate reads the events) | $pd ms | $(mib "$pdr") | ≤ 2000 ms, ≤ 50 MB | $(verdict "$pd" 2000) / $(verdict "$pdr" 48828) |
| \`pruneguard plan\` (gates opened, text) | $p ms | $(mib "$pr") | ≤ 2000 ms, ≤ 50 MB | $(verdict "$p" 2000) / $(verdict "$pr" 48828) |
| \`pruneguard plan --output json\` (gates opened) | $pj ms | $(mib "$pjr") | ≤ 2000 ms, ≤ 50 MB | $(verdict "$pj" 2000) / $(verdict "$pjr" 48828) |
| \`pruneguard plan --tier unused_tagged --tier build_cache --output json\` (gates opened; $tier_candidates tags planned) | $pt ms | $(mib "$ptr") | ≤ 1000 ms, ≤ 30 MB | $(verdict "$pt" 1000) / $(verdict "$ptr" 29297) |
| \`docker image prune -f --filter dangling=true --filter until=24h\` | $d ms | – | – | – |
| \`pruneguard run\` (gates opened; $dangling removed) | $r ms | $(mib "$rr") | ≤ 1.0× docker | ${ratio}× ($(verdict "$ratio" 1.0)) |
TABLE
# (The RSS targets in KiB: 50 MB = 50,000,000 bytes = 48,828 KiB; 30 MB = 29,297 KiB.)
