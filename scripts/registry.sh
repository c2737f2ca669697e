#!/usr/bin/env bash
# A real, local registry v2 (Debian's `docker-registry`, i.e. distribution 2.x) inside a
# sandbox's network namespace: the stand-in for Docker Hub in tests and benchmarks that need
# pulls. It listens on 127.0.0.1:5000 *of the sandbox's netns* only (the sandbox's dockerd
# reaches it there; nothing on the host does), stores blobs in DIR/registry/storage and writes
# an access log (Apache combined format, one line per request) to DIR/registry/access.log.
# dockerd treats registries in 127.0.0.0/8 as insecure (plain HTTP) by default, so image
# references are simply 127.0.0.1:5000/NAME:TAG.
#
# Usage (as root; DIR is a sandbox started by scripts/sandbox.sh):
#   scripts/registry.sh start DIR      start it (idempotent when already running); prints its
#                                      address (127.0.0.1:5000)
#   scripts/registry.sh stop DIR       stop it (TERM, then KILL). Idempotent and quiet. Call it
#                                      before `sandbox.sh stop DIR` (which deletes DIR).
#   scripts/registry.sh counts DIR [--since OFFSET] [--client IP]
#       Count the requests in the access log (from byte OFFSET on, when given; only those of
#       the client at IP, when given) and print one line of key=value pairs:
#         manifest_gets=N   GET  /v2/<name>/manifests/<ref>  (what Docker Hub's pull rate limit
#                                                             counts; HEADs are not counted)
#         manifest_heads=N  HEAD /v2/<name>/manifests/<ref>
#         blob_gets=N       GET  /v2/<name>/blobs/<digest>   (config and layer downloads)
#         blob_bytes=N      body bytes of those blob GETs
#         requests=N        all requests
#         errors=N          requests answered 4xx/5xx
#         offset=N          the log's size: pass it as --since to count only what follows
#       It first waits (up to 2 s) until the log stops growing for 0.2 s, so that the line of a
#       request whose response the client has just read is counted.
#   scripts/registry.sh mark DIR       print the access log's current size (an OFFSET)
#   scripts/registry.sh reset DIR      empty the access log
#   scripts/registry.sh addr DIR       print the registry's address
#
# Files in DIR/registry: config.yml, storage/, access.log (stdout), registry.log (stderr),
# pid. Environment: PGREG_START_TIMEOUT (seconds, default 20); PGREG_ADDR (IPV4:PORT to listen
# on instead of 127.0.0.1:5000, an address of the sandbox's netns, e.g. the swarm rig's hub in
# scripts/swarm.sh; dockerd then needs it in its insecure-registries).
set -Eeuo pipefail

export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
PROG=registry.sh
ADDR=${PGREG_ADDR:-127.0.0.1:5000}

# say, die, alive, kill_wait.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (nsenter into the sandbox's network namespace)"
}

abspath() {
  case "$1" in
    /*) printf '%s\n' "${1%/}" ;;
    *) printf '%s/%s\n' "$(pwd -P)" "${1%/}" ;;
  esac
}

# PIDs of docker-registry processes whose command line names this sandbox's config file
# (also after DIR was deleted: the command line keeps the path).
registry_pids() {
  local conf=$1 f p
  { grep -l -s -z -F -x -e "$conf" /proc/[0-9]*/cmdline 2>/dev/null || true; } | while read -r f; do
    p=${f#/proc/}
    p=${p%/cmdline}
    [ "$(cat "/proc/$p/comm" 2>/dev/null || true)" = docker-registry ] || continue
    printf '%s\n' "$p"
  done
}

# http_ok NETNS: true when GET /v2/ on the registry answers 200 (bash's /dev/tcp inside the
# namespace: no curl needed).
http_ok() {
  # shellcheck disable=SC2016 # expanded by the inner shell
  nsenter --net="/var/run/netns/$1" -- bash -c '
    exec 3<>"/dev/tcp/${1%:*}/${1##*:}" || exit 1
    printf "GET /v2/ HTTP/1.0\r\nHost: %s\r\n\r\n" "$1" >&3
    IFS= read -r -t 5 status <&3 || exit 1
    case "$status" in "HTTP/1."?" 200"*) exit 0 ;; *) exit 1 ;; esac
  ' http_ok "$ADDR" 2>/dev/null
}

cmd_start() {
  need_root
  [ $# -eq 1 ] || die "usage: $0 start DIR"
  local dir reg ns pid timeout start
  dir=$(abspath "$1")
  reg=$dir/registry
  [ -f "$dir/netns" ] || die "no sandbox in $dir (no $dir/netns; start one with scripts/sandbox.sh)"
  ns=$(cat "$dir/netns")
  [ -e "/var/run/netns/$ns" ] || die "the sandbox's network namespace $ns does not exist"
  command -v docker-registry >/dev/null 2>&1 ||
    die "docker-registry is not installed (Debian package docker-registry; scripts/sandbox.sh ensure-installed installs it)"
  pid=$(cat "$reg/pid" 2>/dev/null || true)
  if alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = docker-registry ]; then
    printf '%s\n' "$ADDR"
    return 0
  fi
  mkdir -p "$reg/storage"
  cat >"$reg/config.yml" <<EOF
# Written by scripts/registry.sh for the sandbox in $dir.
version: 0.1
log:
  level: warn
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $reg/storage
  delete:
    enabled: true
http:
  addr: $ADDR
  secret: pruneguard-test-registry
EOF
  : >>"$reg/access.log"
  : >>"$reg/registry.log"
  # nsenter execs the registry (no fork), so $! is the registry's own pid. The access log goes
  # to stdout, the registry's own log to stderr; both are opened for appending, so `reset` can
  # truncate the access log under the running registry.
  nsenter --net="/var/run/netns/$ns" -- docker-registry serve "$reg/config.yml" \
    </dev/null >>"$reg/access.log" 2>>"$reg/registry.log" &
  pid=$!
  printf '%s\n' "$pid" >"$reg/pid"
  timeout=${PGREG_START_TIMEOUT:-20}
  start=$SECONDS
  while ! http_ok "$ns"; do
    if ! alive "$pid"; then
      say "$PROG: docker-registry exited during start; its log:"
      tail -n 20 "$reg/registry.log" >&2 || true
      exit 1
    fi
    if ((SECONDS - start >= timeout)); then
      say "$PROG: docker-registry did not answer on $ADDR within ${timeout} s; its log:"
      tail -n 20 "$reg/registry.log" >&2 || true
      stop_registry "$dir"
      exit 1
    fi
    sleep 0.1
  done
  # The readiness probe is not a request anybody should count.
  : >"$reg/access.log"
  printf '%s\n' "$ADDR"
}

