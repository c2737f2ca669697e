#!/usr/bin/env bash
# Private container engines for pruneguard's tests: one engine (dockerd with its own
# containerd, or a Podman service) per sandbox, each in its own network namespace, with its own
# data root, exec root and socket. The host's default daemon and /var/run/docker.sock are never
# used.
#
# Engines (--engine NAME; default docker-20.10; `scripts/engines.sh list`):
#   docker-20.10              the host's dockerd (Debian 12's docker.io), classic overlay2 store
#   docker-28                 dockerd 28 from a Debian sid root filesystem, classic overlay2 store
#   docker-28-containerd      the same with the containerd image store (containerd started by
#                             dockerd, root under the data root)
#   docker-28-containerd-ext  the same, with containerd as a separate daemon whose root is on its
#                             own filesystem (a loop-mounted ext4 image, DIR/ctr; dockerd
#                             --containerd=SOCK)
#   podman-5                  sid's `podman system service`, rootful, on DIR/podman.sock
#   podman-4.3                Debian 12's Podman 4.3.1, from a bookworm root filesystem
# The non-host engines run chrooted into a private overlayfs (DIR/root) over a root filesystem
# that scripts/engines.sh builds once per machine (`ensure-engines`); DIR is bound into it at
# its own path, so every path (socket, data root) is the same inside and outside.
#
# Usage (as root):
#   scripts/sandbox.sh start DIR [--engine NAME] [--data-root-size MB] [--containerd-root-size MB]
#       Start a sandbox in DIR (created). Prints one line: its DOCKER_HOST (unix:///…/docker.sock,
#       or …/podman.sock). --data-root-size puts the data root on a loop-mounted ext4 image of MB
#       MiB (no reserved blocks, so `df` on DIR/data shows what images use).
#       --containerd-root-size (docker-28-containerd-ext; default 4096) sizes containerd's own
#       filesystem (DIR/ctr, a sparse image).
#   scripts/sandbox.sh pair DIR1 DIR2 [--engine NAME] [--data-root-size MB]   (docker engines)
#       Two sandboxes whose namespaces are joined by a veth pair (pgsb0 in each) with
#       10.213.0.1/24 (DIR1) and 10.213.0.2/24 (DIR2). Prints the two DOCKER_HOSTs, one a line.
#       DIRn/addr holds each one's address.
#   scripts/sandbox.sh stop DIR
#       Stop everything of that sandbox (containers, dockerd, containerd, shims), unmount all
#       under DIR, delete its netns (and veth), remove DIR. Idempotent and quiet.
#   scripts/sandbox.sh stop-daemon DIR      stop dockerd only (for "daemon is down" tests)
#   scripts/sandbox.sh start-daemon DIR     start it again; prints DOCKER_HOST
#   scripts/sandbox.sh host DIR             print DOCKER_HOST of a started sandbox
#   scripts/sandbox.sh cleanup-under PREFIX stop every sandbox whose DIR is under PREFIX, and any
#       dockerd/containerd/shim whose command line names a path under PREFIX
#   scripts/sandbox.sh list                 registered sandboxes: NETNS DIR
#   scripts/sandbox.sh ensure-installed     apt-get install what the tests need, if missing
#   scripts/sandbox.sh ensure-engines       that, and build the engines' root filesystems (cached)
#   scripts/sandbox.sh engine DIR           print the engine of a started sandbox
#
# A TLS listener (docker engines; opt-in at start and pair): with PGSB_TLS_DIR (a directory
# written by scripts/tls-certs.sh) and PGSB_TLS_ADDR (HOST:PORT inside the sandbox's namespace,
# e.g. 127.0.0.1:2376; 0.0.0.0:PORT for every address it has or will have) set, dockerd also
# serves `-H tcp://ADDR --tlsverify` with those certificates, copied to DIR/tls (visible in
# the chroot too, and a DOCKER_CERT_PATH: ca.pem, cert.pem, key.pem). start waits until the
# docker CLI gets an answer there over TLS with the client certificate; start-daemon serves it
# again. DOCKER_HOST stays the unix socket. Reach it from inside the namespace:
#   nsenter --net=/var/run/netns/$(cat DIR/netns) -- docker --tlsverify \
#     --tlscacert DIR/tls/ca.pem --tlscert DIR/tls/cert.pem --tlskey DIR/tls/key.pem -H tcp://ADDR …
#
# Files in DIR: netns (namespace name), host (DOCKER_HOST), engine, addr (pair only),
# dockerd.log or podman.log, containerd.log, data/ (data root; Podman's graphroot),
# ctr/root (containerd-ext: containerd's root), tls/ (with PGSB_TLS_DIR), state (key=value,
# also kept in /run/pgsb/NETNS).
# Environment: PGSB_DOCKER (docker CLI to use; default /usr/bin/docker, else `docker`),
# PGSB_STORAGE_DRIVER (default: dockerd's choice), PGSB_START_TIMEOUT (seconds, default 60),
# PRUNEGUARD_ENGINE (the default of --engine), PGSB_CONTAINERD_ROOT_SIZE (MiB, default 4096),
# PGSB_TLS_DIR and PGSB_TLS_ADDR (above), PGSB_SHARED_DIR (an existing directory the chrooted
# engines also see at its own path: a swarm rig's bind-mount sources), PRUNEGUARD_CI_CACHE and
# PRUNEGUARD_DEBIAN_MIRROR (scripts/engines.sh).
set -Eeuo pipefail

