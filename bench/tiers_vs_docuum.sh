#!/usr/bin/env bash
# When dangling images are not enough (issue 13, item 5): a CI host whose builds are tagged by
# commit fills its disk; three cleaners, each on its own fresh private sandbox daemon with its
# own local registry (scripts/sandbox.sh, scripts/registry.sh), same inputs:
#
#   pruneguard  `pruneguard run --tier unused_tagged` (watermarks 85/80 %, keep_newest 1,
#               keep = ["*/ci/base:*"], unused_for 5s; a `plan` first makes the observation
#               record see every tag, then it waits unused_for)
#   docuum      docuum (LRU by last use; `cargo install docuum --root DIR`), as a daemon with
#               `--threshold` set to the image bytes that would leave the data root at the same
#               low watermark (its own accounting, `docker system df`'s image bytes), stopped
#               once its eviction has settled
#   docuum-10MB docuum with `--threshold '10 MB'` (the figure issue 13 quotes)
#   prune-af    `docker system prune -af`
#
#   bench/tiers_vs_docuum.sh [--json] [ROUNDS]     (as root; ROUNDS >= 1, default 1)
#
# Scenario per cleaner: a data root of DISK_MB MiB (loop-mounted ext4); a base image (busybox +
# a random layer of BASE_LAYER_BYTES) pushed to the registry; CI builds `ci/app:<sha>` FROM
# it (classic builder, a COPY of APP_LAYER_BYTES random bytes each), each pushed and deployed
# (the previous build's container removed, the new one run), until `df` shows FILL_PERCENT.
# Then, between deploys (the CI teardown removed the container), the cleaner; then the next deploy of the current app and its base (`docker pull` both,
# re-run the container), counted in the registry's access log. ROUNDS > 1 alternates the
# cleaners' order. Prints a markdown table: cold blob downloads and bytes on the next deploy,
# data root used bytes and Use% after the clean, tagged images kept, and whether the base and
# current app survived. With --json the per-run records go to stdout as JSON lines.
#
# Environment: PRUNEGUARD_BIN, TESTKIT_BIN (default: release builds), DOCUUM_BIN (default:
# DOCUUM_ROOT/bin/docuum, installed with `cargo install docuum --root DOCUUM_ROOT` when
# missing; DOCUUM_ROOT defaults to $TMPDIR/pg-docuum), DISK_MB (192), BASE_LAYER_BYTES
# (8 MiB), APP_LAYER_BYTES (6 MiB), FILL_PERCENT (88), PGSB_DOCKER (docker CLI).
# Every sandbox and registry this script starts is stopped on exit, also on failure or signal.
set -Eeuo pipefail

json=0
rounds=1
while [ $# -gt 0 ]; do
  case "$1" in
    --json) json=1 ;;
    -h | --help)
      sed -n '2,/^set -Eeuo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
      exit 0
      ;;
    *[!0-9]* | '') echo "tiers_vs_docuum.sh: unknown argument: $1" >&2; exit 2 ;;
    *) rounds=$1 ;;
  esac
  shift
