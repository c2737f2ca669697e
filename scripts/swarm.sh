#!/usr/bin/env bash
# A 3-node Docker Swarm for pruneguard's tests: three private dockerd sandboxes
# (scripts/sandbox.sh start), their network namespaces joined by a bridge in a fourth "hub"
# namespace on the private 10.214.0.0/24 (which exists only inside those namespaces, never on
# the host's), one manager and two workers, and a local registry (scripts/registry.sh,
# Debian's docker-registry) in the hub on 10.214.0.254:5000 that every node reaches at that
# one address. The registry's answers leave the hub through a `tc` token-bucket filter
# (tbf), so pulls take long enough to be seen mid-way; its access log counts every request.
# This kernel has no IPVS: services need `--endpoint-mode dnsrr` and no published ports.
# The manager's dockerd also serves mutual TLS (`--tlsverify`) on 10.214.0.1:2376, with
# certificates made at start by scripts/tls-certs.sh in PREFIX/tls (server SANs: IP 10.214.0.1,
# DNS manager.pgsw.test, 127.0.0.1, localhost; the client's cert.pem and key.pem there too, so
# PREFIX/tls is a DOCKER_CERT_PATH); start checks it answers from node 2's namespace.
#
# Usage (as root):
#   scripts/swarm.sh start PREFIX [--rate RATE]
#       Start the swarm below PREFIX (created; its path should be short: sockets live in it).
#       RATE is tc's rate of the registry's answers (default 8mbit, i.e. 1 MB/s; "off" for
#       no throttle). Prints the three DOCKER_HOSTs, manager first, one a line. A start that
#       fails removes everything it had made.
#   scripts/swarm.sh stop PREFIX       stop all of it (also after a half-failed start);
#                                      idempotent and quiet
#   scripts/swarm.sh host PREFIX N     DOCKER_HOST of node N (1 = manager, 2 and 3 workers)
#   scripts/swarm.sh dir PREFIX N      node N's sandbox DIR (for scripts/sandbox.sh)
#   scripts/swarm.sh registry PREFIX   the registry's address (10.214.0.254:5000)
#   scripts/swarm.sh tls PREFIX        the manager's TLS certificate dir (PREFIX/tls; its
#                                      listener is tcp://10.214.0.1:2376)
#   scripts/swarm.sh counts PREFIX [--since OFFSET] [--node N]
#                                      scripts/registry.sh counts of the hub (only node N's
#                                      requests with --node: its address 10.214.0.N)
#   scripts/swarm.sh mark PREFIX       the access log's size, for counts --since
#   scripts/swarm.sh publish PREFIX NAME:TAG [mkimages options…]
#       Generate an image with pruneguard-testkit (PGSW_TESTKIT, else the workspace's
#       target/*/pruneguard-testkit), load it on the manager as REGISTRY/NAME:TAG, push it.
#       Prints the pushed reference.
#   scripts/swarm.sh throttle PREFIX RATE   change the registry's rate (or "off")
#
# Files in PREFIX: n1 n2 n3 (sandbox DIRs; n1 is the manager), hub/netns (the hub namespace),
# hub/registry/ (the registry's files and access.log), hosts (the DOCKER_HOSTs), tls/ (the
# manager's TLS certificates), shared/ (seen by every node's daemon at that path, chrooted
# engines too: sources of a service's bind mounts).
set -Eeuo pipefail

export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
PROG=swarm.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
NET=10.214.0
REGISTRY_ADDR=$NET.254:5000
BRIDGE=pgswbr
REG_VETH=pgswreg
NODE_VETH=pgsw0
DEFAULT_RATE=8mbit
MANAGER_TLS_PORT=2376
MANAGER_DNS=manager.pgsw.test

# say, die, alive, kill_wait.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

need_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces, mounts, dockerd)"
}

