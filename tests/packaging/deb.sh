#!/usr/bin/env bash
# The Debian package, installed for real: run by tests/packaging.rs (and runnable by hand, as
# root):
#
#   bash tests/packaging/deb.sh
#
# 1. Builds the .deb (scripts/build-deb.sh: cargo-deb, pinned; a release build).
# 2. Unpacks a fresh Debian 12 root filesystem (debootstrap --variant=minbase, plus systemd for
#    systemd-analyze and deb-systemd-helper). debootstrap runs once; its result is cached as a
#    tarball in $PRUNEGUARD_CI_CACHE (default /var/cache/pruneguard-ci), so a rerun unpacks it
#    in seconds. Every run gets its own copy, deleted at the end.
# 3. In a private mount namespace (every mount disappears with it, also when a step fails; the
#    exit trap unmounts too): the root bind-mounted onto itself (so that / is a mount point),
#    a fresh /proc, a tmpfs /dev holding only the usual character devices and
#    a new devpts instance, a tmpfs /run (the
#    host's /run, /run/netns included, is never visible). Then, chrooted:
#    apt-get install --no-install-recommends ./pruneguard_*.deb (docker.io is only recommended); pruneguard --version; pruneguard config --check on the
#    shipped /etc/pruneguard/config.toml (and on it with every key uncommented: the example
#    names every key `pruneguard config` prints); pruneguard doctor (no daemon there: it must
#    run and report every check, and fail only the daemon check); man page and completions in
#    place; the units installed but not enabled; `systemd-analyze verify` of the installed
#    units; then apt-get remove (the conffile stays) and apt-get purge (nothing of pruneguard
#    left, not even a timer enabled by hand in between).
#
# Needs root, debootstrap and zstd (installed with apt-get when missing), cargo. Prints every
# check; exits non-zero if any fails.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)

# ok, fail, indent and the passed/failed counts.
# shellcheck source=lib.sh
. "$here/lib.sh"
summary() {
  echo "== deb checks: $passed ok, $failed failing"
  [ "$failed" -eq 0 ]
}

# ------------------------------------------------------------------------------------------
# Inside the private mount namespace: `deb.sh --in-namespace ROOTFS DEB`.

# Runs a command in the chroot with a clean environment.
in_root() {
  chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "$@"
}

mounted=()
# shellcheck disable=SC2317 # invoked by the trap
unmount_all() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" 2>/dev/null || true
  done
  mounted=()
}
mount_at() {
  local target=${*: -1}
  mount "$@" && mounted+=("$target")
}

