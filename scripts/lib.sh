# Helpers shared by the scripts (sandbox.sh, registry.sh, test.sh, demo.sh, the benches), which
# source this file (it does nothing on its own). The sourcing script sets PROG (its name, for messages) first.
# shellcheck shell=bash

say() { printf '%s\n' "$*" >&2; }
die() {
  say "$PROG: $*"
  exit 1
}

# A process that exists and is not a zombie (an orphaned daemon is reparented to PID 1, which
# may take seconds to reap it; kill -0 succeeds on a zombie).
alive() {
  local line st
  [ -n "$1" ] || return 1
  line=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${line##*) }
  st=${st%% *}
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# kill_wait PID TENTHS: TERM, wait up to TENTHS/10 s, then KILL (and wait up to 5 s more).
kill_wait() {
  local pid=$1 tenths=$2 i
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < tenths; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
}

# find_cargo: put rustup's cargo on PATH when it is not there: ~/.cargo/bin is missing from
# sudo's and CI's PATH, and under sudo HOME is root's, so the invoking user's home counts too.
# Fails (with a sentence) when there is no cargo at all.
find_cargo() {
  local home
  if ! command -v cargo >/dev/null 2>&1; then
    for home in "${HOME:-/root}" ${SUDO_USER:+"$(getent passwd "$SUDO_USER" | cut -d: -f6)"}; do
      if [ -x "$home/.cargo/bin/cargo" ]; then
        export PATH="$home/.cargo/bin:$PATH"
        break
      fi
    done
  fi
  command -v cargo >/dev/null 2>&1 || die "cargo not found on PATH nor in ~/.cargo/bin; install Rust (rustup) first"
}
