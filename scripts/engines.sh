#!/usr/bin/env bash
# Root filesystems for the engines pruneguard is tested against (issue 10), made with
# debootstrap and cached per machine, so a rerun costs seconds.
#
# Usage (as root):
#   scripts/engines.sh ensure ROOTFS...   build the named root filesystems if missing (or stale)
#   scripts/engines.sh ensure-all         every root filesystem some engine target needs
#   scripts/engines.sh path ROOTFS        print the cached directory (after ensure)
#   scripts/engines.sh rootfs-of ENGINE   the root filesystem an engine target runs from ("" = host)
#   scripts/engines.sh list               the engine targets, one a line
#
# Root filesystems (debootstrap --variant=minbase, Debian mirror $PRUNEGUARD_DEBIAN_MIRROR,
# default http://deb.debian.org/debian):
#   sid       Debian's development distribution: docker.io (dockerd 28), containerd 2, runc,
#             podman 5, conmon, netavark, aardvark-dns, iptables
#   bookworm  Debian 12: podman 4.3.1, runc, conmon, netavark, aardvark-dns, iptables
# Each is kept extracted in $PRUNEGUARD_CI_CACHE/rootfs/NAME (default /var/cache/pruneguard-ci)
# with a stamp NAME.stamp holding what it was made from; sandboxes use it read-only, as the
# lower layer of a private overlayfs. A changed package list rebuilds it.
set -Eeuo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
PROG=${PROG:-engines.sh}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CACHE=${PRUNEGUARD_CI_CACHE:-/var/cache/pruneguard-ci}
MIRROR=${PRUNEGUARD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
ENGINES=(docker-20.10 docker-28 docker-28-containerd docker-28-containerd-ext podman-5 podman-4.3)

rootfs_suite() {
  case "$1" in
    sid) echo sid ;;
    bookworm) echo bookworm ;;
    *) die "unknown root filesystem: $1 (known: sid bookworm)" ;;
  esac
}

rootfs_packages() {
  case "$1" in
    sid) echo docker.io,containerd,runc,iptables,ca-certificates,podman,conmon,netavark,aardvark-dns,golang-github-containers-common ;;
    bookworm) echo podman,runc,conmon,netavark,aardvark-dns,iptables,ca-certificates,golang-github-containers-common ;;
  esac
}

rootfs_of() {
  case "$1" in
    docker-20.10) echo '' ;;
    docker-28 | docker-28-containerd | docker-28-containerd-ext | podman-5) echo sid ;;
    podman-4.3) echo bookworm ;;
    *) die "unknown engine: $1 (known: ${ENGINES[*]})" ;;
  esac
}

stamp_text() { printf 'suite=%s\npackages=%s\nvariant=minbase\n' "$(rootfs_suite "$1")" "$(rootfs_packages "$1")"; }

rootfs_fresh() {
  local dir=$CACHE/rootfs/$1
  [ -d "$dir/usr" ] && [ -f "$CACHE/rootfs/$1.stamp" ] &&
    [ "$(cat "$CACHE/rootfs/$1.stamp")" = "$(stamp_text "$1")" ]
}

# debootstrap NAME into a temporary dir next to the cache, then rename it into place: a killed
# run never leaves a half-made root filesystem that looks finished.
ensure_one() {
  local name=$1 dir tmp log start
  dir=$CACHE/rootfs/$name
  rootfs_fresh "$name" && return 0
  command -v debootstrap >/dev/null 2>&1 || {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap >/dev/null
  }
  mkdir -p "$CACHE/rootfs"
  tmp=$(mktemp -d "$CACHE/rootfs/.$name.XXXXXX")
  log=$tmp.log
  start=$SECONDS
  say "$PROG: debootstrap $(rootfs_suite "$name") into $dir (once per machine; a few minutes)"
  # A private mount namespace: the /proc and /sys that debootstrap mounts vanish with it.
  if ! unshare --mount --propagation private \
    debootstrap --variant=minbase --include="$(rootfs_packages "$name")" \
    "$(rootfs_suite "$name")" "$tmp" "$MIRROR" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    rm -rf --one-file-system "$tmp"
    die "debootstrap of $name failed (log above; mirror $MIRROR)"
  fi
  # Nothing of the engines starts on its own in a chroot, but keep apt from trying later.
  rm -rf "$tmp/var/cache/apt/archives/"*.deb
  rm -rf --one-file-system "$dir"
  mv "$tmp" "$dir"
  stamp_text "$name" >"$dir.stamp"
  rm -f "$log"
  say "$PROG: $name ready in $((SECONDS - start)) s"
}

# ---------------------------------------------------------------------------------------------
# Running an engine from a cached root filesystem (used by sandbox.sh, which sources this file)