in_namespace() {
  rootfs=$1
  local deb=$2
  trap unmount_all EXIT

  # chroot's / as a mount point (apt, systemd and findmnt expect one), then what a system has.
  mount_at --bind "$rootfs" "$rootfs" || { fail "bind-mount the root onto itself"; return; }
  mount_at -t proc proc "$rootfs/proc" || { fail "mount /proc"; return; }
  mount_at -t tmpfs -o mode=0755,nosuid devtmp "$rootfs/dev" || { fail "mount /dev"; return; }
  mknod -m 0666 "$rootfs/dev/null" c 1 3
  mknod -m 0666 "$rootfs/dev/zero" c 1 5
  mknod -m 0666 "$rootfs/dev/full" c 1 7
  mknod -m 0666 "$rootfs/dev/random" c 1 8
  mknod -m 0666 "$rootfs/dev/urandom" c 1 9
  ln -s /proc/self/fd "$rootfs/dev/fd"
  # A private devpts instance (apt's terminal log wants one), never the host's ptys.
  mkdir -p "$rootfs/dev/pts"
  mount_at -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$rootfs/dev/pts" ||
    { fail "mount /dev/pts"; return; }
  ln -s pts/ptmx "$rootfs/dev/ptmx"
  mount_at -t tmpfs -o mode=0755,nosuid,nodev runtmp "$rootfs/run" || { fail "mount /run"; return; }
  ok "fresh Debian 12 root: $(cat "$rootfs/etc/debian_version"), / a mount point, own /proc, /dev, /dev/pts, /run"

  cp "$deb" "$rootfs/tmp/" || { fail "copy the .deb into the root"; return; }
  local pkg
  pkg=/tmp/$(basename "$deb")

  echo "== install"
  if out=$(in_root apt-get install -y -q --no-install-recommends "$pkg" 2>&1); then
    ok "apt-get install ./$(basename "$deb")"
  else
    fail "apt-get install ./$(basename "$deb")"
    echo "$out" | tail -n 20 | indent
    return
  fi

  local version
  version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -n 1)
  if out=$(in_root pruneguard --version 2>&1) && [ "$out" = "pruneguard $version" ]; then
    ok "pruneguard --version: $out"
  else
    fail "pruneguard --version: expected 'pruneguard $version', got: $out"
  fi

  for f in /usr/bin/pruneguard /usr/share/man/man1/pruneguard.1.gz \
    /usr/share/bash-completion/completions/pruneguard /usr/share/zsh/vendor-completions/_pruneguard \
    /usr/share/fish/vendor_completions.d/pruneguard.fish /etc/pruneguard/config.toml \
    /usr/lib/systemd/system/pruneguard.service /usr/lib/systemd/system/pruneguard.timer; do
    if [ -s "$rootfs$f" ]; then ok "installed: $f"; else fail "not installed: $f"; fi
  done
  if zcat "$rootfs/usr/share/man/man1/pruneguard.1.gz" | grep -q '^\.TH pruneguard 1'; then
    ok "man page: a roff page for pruneguard(1)"
  else
    fail "man page: no .TH pruneguard 1 header"
  fi
  if grep -qx '/etc/pruneguard/config.toml' "$rootfs/var/lib/dpkg/info/pruneguard.conffiles" 2>/dev/null; then
    ok "/etc/pruneguard/config.toml is a conffile"
  else
    fail "/etc/pruneguard/config.toml is not listed in pruneguard.conffiles"
  fi

  echo "== the shipped config"
  if out=$(in_root pruneguard config --check 2>&1) && [ "$out" = "/etc/pruneguard/config.toml is valid" ]; then
    ok "pruneguard config --check (the shipped example, read from the default path): $out"
  else
    fail "pruneguard config --check on the shipped example: $out"
  fi
  sed -E 's/^# ([a-z_]+ = )/\1/' "$rootfs/etc/pruneguard/config.toml" >"$rootfs/tmp/uncommented.toml"
  if out=$(in_root pruneguard config --check --config /tmp/uncommented.toml 2>&1); then
    ok "the example with every key uncommented is valid"
  else
    fail "the example with every key uncommented: $out"
  fi
  local example_keys effective_keys
  example_keys=$(sed -nE 's/^([a-z_]+) = .*/\1/p' "$rootfs/tmp/uncommented.toml" | sort)
  effective_keys=$(in_root pruneguard config --no-config |
    sed -nE 's/^([a-z_]+) = .*/\1/p; s/^# ([a-z_]+) is not set.*/\1/p' | sort)
  if [ -n "$example_keys" ] && [ "$example_keys" = "$effective_keys" ]; then
    ok "the example names every key pruneguard config prints ($(wc -l <<<"$example_keys") keys)"
  else
    fail "the example's keys differ from pruneguard config's"
    diff <(echo "$example_keys") <(echo "$effective_keys") | indent
  fi

  echo "== pruneguard doctor (no Docker daemon in this root)"
  local rc
  out=$(in_root pruneguard doctor 2>&1)
  rc=$?
  if [ "$rc" -eq 1 ] && grep -q '^fail  daemon ' <<<"$out" &&
    [ "$(grep -c '^fail ' <<<"$out")" -eq 1 ] && grep -q '^ok    config ' <<<"$out" &&
    grep -q '^ok    prune_timers ' <<<"$out"; then
    ok "pruneguard doctor runs and reports: only the daemon check fails (exit 1), the config check passes"
  else
    fail "pruneguard doctor (exit $rc): expected exit 1 with only the daemon check failing"
    echo "$out" | indent
  fi

  echo "== units: installed, not enabled, verified"
  if out=$(in_root systemctl is-enabled pruneguard.timer 2>&1); [ "$out" = disabled ]; then
    ok "pruneguard.timer is installed but not enabled (is-enabled: disabled)"
  else
    fail "pruneguard.timer after install: is-enabled says '$out', expected 'disabled'"
  fi
  # pruneguard.service requires docker.service, which this root does not have: stand-ins,
  # removed again before the removal checks.
  printf '[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n' \
    >"$rootfs/etc/systemd/system/docker.service"
  printf '[Unit]\nDescription=stand-in\n[Socket]\nListenStream=/run/docker.sock\n' \
    >"$rootfs/etc/systemd/system/docker.socket"
  if out=$(in_root systemd-analyze verify --man=no \
    /usr/lib/systemd/system/pruneguard.service /usr/lib/systemd/system/pruneguard.timer 2>&1) &&
    ! grep -q 'pruneguard\.' <<<"$out"; then
    ok "systemd-analyze verify: the installed pruneguard.service + pruneguard.timer"
  else
    fail "systemd-analyze verify of the installed units"
    echo "$out" | indent
  fi
  rm -f "$rootfs/etc/systemd/system/docker.service" "$rootfs/etc/systemd/system/docker.socket"
  if grep -qx 'ExecStart=/usr/bin/pruneguard run' "$rootfs/usr/lib/systemd/system/pruneguard.service"; then
    ok "the installed service runs /usr/bin/pruneguard run"
  else
    fail "the installed service's ExecStart is not /usr/bin/pruneguard run"
  fi

  echo "== remove and purge"
  # As an operator would: enable the timer by hand, so that purge has something to clean up.
  if in_root systemctl enable pruneguard.timer >/dev/null 2>&1 &&
    [ -L "$rootfs/etc/systemd/system/timers.target.wants/pruneguard.timer" ]; then
    ok "systemctl enable pruneguard.timer by hand (a symlink for purge to clean up)"
  else
    fail "systemctl enable pruneguard.timer in the root"
  fi
  if out=$(in_root apt-get remove -y -q pruneguard 2>&1); then
    ok "apt-get remove pruneguard"
  else
    fail "apt-get remove pruneguard"
    echo "$out" | tail -n 20 | indent
  fi
  if [ ! -e "$rootfs/usr/bin/pruneguard" ] && [ ! -e "$rootfs/usr/lib/systemd/system/pruneguard.timer" ] &&
    [ -f "$rootfs/etc/pruneguard/config.toml" ] &&
    in_root dpkg-query -W -f '${Status}' pruneguard 2>/dev/null | grep -qx 'deinstall ok config-files'; then
    ok "after remove: binary and units gone, the conffile kept (config-files)"
  else
    fail "after remove: expected binary and units gone and /etc/pruneguard/config.toml kept"
  fi
  if out=$(in_root apt-get purge -y -q pruneguard 2>&1); then
    ok "apt-get purge pruneguard"
  else
    fail "apt-get purge pruneguard"
    echo "$out" | tail -n 20 | indent
  fi
  local left
  left=$(cd "$rootfs" && find . -xdev -path ./tmp -prune -o -path ./proc -prune -o \
    -name '*pruneguard*' -print 2>/dev/null)
  if [ -z "$left" ] && ! in_root dpkg-query -W pruneguard >/dev/null 2>&1; then
    ok "after purge: dpkg knows no pruneguard, and no file named *pruneguard* is left (state, conffile, timer symlink)"
  else
    fail "after purge, left behind:"
    echo "$left" | indent
  fi

  unmount_all
  trap - EXIT
}

