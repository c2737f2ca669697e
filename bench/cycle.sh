#!/usr/bin/env bash
# The deploy cycle (issue 5): what a cleaner between deploys costs the next deploy in pulls.
#
#   bench/cycle.sh [--json] [K]        (as root; K >= 1 cycles, default 5)
#
# For each cleaner, in its own fresh private sandbox daemon (scripts/sandbox.sh) with its own
# local registry v2 inside the sandbox's network namespace (scripts/registry.sh, Debian's
# docker-registry on 127.0.0.1:5000 of that namespace: the stand-in for Docker Hub):
#
#   setup     load a base image (busybox + one random layer of CYCLE_LAYER_BYTES), build two app
#             images FROM it (classic builder, one small COPY each), push all three to the
#             registry, then remove every local image so that the first deploy pulls cold
#   deploy    `docker pull` base, app1, app2 (a CI deploy that also builds FROM base pulls it)
#             and `docker run -d` app1 and app2: the cold first deploy
#   then K cycles of
#     teardown  remove the containers (only them, as a CI teardown does)
#     dangle    load 3 images built 3 days ago, each with its own layer of CYCLE_JUNK_LAYER_BYTES,
#               listed under junk:latest (what rebuilds leave behind: old dangling images, plus
#               the previous junk:latest once it loses the tag) and rebuild ci/build:latest FROM base locally (its previous build becomes
#               a young dangling image)
#     clean     the cleaner under test:
#                 prune-af    `docker system prune -af` (what autoPrune with --all runs)
#                 pruneguard  `pruneguard run --no-config --disk-threshold 0 --quiet-period 0s`
#                             (disk gate opened, quiet gate off; default min_age 24h and every
#                             other default)
#     redeploy  the deploy again; the registry's access log counts its manifest GETs (what
#               Docker Hub's pull rate limit counts), manifest HEADs, blob GETs and blob bytes
#
# Prints a markdown table (per cleaner: totals over the K redeploys, dangling images left, tagged
# images kept; then disk used per cycle). With --json, prints a JSON summary on stdout instead
# (the table goes to stderr); tests/cycle_docker.rs asserts on it. Progress goes to stderr.
# Exits non-zero when any step fails (a sandbox or registry that cannot start included).
#
# Environment: PRUNEGUARD_BIN (binary to test; default: `cargo build --release` and
# target/release/pruneguard), TESTKIT_BIN (crates/testkit: generates the images, reads the
# reports, writes the summary; default: pruneguard-testkit beside PRUNEGUARD_BIN, else
# `cargo build --release -p testkit`), CYCLE_LAYER_BYTES (base image's random layer, default
# 4194304), CYCLE_JUNK_LAYER_BYTES (each old dangling image's own layer, default 1048576),
# PGSB_DOCKER (docker CLI; default /usr/bin/docker), TMPDIR (where the sandboxes go).
# Every sandbox and registry this script starts is stopped on exit, also on failure or signal.
set -Eeuo pipefail

json=0
k=5
while [ $# -gt 0 ]; do
  case "$1" in
    --json) json=1 ;;
    -h | --help)
      sed -n '2,/^set -Eeuo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
      exit 0
      ;;
    *[!0-9]* | '') echo "cycle.sh: unknown argument: $1 (usage: bench/cycle.sh [--json] [K])" >&2; exit 2 ;;
    *) k=$1 ;;
  esac
  shift