# chroot_setup ROOTFS ROOT DIR [MORE_DIRS...]: a private overlayfs of the cached ROOTFS at ROOT
# (so that the chroot's / is a mount point, and sandboxes never share writes), with proc, sys
# (and the cgroup hierarchies below it), dev (a private /dev/shm: Podman's locks live there)
# and DIR and MORE_DIRS bound at their own paths, so that a socket or data root path means the
# same inside and outside. Every mount is private or a slave: nothing a daemon mounts inside
# shows up elsewhere. Never the host's /run/netns.
chroot_setup() {
  local name=$1 root=$2 dir=$3 lower d
  shift 3
  lower=$CACHE/rootfs/$name
  if ! rootfs_fresh "$name"; then
    say "$PROG: the $name root filesystem is not built (run: scripts/sandbox.sh ensure-engines)"
    return 1
  fi
  mkdir -p "$dir/ovl/upper" "$dir/ovl/work" "$root"
  mount -t overlay pgsb-root -o "lowerdir=$lower,upperdir=$dir/ovl/upper,workdir=$dir/ovl/work" "$root"
  mount --make-private "$root"
  mount -t proc proc "$root/proc"
  mount --rbind /sys "$root/sys"
  mount --make-rslave "$root/sys"
  mount --rbind /dev "$root/dev"
  mount --make-rslave "$root/dev"
  mount -t tmpfs -o mode=1777,size=64m shm "$root/dev/shm"
  for d in "$dir" "$@"; do
    [ -n "$d" ] || continue
    mkdir -p "$root$d"
    mount --bind "$d" "$root$d"
    mount --make-private "$root$d"
    # A loop-mounted data root (or containerd root) below it is a mount of its own.
    if mountpoint -q "$d/data"; then
      mount --bind "$d/data" "$root$d/data"
      mount --make-private "$root$d/data"
    fi
    if mountpoint -q "$d/ctr"; then
      mount --bind "$d/ctr" "$root$d/ctr"
      mount --make-private "$root$d/ctr"
    fi
  done
}

# Replaces the calling shell with a program in the sandbox's network namespace and chroot, with
# a clean environment: call it backgrounded (`in_chroot … &`), so that $! is the program's pid.
# nsenter --net, not `ip netns exec` (which remounts /sys and hides the cgroup hierarchies).
in_chroot() {
  local netns=$1 root=$2
  shift 2
  exec nsenter --net="/var/run/netns/$netns" -- chroot "$root" /usr/bin/env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}

# Podman's configuration inside ROOT (the chroot's own /etc/containers, private to the sandbox).
podman_config() {
  local root=$1 graph=$2 run=$3 engine=$4 hard nproc firewall=''
  hard=$(ulimit -Hn)
  [ "$hard" = unlimited ] && hard=1048576
  nproc=$(ulimit -Hu)
  if [ "$nproc" = unlimited ] || [ "$nproc" -gt 4096 ]; then nproc=4096; fi
  # netavark 1.17 defaults to nftables (no nft in the root filesystem); 1.4 knows iptables only.
  [ "$engine" = podman-5 ] && firewall='firewall_driver = "iptables"' 
  mkdir -p "$root/etc/containers" "$run/net"
  # runc, not crun (this kernel's hybrid cgroup layout breaks crun); events in a file (no
  # journald here); cgroupfs (no systemd); nofile and nproc limits the machine's hard limits
# allow (Podman's defaults are above them, and runc then fails with "error setting rlimit"; this
# machine lacks CAP_SYS_RESOURCE; Podman 4.3's runc 1.1.5 also failed with nproc at or near
# half of the hard limit, not with 4096).
  cat >"$root/etc/containers/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$((hard / 2)):$((hard / 2))", "nproc=$nproc:$nproc"]
log_driver = "k8s-file"
[engine]
runtime = "runc"
events_logger = "file"
cgroup_manager = "cgroupfs"
[network]
network_backend = "netavark"
network_config_dir = "$run/net"
$firewall
CONF
  cat >"$root/etc/containers/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$graph"
runroot = "$run/storage"
CONF
  # Short names never reach the internet: no search registries; the tests' local registry
  # (scripts/registry.sh, 127.0.0.1:5000 in the sandbox's namespace) speaks plain HTTP.
  cat >"$root/etc/containers/registries.conf" <<CONF
unqualified-search-registries = []
short-name-mode = "permissive"
[[registry]]
location = "127.0.0.1:5000"
insecure = true
[[registry]]
location = "localhost:5000"
insecure = true
CONF
}

main() {
  [ $# -ge 1 ] || die "usage: $0 ensure ROOTFS...|ensure-all|path ROOTFS|rootfs-of ENGINE|list"
  local cmd=$1 r
  shift
  case "$cmd" in
    ensure)
      [ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap)"
      for r in "$@"; do ensure_one "$r"; done
      ;;
    ensure-all)
      [ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap)"
      ensure_one sid
      ensure_one bookworm
      ;;
    path)
      [ $# -eq 1 ] || die "usage: $0 path ROOTFS"
      rootfs_suite "$1" >/dev/null
      printf '%s\n' "$CACHE/rootfs/$1"
      ;;
    rootfs-of)
      [ $# -eq 1 ] || die "usage: $0 rootfs-of ENGINE"
      rootfs_of "$1"
      ;;
    list) printf '%s\n' "${ENGINES[@]}" ;;
    -h | --help | help) sed -n '2,/^set -Eeuo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' ;;
    *) die "unknown command: $cmd" ;;
  esac
}

# Sourced by sandbox.sh: functions only.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