if [ "${1:-}" = --in-namespace ]; then
  in_namespace "$2" "$3"
  summary
  exit
fi

# ------------------------------------------------------------------------------------------
# Outside: tools, the .deb, the cached root filesystem.

if [ "$(id -u)" -ne 0 ]; then
  echo "FAILED  deb.sh must run as root (debootstrap, chroot, mounts)"
  exit 2
fi
start=$SECONDS

missing=()
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== apt-get install ${missing[*]}"
  if ! out=$( (apt-get update -qq && apt-get install -y -qq "${missing[@]}") 2>&1 </dev/null); then
    fail "apt-get install ${missing[*]}"
    echo "$out" | tail -n 20 | indent
    summary
    exit
  fi
fi

echo "== build the .deb (scripts/build-deb.sh)"
if deb=$(bash "$repo/scripts/build-deb.sh" 2>"${TMPDIR:-/tmp}/pruneguard-build-deb.log") && [ -f "$deb" ]; then
  ok "built $(basename "$deb") ($((SECONDS - start))s so far)"
else
  fail "scripts/build-deb.sh"
  tail -n 30 "${TMPDIR:-/tmp}/pruneguard-build-deb.log" | indent
  summary
  exit
fi

cache=${PRUNEGUARD_CI_CACHE:-/var/cache/pruneguard-ci}
tarball=$cache/debian12-minbase-systemd.tar.zst
mirror=${PRUNEGUARD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d "${TMPDIR:-/tmp}/pruneguard-deb.XXXXXX") || exit 2
# shellcheck disable=SC2317 # invoked by the trap
cleanup() { rm -rf --one-file-system "$work"; }
trap cleanup EXIT

if [ ! -s "$tarball" ]; then
  echo "== debootstrap --variant=minbase --include=systemd bookworm (once; cached in $tarball)"
  mkdir -p "$cache"
  # In a private mount namespace too: the /proc and /sys debootstrap mounts vanish with it.
  if unshare --mount --propagation private \
    debootstrap --variant=minbase --include=systemd bookworm "$work/bootstrap" "$mirror" \
    >"$work/debootstrap.log" 2>&1 &&
    tar -C "$work/bootstrap" --numeric-owner -cf - . | zstd -q -T0 -3 >"$tarball.tmp" &&
    mv "$tarball.tmp" "$tarball"; then
    ok "debootstrap bookworm minbase, cached ($((SECONDS - start))s so far)"
  else
    rm -f "$tarball.tmp"
    fail "debootstrap bookworm into $work/bootstrap (mirror $mirror)"
    tail -n 30 "$work/debootstrap.log" | indent
    summary
    exit
  fi
  rm -rf --one-file-system "$work/bootstrap"
fi

mkdir -p "$work/root"
if zstd -q -dc "$tarball" | tar -C "$work/root" --numeric-owner -xf -; then
  ok "unpacked the cached root filesystem ($((SECONDS - start))s so far)"
else
  fail "unpack $tarball (delete it to bootstrap again)"
  summary
  exit
fi

# The namespace's summary line is replaced by this run's total.
unshare --mount --propagation private bash "${BASH_SOURCE[0]}" --in-namespace "$work/root" "$deb" |
  grep -v '^== deb checks:' >"$work/inner.out"
cat "$work/inner.out"
passed=$((passed + $(grep -c '^ok  ' "$work/inner.out")))
failed=$((failed + $(grep -c '^FAILED' "$work/inner.out")))
if ! grep -q '^== remove and purge' "$work/inner.out"; then
  fail "the checks in the root filesystem stopped early"
fi
echo "== $((SECONDS - start))s in all"
summary
