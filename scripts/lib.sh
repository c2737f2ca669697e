# Helpers shared by scripts/sandbox.sh and scripts/registry.sh, which source this file (it does
# nothing on its own). The sourcing script sets PROG (its name, for messages) first.
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