# dockerd, ip, losetup and mkfs live in sbin, which a non-login PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
PROG=sandbox.sh
REGISTRY=/run/pgsb
PAIR_NET=10.213.0
VETH=pgsb0
# Unix socket paths must stay below 108 bytes; the longest one dockerd makes is about
# EXEC_ROOT + 36 bytes (containerd/containerd-debug.sock, libnetwork/<12 hex>.sock).
MAX_DIR_LEN=50

# say, die, alive, kill_wait.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# rootfs_of, chroot_setup, in_chroot, podman_config, ensure_one.
# shellcheck source-path=SCRIPTDIR source=engines.sh
. "$(dirname "${BASH_SOURCE[0]}")/engines.sh"

docker_cli() {
  if [ -n "${PGSB_DOCKER:-}" ]; then
    printf '%s\n' "$PGSB_DOCKER"
  elif [ -x /usr/bin/docker ]; then
    printf '%s\n' /usr/bin/docker
  else
    command -v docker || die "no docker CLI found (run: $0 ensure-installed)"
  fi
}

need_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces, mounts, dockerd)"
}

abspath() {
  case "$1" in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s/%s\n' "$(pwd -P)" "$1" ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# ensure-installed

PACKAGES=(docker.io docker-registry prometheus busybox-static iproute2 time
  util-linux mount e2fsprogs iptables nix-bin systemd)

pkg_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

cmd_ensure_installed() {
  need_root
  local missing=() p log rc created_policy=0
  for p in "${PACKAGES[@]}"; do
    pkg_installed "$p" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "$PROG: installing ${missing[*]}"
  # Keep apt from starting the host's own docker/registry/prometheus services.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  log=$(mktemp /tmp/pgsb-apt.XXXXXX)
  rc=0
  {
    apt-get -o DPkg::Lock::Timeout=600 update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        "${missing[@]}"
  } >"$log" 2>&1 || rc=$?
  [ "$created_policy" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
  if [ "$rc" -ne 0 ]; then
    tail -n 40 "$log" >&2
    rm -f "$log"
    die "apt-get install ${missing[*]} failed"
  fi
  rm -f "$log"
}

cmd_ensure_engines() {
  cmd_ensure_installed
  ensure_one sid
  ensure_one bookworm
}

# ---------------------------------------------------------------------------------------------
# state

# Sandbox state lives in DIR/state and, so that stray sandboxes can be found even after DIR is
# gone, in $REGISTRY/NETNS. Lines: key=value.
S_NAME='' S_DIR='' S_RUNDIR='' S_SOCK='' S_CSOCK='' S_DISK='' S_ENGINE='' S_ROOT='' S_CDISK='' S_TLS=''
# What a start is doing, for the one message that says which step failed.
STEP=''

state_write() {
  local f
  mkdir -p "$REGISTRY"
  for f in "$S_DIR/state" "$REGISTRY/$S_NAME"; do
    printf 'name=%s\ndir=%s\nrundir=%s\nsock=%s\ncsock=%s\ndisk=%s\nengine=%s\nroot=%s\ncdisk=%s\ntls=%s\n' \
      "$S_NAME" "$S_DIR" "$S_RUNDIR" "$S_SOCK" "$S_CSOCK" "$S_DISK" "$S_ENGINE" "$S_ROOT" "$S_CDISK" "$S_TLS" >"$f"
  done
  printf '%s\n' "$S_NAME" >"$S_DIR/netns"
}

state_read_file() {
  local k v
  S_NAME='' S_DIR='' S_RUNDIR='' S_SOCK='' S_CSOCK='' S_DISK='' S_ENGINE=docker-20.10 S_ROOT='' S_CDISK='' S_TLS=''
  while IFS='=' read -r k v; do
    case "$k" in
      name) S_NAME=$v ;;
      dir) S_DIR=$v ;;
      rundir) S_RUNDIR=$v ;;
      sock) S_SOCK=$v ;;
      csock) S_CSOCK=$v ;;
      disk) S_DISK=$v ;;
      engine) S_ENGINE=$v ;;
      root) S_ROOT=$v ;;
      cdisk) S_CDISK=$v ;;
      tls) S_TLS=$v ;;
    esac
  done <"$1"
  [ -n "$S_NAME" ] && [ -n "$S_DIR" ]
}