abspath() {
  case "$1" in
    /*) printf '%s\n' "${1%/}" ;;
    *) printf '%s/%s\n' "$(pwd -P)" "${1%/}" ;;
  esac
}

sandbox() { bash "$HERE/sandbox.sh" "$@"; }
registry() { PGREG_ADDR=$REGISTRY_ADDR bash "$HERE/registry.sh" "$@"; }

docker_cli() {
  if [ -n "${PGSB_DOCKER:-}" ]; then
    printf '%s\n' "$PGSB_DOCKER"
  elif [ -x /usr/bin/docker ]; then
    printf '%s\n' /usr/bin/docker
  else
    command -v docker || die "no docker CLI found (run: scripts/sandbox.sh ensure-installed)"
  fi
}

# dk N ARGS…: the docker CLI aimed at node N only.
dk() {
  local n=$1
  shift
  DOCKER_CONFIG="$PREFIX/docker-config" "$(docker_cli)" -H "$(cat "$PREFIX/n$n/host")" "$@"
}

# What a start is doing, for the one message that says which step failed.
STEP=''

start_failed() {
  local failed=$1
  trap - ERR
  if [ "${BASH_SUBSHELL:-0}" -gt 0 ]; then exit 1; fi
  case $failed in return*) failed='' ;; esac
  say "$PROG: the swarm in $PREFIX failed to start while ${STEP:-preparing it}${failed:+ (the failing command: $failed)}."
  local n
  for n in 1 2 3; do
    if [ -s "$PREFIX/n$n/dockerd.log" ]; then
      say "--- last 8 lines of $PREFIX/n$n/dockerd.log"
      tail -n 8 "$PREFIX/n$n/dockerd.log" >&2
    fi
  done
  stop_all
  say "$PROG: removed what the failed start had made."
  exit 1
}

set_rate() {
  local ns=$1 rate=$2
  ip netns exec "$ns" tc qdisc del dev "$REG_VETH" root 2>/dev/null || true
  [ "$rate" = off ] && return 0
  # burst: a few packets; latency bounds the queue (tbf drops beyond it, TCP backs off).
  ip netns exec "$ns" tc qdisc add dev "$REG_VETH" root tbf rate "$rate" burst 16kb latency 200ms
}

cmd_start() {
  need_root
  [ $# -ge 1 ] || die "usage: $0 start PREFIX [--rate RATE]"
  PREFIX=$(abspath "$1")
  shift
  local rate=$DEFAULT_RATE hub n pids=() token ns
  while [ $# -gt 0 ]; do
    case "$1" in
      --rate)
        [ $# -ge 2 ] || die "--rate needs a tc rate such as 8mbit, or off"
        rate=$2
        shift 2
        ;;
      --rate=*)
        rate=${1#*=}
        shift
        ;;
      *) die "unknown option: $1" ;;
    esac
  done
  [ -e "$PREFIX/hub/netns" ] && die "$PREFIX already holds a swarm (stop it first)"
  trap 'start_failed "$BASH_COMMAND"' ERR
  STEP="creating $PREFIX"
  mkdir -p "$PREFIX/hub" "$PREFIX/docker-config" "$PREFIX/shared"

  STEP="creating the hub network namespace"
  hub="pgsw-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
  ip netns add "$hub"
  printf '%s\n' "$hub" >"$PREFIX/hub/netns"
  ip -n "$hub" link set lo up
  ip -n "$hub" link add "$BRIDGE" type bridge
  ip -n "$hub" link set "$BRIDGE" up
  # The registry's own link into the bridge: its answers leave through the tbf on REG_VETH.
  ip -n "$hub" link add "$REG_VETH" type veth peer name "${REG_VETH}p"
  ip -n "$hub" link set "${REG_VETH}p" master "$BRIDGE" up
  ip -n "$hub" addr add "$NET.254/24" dev "$REG_VETH"
  ip -n "$hub" link set "$REG_VETH" up

  STEP="making the manager's TLS certificates (scripts/tls-certs.sh)"
  bash "$HERE/tls-certs.sh" "$PREFIX/tls" --ip "$NET.1" --dns "$MANAGER_DNS"

  STEP="starting the three sandboxes"
  for n in 1 2 3; do
    if [ "$n" = 1 ]; then
      # 0.0.0.0 of the manager's own namespace: 10.214.0.1 is given to it only once the sandbox
      # is linked to the hub, after dockerd has started (and a dockerd cannot listen on an
      # address that does not exist yet). No wider: the namespace's other addresses (lo, its
      # own docker bridges) are reachable only from inside it.
      PGSB_SHARED_DIR=$PREFIX/shared PGSB_TLS_DIR=$PREFIX/tls \
        PGSB_TLS_ADDR=0.0.0.0:$MANAGER_TLS_PORT sandbox start "$PREFIX/n$n" >/dev/null &
    else
      PGSB_SHARED_DIR=$PREFIX/shared PGSB_TLS_DIR='' PGSB_TLS_ADDR='' \
        sandbox start "$PREFIX/n$n" >/dev/null &
    fi
    pids+=($!)
  done
  local failed=0
  for n in "${pids[@]}"; do wait "$n" || failed=1; done
  [ "$failed" -eq 0 ] || return 1

  STEP="linking the sandboxes to the hub's bridge"
  for n in 1 2 3; do
    ns=$(cat "$PREFIX/n$n/netns")
    # Created directly inside the two namespaces: the link never exists on the host.
    ip link add "$NODE_VETH" netns "$ns" type veth peer name "pgswh$n" netns "$hub"
    ip -n "$hub" link set "pgswh$n" master "$BRIDGE" up
    ip -n "$ns" addr add "$NET.$n/24" dev "$NODE_VETH"
    ip -n "$ns" link set "$NODE_VETH" up
    printf '%s\n' "$NET.$n" >"$PREFIX/n$n/addr"
  done

  STEP="marking the registry insecure (plain HTTP) in every dockerd"
  for n in 1 2 3; do
    mark_insecure "$PREFIX/n$n"
  done

  STEP="starting the registry in the hub"
  printf '%s\n' "$hub" >"$PREFIX/hub/netns"
  registry start "$PREFIX/hub" >/dev/null
  STEP="throttling the registry's answers (tc tbf $rate)"
  set_rate "$hub" "$rate"

  STEP="checking that every node reaches the registry"
  for n in 1 2 3; do
    wait_registry_from "$(cat "$PREFIX/n$n/netns")"
  done
  for n in 1 2 3; do
    wait_insecure "$n"
  done
  STEP="checking the manager's TLS listener from node 2 (tcp://$NET.1:$MANAGER_TLS_PORT)"
  wait_manager_tls

  STEP="initialising the swarm on node 1"
  dk 1 swarm init --advertise-addr "$NET.1" >/dev/null
  token=$(dk 1 swarm join-token -q worker)
  STEP="joining nodes 2 and 3 as workers"
  for n in 2 3; do
    dk "$n" swarm join --token "$token" --advertise-addr "$NET.$n" "$NET.1:2377" >/dev/null
  done
  STEP="waiting for three ready nodes"
  wait_nodes
  trap - ERR
  for n in 1 2 3; do cat "$PREFIX/n$n/host"; done >"$PREFIX/hosts"
  cat "$PREFIX/hosts"
}

# dockerd reloads insecure-registries from its config file on SIGHUP, so sandbox.sh's daemons
# need no restart and no extra flag.
mark_insecure() {
  local dir=$1 key pid
  key=$(sed -n 's/.*"deprecated-key-path": *"\([^"]*\)".*/\1/p' "$dir/daemon.json")
  cat >"$dir/daemon.json" <<EOF
{
  "deprecated-key-path": "$key",
  "insecure-registries": ["$REGISTRY_ADDR"]
}
EOF
  pid=$(cat "$dir/dockerd.pid")
  kill -HUP "$pid"
}