done
[ "$k" -ge 1 ] || { echo "cycle.sh: K must be at least 1" >&2; exit 2; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
log() { printf 'cycle: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}
[ "$(id -u)" -eq 0 ] || die "run as root: the sandboxes need network namespaces and mounts"
bash scripts/sandbox.sh ensure-installed

# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
PROG=cycle
. "$repo/scripts/lib.sh"
find_cargo
release=${CARGO_TARGET_DIR:-$repo/target}/release
pruneguard=${PRUNEGUARD_BIN:-}
if [ -z "$pruneguard" ]; then
  cargo build --release --quiet -p pruneguard
  pruneguard=$release/pruneguard
fi
[ -x "$pruneguard" ] || die "no pruneguard binary at $pruneguard"
# The testkit (crates/testkit) generates the images, reads the reports and writes the
# summary: TESTKIT_BIN, else the one built beside PRUNEGUARD_BIN (a workspace build, as
# scripts/test.sh does), else a release build.
testkit=${TESTKIT_BIN:-}
if [ -z "$testkit" ] && [ -n "${PRUNEGUARD_BIN:-}" ] &&
  [ -x "$(dirname "$PRUNEGUARD_BIN")/pruneguard-testkit" ]; then
  testkit=$(dirname "$PRUNEGUARD_BIN")/pruneguard-testkit
fi
if [ -z "$testkit" ]; then
  cargo build --release --quiet -p testkit
  testkit=$release/pruneguard-testkit
fi
[ -x "$testkit" ] || die "no testkit binary at $testkit (cargo build -p testkit)"
# Nothing from the caller's environment may change pruneguard's policy.
while read -r var; do unset "$var"; done < <(compgen -e | grep '^PRUNEGUARD_' || true)
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
# Until a sandbox is up, aim anything docker-ish at nothing (never at /var/run/docker.sock).
export DOCKER_HOST=unix:///nonexistent/pgcycle-no-daemon.sock

if [ -n "${PGSB_DOCKER:-}" ]; then
  docker_cli=$PGSB_DOCKER
elif [ -x /usr/bin/docker ]; then
  docker_cli=/usr/bin/docker
else
  docker_cli=$(command -v docker) || die "no docker CLI"
fi
layer_bytes=${CYCLE_LAYER_BYTES:-4194304}
junk_layer_bytes=${CYCLE_JUNK_LAYER_BYTES:-1048576}
registry=127.0.0.1:5000
base_ref=$registry/cycle/base:1
app_refs=("$registry/cycle/app1:1" "$registry/cycle/app2:1")
deploy_refs=("$base_ref" "${app_refs[@]}")
min_age_s=86400

work=$(mktemp -d "${TMPDIR:-/tmp}/pgcycle.XXXXXX")
active=()
# shellcheck disable=SC2317 # invoked by the traps
cleanup() {
  local rc=$? d
  trap - EXIT INT TERM ERR
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

# ---------------------------------------------------------------------------------------------
# inputs, made once and shared by every cleaner's run (same images, same layers)

"$testkit" mkimages "$work/base.tar" --tag "$base_ref" --busybox \
  --layer-bytes "$layer_bytes" --seed cycle-base >/dev/null
for app in app1 app2; do
  mkdir -p "$work/ctx-$app"
  "$testkit" random-bytes --seed "$app" --bytes 65536 >"$work/ctx-$app/$app.bin"
  printf 'FROM %s\nCOPY %s.bin /app/%s.bin\n' "$base_ref" "$app" "$app" >"$work/ctx-$app/Dockerfile"
  touch -d 2000-01-01T00:00:00Z "$work/ctx-$app/$app.bin"
done
mkdir -p "$work/ctx-build"
printf 'FROM %s\nCOPY build.txt /build.txt\n' "$base_ref" >"$work/ctx-build/Dockerfile"
for i in $(seq 1 "$k"); do
  "$testkit" mkimages "$work/junk-$i.tar" --tag junk:latest --count 3 \
    --age $((3 * 86400)) --layer-bytes "$junk_layer_bytes" --seed "cycle-junk-$i" >/dev/null
done

# ---------------------------------------------------------------------------------------------
# one cleaner's run

now_ms() { date +%s%3N; }

# dangling_counts: "ALL OLD" (old: created at least min_age ago, Docker's `until` basis).
dangling_counts() {
  local ids all=0 old=0 created now
  ids=$(d images -a -q --no-trunc --filter dangling=true | sort -u)
  now=$(date +%s)
  if [ -n "$ids" ]; then
    # shellcheck disable=SC2086 # a list of ids
    while read -r created; do
      all=$((all + 1))
      if [ $((now - $(date -d "$created" +%s))) -ge "$min_age_s" ]; then old=$((old + 1)); fi
    done < <(d image inspect --format '{{.Created}}' $ids)
  fi
  printf '%s %s\n' "$all" "$old"
}

deploy() {
  local ref i=0
  for ref in "${deploy_refs[@]}"; do
    d pull -q "$ref" >/dev/null
  done
  for ref in "${app_refs[@]}"; do
    i=$((i + 1))
    d run -d --name "app$i" "$ref" >/dev/null
  done
}

# Image IDs of base, app1, app2 ("-" for a reference that does not resolve).
tagged_ids() {
  local ref id ids=()
  for ref in "${deploy_refs[@]}"; do
    id=$(d image inspect --format '{{.Id}}' "$ref" 2>/dev/null) || id=''
    ids+=("${id:--}")
  done
  (IFS=,; printf '%s\n' "${ids[*]}")
}

disk_used() { du -sbx "$sb/data" | cut -f1; }

run_cleaner() {
  local name=$1 i start ms out all old all_after old_after removed decision expected ids
  local records=$work/records-$name
  sb=$work/$name/sb
  mkdir -p "$work/$name"
  log "$name: starting a sandbox daemon and a registry"
  active+=("$sb")
  host=$(bash scripts/sandbox.sh start "$sb" | tail -n 1)
  export DOCKER_HOST=$host
  bash scripts/registry.sh start "$sb" >/dev/null
  d info --format '{{range .RegistryConfig.InsecureRegistryCIDRs}}{{.}} {{end}}' | grep -qw '127.0.0.0/8' ||
    die "the sandbox daemon does not treat 127.0.0.0/8 registries as insecure"
  server_version=$(d version --format '{{.Server.Version}}')

  log "$name: setup (load base, build apps, push, remove every local image)"
  d load -q -i "$work/base.tar" >/dev/null
  for app in app1 app2; do
    DOCKER_BUILDKIT=0 d build -q -t "$registry/cycle/$app:1" "$work/ctx-$app" >/dev/null
  done
  for ref in "${deploy_refs[@]}"; do d push -q "$ref" >/dev/null; done
  # Children first: the apps, then the base they were built on.
  d rmi "${app_refs[@]}" "$base_ref" >/dev/null
  [ -z "$(d images -a -q)" ] || die "$name: images left after removing every local image"

  log "$name: cold deploy"
  mark=$(bash scripts/registry.sh mark "$sb")
  deploy
  out=$(bash scripts/registry.sh counts "$sb" --since "$mark")
  expected=$(tagged_ids)
  echo "cleaner=$name cycle=0 $out disk_after_redeploy=$(disk_used) tagged_ids=$expected" >"$records"

  for i in $(seq 1 "$k"); do
    # teardown: containers only
    d rm -f app1 app2 >/dev/null
    # dangle: old dangling images from an archive, and a young one from a local rebuild
    d load -q -i "$work/junk-$i.tar" >/dev/null
    printf 'build %s\n' "$i" >"$work/ctx-build/build.txt"
    DOCKER_BUILDKIT=0 d build -q -t ci/build:latest "$work/ctx-build" >/dev/null
    read -r all old < <(dangling_counts)
    disk_before=$(disk_used)
    # clean
    start=$(now_ms)
    removed='' decision=''
    case "$name" in
      prune-af)
        d system prune -af >"$work/$name/clean-$i.txt"
        ;;
      pruneguard)
        if ! "$pruneguard" run -H "$host" --no-config --age-basis created --disk-threshold 0 --quiet-period 0s \
          --state-dir "$work/$name/state" --output json \
          >"$work/$name/clean-$i.json" 2>"$work/$name/clean-$i.err"; then
          cat "$work/$name/clean-$i.err" "$work/$name/clean-$i.json" >&2
          die "$name: pruneguard run failed in cycle $i"
        fi
        decision=$("$testkit" report-field "$work/$name/clean-$i.json" decision)
        removed=$("$testkit" report-count "$work/$name/clean-$i.json" removed)
        ;;
    esac
    ms=$(($(now_ms) - start))
    read -r all_after old_after < <(dangling_counts)
    ids=$(tagged_ids)
    local disk_clean
    disk_clean=$(disk_used)
    # redeploy, counted
    mark=$(bash scripts/registry.sh mark "$sb")
    deploy
    out=$(bash scripts/registry.sh counts "$sb" --since "$mark")
    echo "cleaner=$name cycle=$i $out dangling_before=$all old_dangling_before=$old" \
      "dangling_after=$all_after old_dangling_after=$old_after clean_ms=$ms" \
      "decision=${decision:--} removed=${removed:--} tagged_ids_after_clean=$ids" \
      "disk_before_clean=$disk_before disk_after_clean=$disk_clean disk_after_redeploy=$(disk_used)" >>"$records"
    log "$name: cycle $i: $out; dangling after clean ${all_after} (old ${old_after})"
  done

  bash scripts/registry.sh stop "$sb"
  bash scripts/sandbox.sh stop "$sb"
  active=("${active[@]/$sb/}")
}

d() { "$docker_cli" -H "$host" "$@"; }

t0=$(now_ms)
declare -A duration
for cleaner in prune-af pruneguard; do
  s=$(now_ms)
  run_cleaner "$cleaner"
  duration[$cleaner]=$(($(now_ms) - s))
done
total_ms=$(($(now_ms) - t0))

# ---------------------------------------------------------------------------------------------
# summary

# The testkit turns the records into the table and, with --json, the JSON summary.
summary_args=()
if [ "$json" -eq 1 ]; then summary_args+=(--json); fi
"$testkit" cycle-summary "${summary_args[@]}" --cycles "$k" \
  --base-layer-bytes "$layer_bytes" --junk-layer-bytes "$junk_layer_bytes" \
  --prune-af-ms "${duration[prune-af]}" --pruneguard-ms "${duration[pruneguard]}" \
  --total-ms "$total_ms" \
  --docker "dockerd $server_version, $(docker-registry --version | awk '{print $2, $3}')" \
  --cores "$(nproc)" \
  "$work/records-prune-af" "$work/records-pruneguard"