# Load the state of the sandbox in DIR (from DIR/state, else from the registry).
state_load() {
  local dir=$1 f
  if [ -f "$dir/state" ] && state_read_file "$dir/state"; then
    return 0
  fi
  if [ -d "$REGISTRY" ]; then
    for f in "$REGISTRY"/*; do
      [ -f "$f" ] || continue
      if state_read_file "$f" && [ "$S_DIR" = "$dir" ]; then
        return 0
      fi
    done
  fi
  S_NAME='' S_DIR='' S_RUNDIR='' S_SOCK='' S_CSOCK='' S_DISK='' S_ENGINE='' S_ROOT='' S_CDISK='' S_TLS=''
  return 1
}

host_url() { printf 'unix://%s\n' "$S_SOCK"; }

# ---------------------------------------------------------------------------------------------
# processes and mounts

# PIDs of docker's daemons (dockerd, containerd, shims, docker-proxy, runc) whose command
# line contains one of the given literal strings (an argument that contains it: every needle
# here is a path). Only those programs, so never this script, a test or a grep.
pids_matching() {
  local args=() n f p
  for n in "$@"; do
    [ -n "$n" ] && args+=(-e "$n")
  done
  [ ${#args[@]} -gt 0 ] || return 0
  # -z: the NUL-separated arguments are grep's lines.
  { grep -l -s -z -F "${args[@]}" /proc/[0-9]*/cmdline 2>/dev/null || true; } | while read -r f; do
    p=${f#/proc/}
    p=${p%/cmdline}
    case "$(cat "/proc/$p/comm" 2>/dev/null || true)" in
      dockerd | containerd | containerd-shim* | docker-proxy | runc | docker-init | docker-registry) ;;
      podman | conmon | netavark | aardvark-dns | catatonit) ;;
      *) continue ;;
    esac
    printf '%s\n' "$p"
  done
}

# All descendants of a pid (children before grandchildren).
descendants_of() {
  # /proc/PID/stat: "PID (COMM) STATE PPID ..."; COMM may hold spaces and parentheses.
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$1" '
    { pid = $1; sub(/^.*\) /, ""); kids[$2] = kids[$2] " " pid }
    END {
      queue = root
      while (queue != "") {
        split(queue, q, " "); queue = ""
        for (i in q) {
          n = split(kids[q[i]], k, " ")
          for (j = 1; j <= n; j++) { print k[j]; queue = queue " " k[j] }
        }
      }
    }'
}

# Kill a process and all its descendants (SIGKILL; the process first, so it cannot restart
# any of them).
kill_tree() {
  local pid=$1 kids
  kids=$(descendants_of "$pid")
  kill -KILL "$pid" 2>/dev/null || true
  # shellcheck disable=SC2086 # a list of pids
  [ -z "$kids" ] || kill -KILL $kids 2>/dev/null || true
}