wait_insecure() {
  local n=$1 i
  for ((i = 0; i < 100; i++)); do
    if dk "$n" info --format '{{json .RegistryConfig.IndexConfigs}}' 2>/dev/null |
      grep -q -F "\"$REGISTRY_ADDR\""; then
      return 0
    fi
    sleep 0.1
  done
  say "$PROG: dockerd of node $n did not take $REGISTRY_ADDR as an insecure registry"
  return 1
}

wait_registry_from() {
  local ns=$1 i
  for ((i = 0; i < 50; i++)); do
    # shellcheck disable=SC2016 # expanded by the inner shell
    if nsenter --net="/var/run/netns/$ns" -- bash -c '
      exec 3<>"/dev/tcp/${1%:*}/${1##*:}" || exit 1
      printf "GET /v2/ HTTP/1.0\r\nHost: %s\r\n\r\n" "$1" >&3
      IFS= read -r -t 5 status <&3 || exit 1
      case "$status" in "HTTP/1."?" 200"*) exit 0 ;; *) exit 1 ;; esac
    ' probe "$REGISTRY_ADDR" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  say "$PROG: the registry at $REGISTRY_ADDR does not answer from namespace $ns"
  return 1
}

# The manager's TLS listener answers at 10.214.0.1 across the bridge, to the docker CLI with
# the client certificate (sandbox.sh start already saw it answer inside the manager's own
# namespace, so one try is all that is expected to be needed).
wait_manager_tls() {
  local ns i t=$PREFIX/tls
  ns=$(cat "$PREFIX/n2/netns")
  for ((i = 0; i < 50; i++)); do
    if DOCKER_CONFIG="$PREFIX/docker-config" nsenter --net="/var/run/netns/$ns" -- "$(docker_cli)" \
      --tlsverify --tlscacert "$t/ca.pem" --tlscert "$t/cert.pem" --tlskey "$t/key.pem" \
      -H "tcp://$NET.1:$MANAGER_TLS_PORT" version --format '{{.Server.Version}}' >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  say "$PROG: the manager's TLS listener tcp://$NET.1:$MANAGER_TLS_PORT does not answer from node 2"
  return 1
}

wait_nodes() {
  local i ready
  for ((i = 0; i < 300; i++)); do
    ready=$(dk 1 node ls --format '{{.Status}}' 2>/dev/null | grep -c '^Ready$' || true)
    [ "$ready" = 3 ] && return 0
    sleep 0.1
  done
  say "$PROG: the swarm did not have three ready nodes within 30 s"
  dk 1 node ls >&2 || true
  return 1
}