stop_registry() {
  local dir=$1 reg pids p
  reg=$dir/registry
  pids=$(
    cat "$reg/pid" 2>/dev/null || true
    registry_pids "$reg/config.yml"
  )
  for p in $(printf '%s\n' "$pids" | sort -u); do
    alive "$p" || continue
    [ "$(cat "/proc/$p/comm" 2>/dev/null || true)" = docker-registry ] || continue
    kill_wait "$p" 50
  done
  rm -f "$reg/pid"
}

cmd_stop() {
  need_root
  [ $# -eq 1 ] || die "usage: $0 stop DIR"
  stop_registry "$(abspath "$1")"
}

log_of() {
  local log
  log=$(abspath "$1")/registry/access.log
  [ -f "$log" ] || die "no registry access log in $1 (start the registry first)"
  printf '%s\n' "$log"
}

size_of() { stat -c %s "$1"; }

# Wait until the log has not grown for 0.2 s (at most 2 s).
settle() {
  local log=$1 last now i stable=0
  last=$(size_of "$log")
  for ((i = 0; i < 20 && stable < 2; i++)); do
    sleep 0.1
    now=$(size_of "$log")
    if [ "$now" = "$last" ]; then
      stable=$((stable + 1))
    else
      stable=0
      last=$now
    fi
  done
}

cmd_counts() {
  [ $# -ge 1 ] || die "usage: $0 counts DIR [--since OFFSET] [--client IP]"
  local log since=0 size client=""
  log=$(log_of "$1")
  shift
  while [ $# -gt 0 ]; do
    case "$1" in
      --since)
        [ $# -ge 2 ] || die "--since needs an OFFSET"
        since=$2
        shift 2
        ;;
      --since=*)
        since=${1#*=}
        shift
        ;;
      --client)
        [ $# -ge 2 ] || die "--client needs an IP address"
        client=$2
        shift 2
        ;;
      *) die "unknown option: $1" ;;
    esac
  done
  case "$since" in '' | *[!0-9]*) die "--since wants a byte offset, got: $since" ;; esac
  settle "$log"
  size=$(size_of "$log")
  # The log was reset since OFFSET was taken: count all of it.
  [ "$since" -le "$size" ] || since=0
  # Combined log format: HOST - USER [TIME] "METHOD PATH PROTO" STATUS BYTES "REFERER" "UA".
  # Splitting on '"' gives the request line as field 2 and " STATUS BYTES " as field 3.
  tail -c +"$((since + 1))" "$log" | head -c "$((size - since))" | LC_ALL=C awk -F'"' -v offset="$size" -v client="$client" '
    {
      if (client != "") {
        split($1, who, " ")
        if (who[1] != client) next
      }
      split($2, req, " ")
      n = split($3, sb, " ")
      status = sb[1] + 0
      bytes = (n >= 2 && sb[2] ~ /^[0-9]+$/) ? sb[2] + 0 : 0
      requests++
      if (status >= 400) errors++
      path = req[2]
      sub(/\?.*/, "", path)
      if (path ~ /^\/v2\/.+\/manifests\/[^\/]+$/) {
        if (req[1] == "GET") manifest_gets++
        else if (req[1] == "HEAD") manifest_heads++
      } else if (path ~ /^\/v2\/.+\/blobs\/[^\/]+$/ && req[1] == "GET") {
        blob_gets++
        blob_bytes += bytes
      }
    }
    END {
      printf "manifest_gets=%d manifest_heads=%d blob_gets=%d blob_bytes=%d requests=%d errors=%d offset=%d\n",
        manifest_gets, manifest_heads, blob_gets, blob_bytes, requests, errors, offset
    }'
}

cmd_mark() {
  [ $# -eq 1 ] || die "usage: $0 mark DIR"
  local log
  log=$(log_of "$1")
  settle "$log"
  size_of "$log"
}

cmd_reset() {
  [ $# -eq 1 ] || die "usage: $0 reset DIR"
  local log
  log=$(log_of "$1")
  settle "$log"
  : >"$log"
}

main() {
  [ $# -ge 1 ] || die "usage: $0 start|stop|counts|mark|reset|addr DIR ..."
  local cmd=$1
  shift
  case "$cmd" in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    counts) cmd_counts "$@" ;;
    mark) cmd_mark "$@" ;;
    reset) cmd_reset "$@" ;;
    addr) printf '%s\n' "$ADDR" ;;
    -h | --help | help) sed -n '2,/^set -Eeuo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' ;;
    *) die "unknown command: $cmd" ;;
  esac
}

main "$@"