done
[ "$rounds" -ge 1 ] || { echo "tiers_vs_docuum.sh: ROUNDS must be at least 1" >&2; exit 2; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
log() { printf 'tiers: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}
[ "$(id -u)" -eq 0 ] || die "run as root: the sandboxes need network namespaces and mounts"
bash scripts/sandbox.sh ensure-installed

# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
PROG=tiers
. "$repo/scripts/lib.sh"
find_cargo
release=${CARGO_TARGET_DIR:-$repo/target}/release
pruneguard=${PRUNEGUARD_BIN:-}
testkit=${TESTKIT_BIN:-}
if [ -z "$pruneguard" ] || [ -z "$testkit" ]; then
  cargo build --release --quiet -p pruneguard -p testkit
fi
pruneguard=${pruneguard:-$release/pruneguard}
testkit=${testkit:-$release/pruneguard-testkit}
[ -x "$pruneguard" ] || die "no pruneguard binary at $pruneguard"
[ -x "$testkit" ] || die "no testkit binary at $testkit"
docuum_root=${DOCUUM_ROOT:-${TMPDIR:-/tmp}/pg-docuum}
docuum=${DOCUUM_BIN:-$docuum_root/bin/docuum}
if [ ! -x "$docuum" ]; then
  log "installing docuum into $docuum_root (cargo install docuum --root $docuum_root)"
  cargo install --quiet docuum --root "$docuum_root" ||
    die "cargo install docuum failed (it needs crates.io): see its output above"
fi
docuum_version=$("$docuum" --version 2>/dev/null | head -n 1)

while read -r var; do unset "$var"; done < <(compgen -e | grep '^PRUNEGUARD_' || true)
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
export DOCKER_HOST=unix:///nonexistent/pgtiers-no-daemon.sock

if [ -n "${PGSB_DOCKER:-}" ]; then
  docker_cli=$PGSB_DOCKER
elif [ -x /usr/bin/docker ]; then
  docker_cli=/usr/bin/docker
else
  docker_cli=$(command -v docker) || die "no docker CLI"
fi
disk_mb=${DISK_MB:-192}
base_layer=${BASE_LAYER_BYTES:-8388608}
app_layer=${APP_LAYER_BYTES:-6291456}
fill=${FILL_PERCENT:-88}
low=80
unused_for_s=5
registry=127.0.0.1:5000
base_ref=$registry/ci/base:1

work=$(mktemp -d "${TMPDIR:-/tmp}/pgtiers.XXXXXX")
active=()
docuum_pid=''
# shellcheck disable=SC2317 # invoked by the traps
cleanup() {
  local rc=$? d
  trap - EXIT INT TERM ERR
  if [ -n "$docuum_pid" ]; then kill "$docuum_pid" 2>/dev/null || true; fi
  for d in "${active[@]}"; do
    [ -n "$d" ] || continue
    bash scripts/registry.sh stop "$d" >/dev/null 2>&1 || true
    bash scripts/sandbox.sh stop "$d" >/dev/null 2>&1 || true
  done
  rm -rf --one-file-system "$work" 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted; stopping the sandboxes"; exit 130' INT
trap 'log "terminated; stopping the sandboxes"; exit 143' TERM
trap 'log "failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR
export DOCKER_CONFIG=$work/docker-config
mkdir -p "$DOCKER_CONFIG"

# Inputs shared by every cleaner: the base archive and up to 40 builds' layers.
"$testkit" mkimages "$work/base.tar" --tag "$base_ref" --busybox \
  --layer-bytes "$base_layer" --age $((30 * 86400)) --seed tiers-base >/dev/null
mkdir -p "$work/ctx"
printf 'FROM %s\nCOPY build.bin /app/build.bin\n' "$base_ref" >"$work/ctx/Dockerfile"
cat >"$work/tiers.toml" <<EOF
[tiers.unused_tagged]
unused_for = "${unused_for_s}s"
keep = ["*/ci/base:*"]
EOF

d() { "$docker_cli" -H "$host" "$@"; }
df_pct() { df --output=pcent "$sb/data" | tail -n 1 | tr -dc 0-9; }
df_used() { df -B1 --output=used "$sb/data" | tail -n 1 | tr -dc 0-9; }
df_size() { df -B1 --output=size "$sb/data" | tail -n 1 | tr -dc 0-9; }
tagged_count() { d images --format '{{.Repository}}:{{.Tag}}' | grep -vc '<none>' || true; }
has() { d image inspect "$1" >/dev/null 2>&1 && echo yes || echo no; }

# docuum's threshold: the image bytes (docuum reads them as `docker system df` does: shared
# layers once, the API's LayersSize) that leave the data root at the low watermark.
docuum_threshold() {
  local images used size target
  images=$(curl -fsS --unix-socket "${host#unix://}" http://docker/system/df | jq '.LayersSize')
  used=$(df_used)
  size=$(df_size)
  target=$((size * low / 100))
  if [ "$used" -le "$target" ]; then echo "$images"; else
    awk -v i="$images" -v u="$used" -v t="$target" 'BEGIN {x = i - (u - t); if (x < 0) x = 0; printf "%d", x}'
  fi
}

# Waits until the image list has not changed for 3 s (at most 60 s).
settle_images() {
  local last now stable=0 i
  last=$(d images -a -q --no-trunc | sort | md5sum)
  for ((i = 0; i < 120 && stable < 6; i++)); do
    sleep 0.5
    now=$(d images -a -q --no-trunc | sort | md5sum)
    if [ "$now" = "$last" ]; then stable=$((stable + 1)); else stable=0; last=$now; fi
  done
}

run_cleaner() {
  local name=$1 round=$2 n sha tag current='' mark out before_pct after_pct used kept threshold
  sb=$work/$name-$round/sb
  mkdir -p "$work/$name-$round"
  log "$name (round $round): sandbox with a ${disk_mb} MiB data root and a registry"
  active+=("$sb")
  host=$(bash scripts/sandbox.sh start "$sb" --data-root-size "$disk_mb" | tail -n 1)
  export DOCKER_HOST=$host
  bash scripts/registry.sh start "$sb" >/dev/null
  server_version=$(d version --format '{{.Server.Version}}')
  d load -q -i "$work/base.tar" >/dev/null
  d push -q "$base_ref" >/dev/null
  n=0
  while [ "$(df_pct)" -lt "$fill" ]; do
    [ "$n" -lt 40 ] || die "$name: 40 builds did not fill the data root to $fill %"
    sha=$(printf '%012x' $((0x3f9c00000000 + n * 0x10001)))
    tag=$registry/ci/app:$sha
    "$testkit" random-bytes --seed "build-$n" --bytes "$app_layer" >"$work/ctx/build.bin"
    DOCKER_BUILDKIT=0 d build -q -t "$tag" "$work/ctx" >/dev/null 2>&1
    d push -q "$tag" >/dev/null
    d rm -f app >/dev/null 2>&1 || true
    d run -d --name app "$tag" /bin/busybox sleep 36000 >/dev/null
    current=$tag
    n=$((n + 1))
  done
  rm -f "$work/ctx/build.bin"
  # Between deploys: the CI teardown has removed the container (as in bench/cycle.sh).
  d rm -f app >/dev/null
  before_pct=$(df_pct)
  log "$name: $n builds, data root at $before_pct %; cleaning"
  local start=$SECONDS
  case "$name" in
    pruneguard)
      "$pruneguard" plan -H "$host" --config "$work/tiers.toml" --tier unused_tagged \
        --quiet-period 0s --state-dir "$work/$name-$round/state" --output json \
        >"$work/$name-$round/plan.json" 2>"$work/$name-$round/plan.err" ||
        { cat "$work/$name-$round/plan.err" >&2; die "pruneguard plan failed"; }
      sleep $((unused_for_s + 1))
      "$pruneguard" run -H "$host" --config "$work/tiers.toml" --tier unused_tagged \
        --quiet-period 0s --state-dir "$work/$name-$round/state" --output json \
        >"$work/$name-$round/run.json" 2>"$work/$name-$round/run.err" ||
        { cat "$work/$name-$round/run.err" >&2; die "pruneguard run failed"; }
      ;;
    docuum | docuum-10MB)
      if [ "$name" = docuum ]; then threshold="$(docuum_threshold) B"; else threshold="10 MB"; fi
      log "$name: --threshold '$threshold'"
      mkdir -p "$work/$name-$round/home"
      HOME=$work/$name-$round/home PATH="$(dirname "$docker_cli"):$PATH" DOCKER_HOST=$host \
        "$docuum" --threshold "$threshold" >"$work/$name-$round/docuum.log" 2>&1 &
      docuum_pid=$!
      sleep 2
      settle_images
      kill "$docuum_pid" 2>/dev/null || true
      wait "$docuum_pid" 2>/dev/null || true
      docuum_pid=''
      log "docuum's log (last lines):"
      grep -v "^Untagged\|^Deleted" "$work/$name-$round/docuum.log" | tail -n 8 | sed 's/^/  docuum| /' >&2
      ;;
    prune-af)
      d system prune -af >"$work/$name-$round/prune.txt"
      ;;
  esac
  local clean_s=$((SECONDS - start))
  after_pct=$(df_pct)
  used=$(df_used)
  kept=$(tagged_count)
  local base_kept current_kept
  base_kept=$(has "$base_ref")
  current_kept=$(has "$current")
  # The next deploy of the current app and its base, counted.
  d rm -f app >/dev/null 2>&1 || true
  mark=$(bash scripts/registry.sh mark "$sb")
  d pull -q "$base_ref" >/dev/null
  d pull -q "$current" >/dev/null
  d run -d --name app "$current" /bin/busybox sleep 36000 >/dev/null
  out=$(bash scripts/registry.sh counts "$sb" --since "$mark")
  local blob_gets blob_bytes
  blob_gets=$(sed -n 's/.*blob_gets=\([0-9]*\).*/\1/p' <<<"$out")
  blob_bytes=$(sed -n 's/.*blob_bytes=\([0-9]*\).*/\1/p' <<<"$out")
  printf '{"cleaner":"%s","round":%d,"builds":%d,"disk_percent_before":%d,"disk_percent_after":%d,"used_bytes_after":%d,"tagged_kept":%d,"images_before":%d,"base_kept":"%s","current_kept":"%s","next_deploy_blob_gets":%d,"next_deploy_blob_bytes":%d,"clean_s":%d}\n' \
    "$name" "$round" "$n" "$before_pct" "$after_pct" "$used" "$kept" $((n + 1)) "$base_kept" \
    "$current_kept" "$blob_gets" "$blob_bytes" "$clean_s" >>"$work/records.jsonl"
  log "$name: after clean $after_pct %, $kept tagged kept; next deploy: $out"
  bash scripts/registry.sh stop "$sb"
  bash scripts/sandbox.sh stop "$sb"
  active=("${active[@]/$sb/}")
}

order=(pruneguard docuum docuum-10MB prune-af)
for round in $(seq 1 "$rounds"); do
  for cleaner in "${order[@]}"; do
    run_cleaner "$cleaner" "$round"
  done
  # Alternate: the next round starts with the next cleaner.
  order=("${order[@]:1}" "${order[0]}")
done

if [ "$json" -eq 1 ]; then cat "$work/records.jsonl"; fi
{
  echo
  echo "Machine: $(nproc) cores, dockerd $server_version, $docuum_version, data root ${disk_mb} MiB, filled to >= $fill % by CI builds of $((app_layer / 1048576)) MiB each on an $((base_layer / 1048576)) MiB base; $rounds round(s)."
  echo
  echo '| cleaner | next deploy: blob GETs | next deploy: MB downloaded | data root after clean | tagged images kept | base kept | current app kept |'
  echo '|---|---:|---:|---:|---:|---|---|'
  jq -rs '
    group_by(.cleaner)[] |
    (length) as $n |
    "| \(.[0].cleaner) | \((map(.next_deploy_blob_gets) | add) / $n) | \(((map(.next_deploy_blob_bytes) | add) / $n / 1000000 * 10 | round) / 10) | \(((map(.used_bytes_after) | add) / $n / 1048576 * 10 | round) / 10) MiB (\((map(.disk_percent_after) | add) / $n) %, was \((map(.disk_percent_before) | add) / $n) %) | \((map(.tagged_kept) | add) / $n) of \(.[0].images_before) | \(map(.base_kept) | unique | join("/")) | \(map(.current_kept) | unique | join("/")) |"
  ' "$work/records.jsonl"
} >&2