# Everything below PREFIX: the sandboxes (in parallel), the registry, the hub namespace.
stop_all() {
  local n hub pids=()
  for n in 1 2 3; do
    if [ -e "$PREFIX/n$n" ]; then
      sandbox stop "$PREFIX/n$n" &
      pids+=($!)
    fi
  done
  for n in "${pids[@]}"; do wait "$n" || true; done
  if [ -f "$PREFIX/hub/netns" ]; then
    registry stop "$PREFIX/hub" || true
    hub=$(cat "$PREFIX/hub/netns")
    if [ -n "$hub" ] && [ -e "/var/run/netns/$hub" ]; then
      ip netns del "$hub" 2>/dev/null || say "$PROG: cannot delete netns $hub"
    fi
  fi
  # Anything of this swarm still running (a sandbox whose state was lost).
  sandbox cleanup-under "$PREFIX" >/dev/null 2>&1 || true
  rm -rf --one-file-system "$PREFIX" 2>/dev/null || true
}

cmd_stop() {
  need_root
  [ $# -eq 1 ] || die "usage: $0 stop PREFIX"
  PREFIX=$(abspath "$1")
  [ "$PREFIX" != "" ] || die "refusing to stop /"
  [ -d "$PREFIX" ] || return 0
  stop_all
}

node_n() {
  case "$1" in
    1 | 2 | 3) ;;
    *) die "node numbers are 1 (the manager), 2 and 3, not: $1" ;;
  esac
}

cmd_publish() {
  need_root
  [ $# -ge 2 ] || die "usage: $0 publish PREFIX NAME:TAG [mkimages options…]"
  PREFIX=$(abspath "$1")
  local ref="$REGISTRY_ADDR/$2" testkit archive
  shift 2
  testkit=${PGSW_TESTKIT:-}
  if [ -z "$testkit" ]; then
    for testkit in "${CARGO_TARGET_DIR:-$HERE/../target}"/{debug,release}/pruneguard-testkit ""; do
      [ -x "$testkit" ] && break
    done
  fi
  [ -n "$testkit" ] && [ -x "$testkit" ] ||
    die "pruneguard-testkit not found; build it (cargo build -p testkit) or set PGSW_TESTKIT"
  archive=$(mktemp "$PREFIX/image.XXXXXX.tar")
  "$testkit" mkimages "$archive" --tag "$ref" "$@" >/dev/null
  dk 1 load -q -i "$archive" >/dev/null
  rm -f "$archive"
  dk 1 push -q "$ref" >/dev/null
  printf '%s\n' "$ref"
}

main() {
  [ $# -ge 1 ] || die "usage: $0 start|stop|host|dir|registry|tls|counts|mark|publish|throttle PREFIX ..."
  local cmd=$1
  shift
  case "$cmd" in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    host)
      [ $# -eq 2 ] || die "usage: $0 host PREFIX N"
      node_n "$2"
      cat "$(abspath "$1")/n$2/host"
      ;;
    dir)
      [ $# -eq 2 ] || die "usage: $0 dir PREFIX N"
      node_n "$2"
      printf '%s\n' "$(abspath "$1")/n$2"
      ;;
    registry) printf '%s\n' "$REGISTRY_ADDR" ;;
    tls)
      [ $# -eq 1 ] || die "usage: $0 tls PREFIX"
      printf '%s\n' "$(abspath "$1")/tls"
      ;;
    counts)
      [ $# -ge 1 ] || die "usage: $0 counts PREFIX [--since OFFSET] [--node N]"
      local p=$1 args=()
      shift
      while [ $# -gt 0 ]; do
        case "$1" in
          --node)
            [ $# -ge 2 ] || die "--node needs a node number"
            node_n "$2"
            args+=(--client "$NET.$2")
            shift 2
            ;;
          *)
            args+=("$1")
            shift
            ;;
        esac
      done
      registry counts "$(abspath "$p")/hub" "${args[@]}"
      ;;
    mark)
      [ $# -eq 1 ] || die "usage: $0 mark PREFIX"
      registry mark "$(abspath "$1")/hub"
      ;;
    publish) cmd_publish "$@" ;;
    throttle)
      need_root
      [ $# -eq 2 ] || die "usage: $0 throttle PREFIX RATE"
      set_rate "$(cat "$(abspath "$1")/hub/netns")" "$2"
      ;;
    -h | --help | help) sed -n '2,/^set -Eeuo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' ;;
    *) die "unknown command: $cmd" ;;
  esac
}

main "$@"