# PIDs of processes whose root directory is at or below one of the given paths (what runs in a
# sandbox's chroot, containers included). Never this script: its root is /.
pids_rooted_under() {
  local f r p d
  for f in /proc/[0-9]*/root; do
    r=$(readlink "$f" 2>/dev/null) || continue
    for d in "$@"; do
      [ -n "$d" ] || continue
      case "$r" in
        "$d" | "$d"/*)
          p=${f#/proc/}
          printf '%s\n' "${p%/root}"
          break
          ;;
      esac
    done
  done
}

# Mount points at or below any of the given paths, deepest first.
mounts_under() {
  awk '{ print $5 }' /proc/self/mountinfo | while read -r m; do
    m=$(printf '%b' "${m//\\/\\0}")
    local p
    for p in "$@"; do
      [ -n "$p" ] || continue
      case "$m" in
        "$p" | "$p"/*) printf '%s\n' "$m" ;;
      esac
    done
  done | sort -r -u
}

unmount_under() {
  local m
  while read -r m; do
    [ -n "$m" ] || continue
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "$PROG: cannot unmount $m"
  done < <(mounts_under "$@")
}

# ---------------------------------------------------------------------------------------------
# start

new_netns() {
  local name i
  for ((i = 0; i < 20; i++)); do
    name="pgsb-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
    if ip netns add "$name" 2>/dev/null; then
      ip -n "$name" link set lo up
      printf '%s\n' "$name"
      return 0
    fi
  done
  die "cannot create a network namespace (ip netns add)"
}

# Prepare DIR for ENGINE: netns, dirs, optional loop-mounted data root, containerd's own
# filesystem (containerd-ext), the chroot (engines from a root filesystem), config files. Sets S_*.
prepare() {
  local dir=$1 size=$2 engine=$3 csize=$4 rootfs
  [ -e "$dir/state" ] && die "$dir already holds a sandbox (stop it first)"
  rootfs=$(rootfs_of "$engine")
  # Before anything is made, so that nothing is left to clean up.
  if [ -n "$rootfs" ] && ! rootfs_fresh "$rootfs"; then
    die "the $rootfs root filesystem that $engine runs from is not built (run as root: scripts/sandbox.sh ensure-engines, or scripts/test.sh --engine $engine, which does)"
  fi
  STEP="creating $dir"
  mkdir -p "$dir"
  S_DIR=$dir
  S_ENGINE=$engine
  STEP="creating a network namespace"
  S_NAME=$(new_netns)
  STEP="writing the sandbox's state"
  if [ ${#dir} -le $MAX_DIR_LEN ]; then
    S_RUNDIR=$dir
  else
    S_RUNDIR=$(mktemp -d /tmp/pgsb.XXXXXXXX)
  fi
  S_SOCK=$S_RUNDIR/docker.sock
  S_ROOT=''
  [ -n "$rootfs" ] && S_ROOT=$dir/root
  case "$engine" in
    docker-20.10 | docker-28-containerd-ext) S_CSOCK=$S_RUNDIR/c/containerd.sock ;;
    # dockerd starts its own containerd, with its socket in the exec root.
    docker-28 | docker-28-containerd) S_CSOCK=$S_RUNDIR/exec/containerd/containerd.sock ;;
    podman-*)
      S_CSOCK=''
      S_SOCK=$S_RUNDIR/podman.sock
      ;;
  esac
  S_DISK=''
  S_CDISK=''
  [ -n "$size" ] && S_DISK=$dir/disk.img
  [ "$engine" = docker-28-containerd-ext ] && S_CDISK=$dir/ctr.img
  S_TLS=$TLS_ADDR
  state_write
  printf '%s\n' "$engine" >"$dir/engine"
  if [ -n "$S_TLS" ]; then
    # A copy in DIR: the chroot sees DIR at its own path (not PGSB_TLS_DIR), and the sandbox
    # does not depend on the caller's directory staying. Not the CA's key: no one signs here.
    STEP="copying the TLS certificates of $TLS_SRC to $dir/tls"
    mkdir -p "$dir/tls"
    cp -p "$TLS_SRC"/{ca,cert,key,server-cert,server-key}.pem "$dir/tls/"
  fi
  mkdir -p "$dir/data" "$S_RUNDIR/exec" "$S_RUNDIR/c" "$S_RUNDIR/run"
  if [ -n "$size" ]; then
    STEP="creating the ${size} MiB data root image"
    truncate -s "${size}M" "$S_DISK"
    STEP="formatting the data root image (mkfs.ext4)"
    mkfs.ext4 -q -F -m 0 -L pgsb "$S_DISK" >/dev/null
    STEP="loop-mounting the data root image"
    mount -o loop "$S_DISK" "$dir/data"
  fi
  local croot=$dir/data/containerd
  if [ -n "$S_CDISK" ]; then
    STEP="creating containerd's own ${csize} MiB filesystem"
    mkdir -p "$dir/ctr"
    truncate -s "${csize}M" "$S_CDISK"
    mkfs.ext4 -q -F -m 0 -L pgsb-ctr "$S_CDISK" >/dev/null
    mount -o loop "$S_CDISK" "$dir/ctr"
    croot=$dir/ctr/root
  fi
  if [ -n "$S_ROOT" ]; then
    STEP="mounting the $rootfs root filesystem for $engine at $S_ROOT"
    local binds=()
    [ "$S_RUNDIR" = "$dir" ] || binds+=("$S_RUNDIR")
    # A directory several sandboxes share (a swarm rig's bind-mount sources), seen by the
    # chrooted engine at the same path.
    if [ -n "${PGSB_SHARED_DIR:-}" ]; then
      [ -d "$PGSB_SHARED_DIR" ] || die "PGSB_SHARED_DIR=$PGSB_SHARED_DIR is not a directory"
      binds+=("$PGSB_SHARED_DIR")
    fi
    chroot_setup "$rootfs" "$S_ROOT" "$dir" "${binds[@]}"
  fi
  STEP="writing the engine's configuration"
  case "$engine" in
    docker-20.10 | docker-28-containerd-ext)
      mkdir -p "$croot"
      # Our own containerd (dockerd 20.10 would otherwise use the host's containerd whenever
      # /run/containerd/containerd.sock exists, mixing sandboxes in one containerd namespace).
      cat >"$dir/containerd.toml" <<EOF
version = 2
root = "$croot"
state = "$S_RUNDIR/c/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
oom_score = 0
[grpc]
  address = "$S_CSOCK"
[ttrpc]
  address = "$S_CSOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
      ;;
  esac
  case "$engine" in
    # deprecated-key-path keeps dockerd 20.10 from writing /etc/docker/key.json (no such flag).
    docker-20.10) printf '{\n  "deprecated-key-path": "%s/key.json"\n}\n' "$dir" >"$dir/daemon.json" ;;
    docker-28) printf '{\n  "features": {"containerd-snapshotter": false}\n}\n' >"$dir/daemon.json" ;;
    docker-28-containerd*) printf '{\n  "features": {"containerd-snapshotter": true}\n}\n' >"$dir/daemon.json" ;;
    podman-*) podman_config "$S_ROOT" "$dir/data" "$S_RUNDIR/run" "$engine" ;;
  esac
  printf '%s\n' "$(host_url)" >"$dir/host"
}

# Runs one of the engine's daemons, directly (the host's engine) or in the chroot, both in the
# sandbox's network namespace. It replaces the calling shell (exec; nsenter and chroot exec
# too): call it backgrounded, `run_engine … &`, so that $! is the daemon's own pid, which
# stop-daemon and stop kill.
run_engine() {
  if [ -n "$S_ROOT" ]; then
    in_chroot "$S_NAME" "$S_ROOT" "$@"
  else
    exec nsenter --net="/var/run/netns/$S_NAME" -- "$@"
  fi
}

daemon_name() {
  case "$S_ENGINE" in
    podman-*) echo podman ;;
    *) echo dockerd ;;
  esac
}

launch_containerd() {
  : >>"$S_DIR/containerd.log"
  run_engine containerd --config "$S_DIR/containerd.toml" \
    </dev/null >>"$S_DIR/containerd.log" 2>&1 &
  printf '%s\n' "$!" >"$S_DIR/containerd.pid"
}

launch_dockerd() {
  local args=(
    --config-file "$S_DIR/daemon.json"
    --data-root "$S_DIR/data"
    --exec-root "$S_RUNDIR/exec"
    --pidfile "$S_DIR/docker.pid"
    -H "unix://$S_SOCK"
    --shutdown-timeout 5
  )
  case "$S_ENGINE" in
    docker-20.10 | docker-28-containerd-ext) args+=(--containerd "$S_CSOCK") ;;
  esac
  [ -n "${PGSB_STORAGE_DRIVER:-}" ] && args+=(--storage-driver "$PGSB_STORAGE_DRIVER")
  if [ -n "$S_TLS" ]; then
    # Mutual TLS, as `dockerd --tlsverify` on a real host: only clients whose certificate the
    # CA signed get an answer.
    args+=(--tlsverify --tlscacert "$S_DIR/tls/ca.pem" --tlscert "$S_DIR/tls/server-cert.pem"
      --tlskey "$S_DIR/tls/server-key.pem" -H "tcp://$S_TLS")
  fi
  : >>"$S_DIR/dockerd.log"
  run_engine dockerd "${args[@]}" </dev/null >>"$S_DIR/dockerd.log" 2>&1 &
  printf '%s\n' "$!" >"$S_DIR/dockerd.pid"
}

launch_podman() {
  : >>"$S_DIR/podman.log"
  run_engine podman --log-level=info system service --time=0 "unix://$S_SOCK" \
    </dev/null >>"$S_DIR/podman.log" 2>&1 &
  printf '%s\n' "$!" >"$S_DIR/podman.pid"
}

wait_socket() {
  local sock=$1 pid=$2 what=$3 i
  for ((i = 0; i < 300; i++)); do
    [ -S "$sock" ] && return 0
    alive "$pid" || return 1
    sleep 0.1
  done
  say "$PROG: $what did not create $sock in 30 s"
  return 1
}

# The TLS listener answers the docker CLI that shows the client certificate, asked from inside
# the namespace (the address is one of its own). 0.0.0.0 is asked at 127.0.0.1, which every
# server certificate of scripts/tls-certs.sh names.
tls_answers() {
  local cli=$1 addr=$S_TLS
  case "$addr" in 0.0.0.0:*) addr=127.0.0.1:${addr#*:} ;; esac
  nsenter --net="/var/run/netns/$S_NAME" -- "$cli" --tlsverify --tlscacert "$S_DIR/tls/ca.pem" \
    --tlscert "$S_DIR/tls/cert.pem" --tlskey "$S_DIR/tls/key.pem" -H "tcp://$addr" \
    version --format '{{.Server.Version}}' >/dev/null 2>&1
}

wait_daemon() {
  local timeout=${PGSB_START_TIMEOUT:-60} cli pid start daemon unix=''
  daemon=$(daemon_name)
  STEP="waiting for $daemon to answer (engine $S_ENGINE)"
  cli=$(docker_cli)
  pid=$(cat "$S_DIR/$daemon.pid")
  start=$SECONDS
  while ((SECONDS - start < timeout)); do
    if [ -n "$unix" ] || "$cli" -H "unix://$S_SOCK" version --format '{{.Server.Version}}' >/dev/null 2>&1; then
      unix=1
      [ -z "$S_TLS" ] && return 0
      STEP="waiting for $daemon to answer over TLS at tcp://$S_TLS (engine $S_ENGINE)"
      tls_answers "$cli" && return 0
    fi
    if ! alive "$pid"; then
      say "$PROG: $daemon ($S_ENGINE) exited during start"
      return 1
    fi
    sleep 0.1
  done
  if [ -n "$unix" ]; then
    say "$PROG: $daemon ($S_ENGINE) answers on its socket but not over TLS at tcp://$S_TLS within ${timeout} s"
  else
    say "$PROG: $daemon ($S_ENGINE) did not answer within ${timeout} s"
  fi
  return 1
}

# The ERR trap of start and pair: say once which step failed and show the logs there are, then
# remove everything the start made (processes, mounts, loop device, namespace, files).
start_failed() {
  local dir=$1 failed=${2:-} shown='' log lines
  trap - ERR
  # A command substitution inherits the trap (set -E): only the top-level shell reports.
  if [ "${BASH_SUBSHELL:-0}" -gt 0 ]; then exit 1; fi
  # A function's `return 1` names no command worth showing; the step says it.
  case $failed in return*) failed='' ;; esac
  say "$PROG: sandbox in $dir failed to start while ${STEP:-preparing it}${failed:+ (the failing command: $failed)}."
  for log in containerd.log:5 dockerd.log:30 podman.log:30; do
    lines=${log#*:}
    log=${log%%:*}
    if [ -s "$dir/$log" ]; then
      say "--- last $lines lines of $dir/$log"
      tail -n "$lines" "$dir/$log" >&2
      shown=1
    fi
  done
  [ -n "$shown" ] || say "(no daemon had started yet, so there are no logs)"
  stop_sandbox "$dir" || true
  forget_partial "$dir"
  say "$PROG: removed what the failed start had made${S_NAME:+ (network namespace $S_NAME)}."
  exit 1
}

# What stop_sandbox cannot find when the start failed before its state file was written: the
# namespace, a mount of the data root and its loop device.
forget_partial() {
  local dir=$1 p
  if mountpoint -q "$dir/data" 2>/dev/null; then umount "$dir/data" 2>/dev/null || umount -l "$dir/data" || true; fi
  if [ -n "$S_DISK" ] && [ -e "$S_DISK" ]; then
    losetup -j "$S_DISK" 2>/dev/null | cut -d: -f1 | while read -r p; do
      if [ -n "$p" ]; then losetup -d "$p" 2>/dev/null || true; fi
    done
  fi
  if [ -n "$S_NAME" ] && [ -e "/var/run/netns/$S_NAME" ]; then
    ip netns del "$S_NAME" 2>/dev/null || say "$PROG: cannot delete netns $S_NAME"
  fi
  [ -n "$S_NAME" ] && rm -f "$REGISTRY/$S_NAME"
  if [ -d "$dir" ] && ! mountpoint -q "$dir/data" 2>/dev/null; then rm -rf --one-file-system "$dir" || true; fi
  if [ -n "$S_RUNDIR" ] && [ "$S_RUNDIR" != "$dir" ]; then rm -rf --one-file-system "$S_RUNDIR" || true; fi
}

launch_all() {
  case "$S_ENGINE" in
    docker-20.10 | docker-28-containerd-ext)
      STEP="starting containerd ($S_ENGINE)"
      launch_containerd
      wait_socket "$S_CSOCK" "$(cat "$S_DIR/containerd.pid")" containerd || return 1
      ;;
  esac
  case "$S_ENGINE" in
    podman-*)
      STEP="starting podman system service ($S_ENGINE)"
      launch_podman
      ;;
    *)
      STEP="starting dockerd ($S_ENGINE)"
      launch_dockerd
      ;;
  esac
}

# Options of start and pair: SIZE, CSIZE, ENGINE; and from the environment TLS_SRC and TLS_ADDR
# (the TLS listener, or both empty).
parse_opts() {
  SIZE=''
  CSIZE=${PGSB_CONTAINERD_ROOT_SIZE:-4096}
  ENGINE=${PRUNEGUARD_ENGINE:-docker-20.10}
  while [ $# -gt 0 ]; do
    case "$1" in
      --engine)
        [ $# -ge 2 ] || die "--engine needs a NAME ($(main_list_engines))"
        ENGINE=$2
        shift 2
        ;;
      --engine=*)
        ENGINE=${1#*=}
        shift
        ;;
      --containerd-root-size)
        [ $# -ge 2 ] || die "--containerd-root-size needs MB"
        CSIZE=$2
        shift 2
        ;;
      --containerd-root-size=*)
        CSIZE=${1#*=}
        shift
        ;;
      --data-root-size)
        [ $# -ge 2 ] || die "--data-root-size needs MB"
        SIZE=$2
        shift 2
        ;;
      --data-root-size=*)
        SIZE=${1#*=}
        shift
        ;;
      *) die "unknown option: $1" ;;
    esac
  done
  if [ -n "$SIZE" ]; then
    case "$SIZE" in
      '' | *[!0-9]*) die "--data-root-size wants a whole number of MiB, got: $SIZE" ;;
    esac
    [ "$SIZE" -ge 16 ] || die "--data-root-size must be at least 16 MiB"
  fi
  case "$CSIZE" in
    '' | *[!0-9]*) die "--containerd-root-size wants a whole number of MiB, got: $CSIZE" ;;
  esac
  [ "$CSIZE" -ge 16 ] || die "--containerd-root-size must be at least 16 MiB"
  rootfs_of "$ENGINE" >/dev/null
  TLS_SRC=${PGSB_TLS_DIR:-}
  TLS_ADDR=${PGSB_TLS_ADDR:-}
  [ -z "$TLS_SRC$TLS_ADDR" ] && return 0
  if [ -z "$TLS_SRC" ] || [ -z "$TLS_ADDR" ]; then
    die "a TLS listener needs both PGSB_TLS_DIR (certificates) and PGSB_TLS_ADDR (HOST:PORT)"
  fi
  case "$ENGINE" in podman-*) die "a TLS listener is for Docker engines, not $ENGINE" ;; esac
  [[ "$TLS_ADDR" =~ ^[^:/]+:[0-9]+$ ]] || die "PGSB_TLS_ADDR wants HOST:PORT, got: $TLS_ADDR"
  TLS_SRC=$(abspath "$TLS_SRC")
  local f
  for f in ca.pem cert.pem key.pem server-cert.pem server-key.pem; do
    [ -f "$TLS_SRC/$f" ] || die "PGSB_TLS_DIR has no $f: $TLS_SRC (write it with scripts/tls-certs.sh)"
  done
}

main_list_engines() { printf '%s ' "${ENGINES[@]}"; }

cmd_start() {
  need_root
  [ $# -ge 1 ] || die "usage: $0 start DIR [--engine NAME] [--data-root-size MB]"
  local dir
  dir=$(abspath "$1")
  shift
  parse_opts "$@"
  trap 'start_failed "$dir" "$BASH_COMMAND"' ERR
  prepare "$dir" "$SIZE" "$ENGINE" "$CSIZE"
  launch_all
  wait_daemon
  trap - ERR
  host_url
}

cmd_pair() {
  need_root
  [ $# -ge 2 ] || die "usage: $0 pair DIR1 DIR2 [--engine NAME] [--data-root-size MB]"
  local d1 d2 n1 n2 h1 h2
  d1=$(abspath "$1")
  d2=$(abspath "$2")
  shift 2
  [ "$d1" != "$d2" ] || die "pair needs two different directories"
  parse_opts "$@"
  case "$ENGINE" in podman-*) die "pair is for Docker engines (swarm); $ENGINE has no swarm" ;; esac
  trap 'failed_command=$BASH_COMMAND; stop_sandbox "$d1" || true; start_failed "$d2" "$failed_command"' ERR
  prepare "$d1" "$SIZE" "$ENGINE" "$CSIZE"
  n1=$S_NAME
  prepare "$d2" "$SIZE" "$ENGINE" "$CSIZE"
  n2=$S_NAME
  # The veth pair is created directly inside the two namespaces: it never exists on the host.
  STEP="linking the two namespaces (veth $VETH)"
  ip link add "$VETH" netns "$n1" type veth peer name "$VETH" netns "$n2"
  ip -n "$n1" addr add "$PAIR_NET.1/24" dev "$VETH"
  ip -n "$n2" addr add "$PAIR_NET.2/24" dev "$VETH"
  ip -n "$n1" link set "$VETH" up
  ip -n "$n2" link set "$VETH" up
  printf '%s\n' "$PAIR_NET.1" >"$d1/addr"
  printf '%s\n' "$PAIR_NET.2" >"$d2/addr"
  state_load "$d1"
  launch_all
  state_load "$d2"
  launch_all
  state_load "$d1"
  wait_daemon
  h1=$(host_url)
  state_load "$d2"
  wait_daemon
  h2=$(host_url)
  trap - ERR
  printf '%s\n%s\n' "$h1" "$h2"
}

cmd_host() {
  [ $# -eq 1 ] || die "usage: $0 host DIR"
  state_load "$(abspath "$1")" || die "no sandbox in $1"
  host_url
}

# ---------------------------------------------------------------------------------------------
# stop

# Stops the engine's API daemon (dockerd or podman system service).
stop_dockerd() {
  local cli pid ids daemon
  daemon=$(daemon_name)
  pid=''
  [ -f "$S_DIR/$daemon.pid" ] && pid=$(cat "$S_DIR/$daemon.pid" 2>/dev/null || true)
  alive "$pid" || return 0
  cli=$(docker_cli)
  # Kill running containers first: dockerd would give each its stop timeout on shutdown, and
  # `sleep` as PID 1 ignores SIGTERM. (Podman's containers outlive its service: conmon runs
  # on its own; stop_sandbox kills what is left.)
  if [ -S "$S_SOCK" ]; then
    ids=$(timeout 10 "$cli" -H "unix://$S_SOCK" ps -q 2>/dev/null || true)
    if [ -n "$ids" ]; then
      # shellcheck disable=SC2086 # word splitting of the id list is wanted
      timeout 20 "$cli" -H "unix://$S_SOCK" kill $ids >/dev/null 2>&1 || true
    fi
  fi
  kill_wait "$pid" 100
  rm -f "$S_SOCK"
}

stop_sandbox() {
  local dir=$1 p id pid
  state_load "$dir" || return 0
  stop_dockerd
  pid=''
  [ -f "$S_DIR/containerd.pid" ] && pid=$(cat "$S_DIR/containerd.pid" 2>/dev/null || true)
  # With dockerd gone nothing is left for containerd to do, and its graceful exit takes 2 s.
  kill_wait "$pid" 3
  # Anything still running that belongs to this sandbox: shims (their -address is our
  # containerd socket) with the container processes below them, a dockerd that lost its
  # pidfile, docker-proxy and the like.
  for p in $(pids_matching "$S_CSOCK" "$S_RUNDIR/exec" "$S_DIR/containerd.toml" "$S_DIR/registry/config.yml" \
    ${S_ROOT:+"$S_DIR/" "$S_RUNDIR/"}); do
    kill_tree "$p"
  done
  # Engines in a chroot: every process whose root is in the sandbox (the daemons, conmon, and
  # the containers, whose roots are below the data root).
  if [ -n "$S_ROOT" ]; then
    for p in $(pids_rooted_under "$S_DIR" "$S_RUNDIR"); do
      kill_tree "$p"
    done
  fi
  # Empty cgroups of this sandbox's containers (cgroup v1 and v2 layouts).
  if [ -d "$S_DIR/data/containers" ]; then
    for id in "$S_DIR"/data/containers/*; do
      id=${id##*/}
      [ ${#id} -eq 64 ] || continue
      for p in /sys/fs/cgroup/*/docker/"$id" /sys/fs/cgroup/docker/"$id" \
        /sys/fs/cgroup/system.slice/docker-"$id".scope; do
        if [ -d "$p" ]; then rmdir "$p" 2>/dev/null || true; fi
      done
    done
  fi
  if [ -d "$S_DIR/data/overlay-containers" ]; then
    for id in "$S_DIR"/data/overlay-containers/*; do
      id=${id##*/}
      [ ${#id} -eq 64 ] || continue
      for p in /sys/fs/cgroup/*/libpod_parent/libpod-"$id"/* /sys/fs/cgroup/*/libpod_parent/libpod-"$id" \
        /sys/fs/cgroup/*/libpod_parent/conmon-"$id" /sys/fs/cgroup/libpod_parent/libpod-"$id"; do
        if [ -d "$p" ]; then rmdir "$p" 2>/dev/null || true; fi
      done
    done
  fi
  unmount_under "$S_DIR" "$S_RUNDIR"
  for p in "$S_DISK" "$S_CDISK"; do
    [ -n "$p" ] || continue
    losetup -j "$p" 2>/dev/null | cut -d: -f1 | while read -r p; do
      if [ -n "$p" ]; then losetup -d "$p" 2>/dev/null || true; fi
    done
  done
  if [ -e "/var/run/netns/$S_NAME" ]; then
    ip -n "$S_NAME" link del "$VETH" 2>/dev/null || true
    ip netns del "$S_NAME" 2>/dev/null || say "$PROG: cannot delete netns $S_NAME"
  fi
  rm -rf --one-file-system "$S_DIR" 2>/dev/null || rm -rf --one-file-system "$S_DIR" || true
  if [ "$S_RUNDIR" != "$S_DIR" ] && [ -n "$S_RUNDIR" ]; then
    rm -rf --one-file-system "$S_RUNDIR" || true
  fi
  rm -f "$REGISTRY/$S_NAME"
}

cmd_stop() {
  [ $# -eq 1 ] || die "usage: $0 stop DIR"
  need_root
  stop_sandbox "$(abspath "$1")"
}

cmd_stop_daemon() {
  [ $# -eq 1 ] || die "usage: $0 stop-daemon DIR"
  need_root
  state_load "$(abspath "$1")" || die "no sandbox in $1"
  stop_dockerd
}

cmd_start_daemon() {
  [ $# -eq 1 ] || die "usage: $0 start-daemon DIR"
  need_root
  local dir pid
  dir=$(abspath "$1")
  state_load "$dir" || die "no sandbox in $1"
  pid=$(cat "$S_DIR/$(daemon_name).pid" 2>/dev/null || true)
  alive "$pid" && die "$(daemon_name) of $dir is running"
  case "$S_ENGINE" in
    docker-20.10 | docker-28-containerd-ext)
      pid=$(cat "$S_DIR/containerd.pid" 2>/dev/null || true)
      if ! alive "$pid"; then
        launch_containerd
        wait_socket "$S_CSOCK" "$(cat "$S_DIR/containerd.pid")" containerd || exit 1
      fi
      ;;
  esac
  case "$S_ENGINE" in
    podman-*) launch_podman ;;
    *) launch_dockerd ;;
  esac
  if ! wait_daemon; then
    tail -n 30 "$S_DIR/$(daemon_name).log" >&2
    exit 1
  fi
  host_url
}

cmd_list() {
  local f
  [ -d "$REGISTRY" ] || return 0
  for f in "$REGISTRY"/*; do
    [ -f "$f" ] || continue
    state_read_file "$f" && printf '%s %s\n' "$S_NAME" "$S_DIR"
  done
}

cmd_cleanup_under() {
  [ $# -eq 1 ] || die "usage: $0 cleanup-under PREFIX"
  need_root
  local prefix f dirs=() d p
  prefix=$(abspath "$1")
  prefix=${prefix%/}
  [ -n "$prefix" ] || die "refusing to clean up under /"
  if [ -d "$REGISTRY" ]; then
    for f in "$REGISTRY"/*; do
      [ -f "$f" ] || continue
      state_read_file "$f" || continue
      case "$S_DIR" in
        "$prefix"/*) dirs+=("$S_DIR") ;;
      esac
    done
  fi
  # Sandboxes whose registry entry is gone but whose DIR is still there.
  while read -r f; do
    state_read_file "$f" || continue
    if [ "$S_DIR/state" = "$f" ]; then dirs+=("$S_DIR"); fi
  done < <(find "$prefix" -maxdepth 8 -type f -name state 2>/dev/null || true)
  for d in $(printf '%s\n' "${dirs[@]}" | sort -u); do
    say "$PROG: cleaning up stray sandbox $d"
    stop_sandbox "$d" || true
  done
  # Daemons started from a sandbox whose state is gone: only processes whose command line
  # names a path under PREFIX, i.e. that this run started.
  for p in $(pids_matching "$prefix/") $(pids_rooted_under "$prefix"); do
    say "$PROG: killing stray $(cat "/proc/$p/comm" 2>/dev/null || true) $p"
    kill_tree "$p"
  done
  unmount_under "$prefix"
}

main() {
  [ $# -ge 1 ] || die "usage: $0 start|pair|stop|stop-daemon|start-daemon|host|list|cleanup-under|ensure-installed|ensure-engines|engine ..."
  local cmd=$1
  shift
  case "$cmd" in
    start) cmd_start "$@" ;;
    pair) cmd_pair "$@" ;;
    stop) cmd_stop "$@" ;;
    stop-daemon) cmd_stop_daemon "$@" ;;
    start-daemon) cmd_start_daemon "$@" ;;
    host) cmd_host "$@" ;;
    list) cmd_list "$@" ;;
    cleanup-under) cmd_cleanup_under "$@" ;;
    ensure-installed) cmd_ensure_installed "$@" ;;
    ensure-engines) cmd_ensure_engines "$@" ;;
    engine)
      [ $# -eq 1 ] || die "usage: $0 engine DIR"
      state_load "$(abspath "$1")" || die "no sandbox in $1"
      printf '%s\n' "$S_ENGINE"
      ;;
    -h | --help | help) sed -n '2,/^set -Eeuo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' ;;
    *) die "unknown command: $cmd" ;;
  esac
}

main "$@"
