#!/usr/bin/env bash
# Packaging checks for pruneguard, run by tests/packaging.rs (and runnable by hand):
#
#   bash tests/packaging/check.sh
#
# 1. `nix-instantiate --parse` on every .nix file in the repository.
# 2. A structural evaluation of nix/module.nix (and of nix/package.nix, nix/vm-test.nix and
#    flake.nix) with minimal stand-ins for nixpkgs' lib, pkgs and utils
#    (tests/packaging/stubs.nix, tests/packaging/eval.nix): the generated service's
#    ExecStart, its hardening, the timer, the assertions (autoPrune), the flake's outputs.
#    This is a structural check only: no nixpkgs is available here. The full check is the
#    flake's NixOS VM test (nix/vm-test.nix: `nix flake check -L` on a machine with Nix and
#    network access), which boots Docker and runs the service.
# 3. `systemd-analyze verify` on the unit and timer rendered from the module, and on
#    contrib/systemd/pruneguard.{service,timer} (ExecStart pointed at a stub binary in a
#    temporary directory, never installed anywhere), plus an exposure ceiling from
#    `systemd-analyze security --offline=yes` so the hardening cannot silently go away.
#
# 4. The module's build-time config check (`pruneguard config --check --config <rendered toml>`,
#    the config file derivation's script), run as the module writes it, with the real binary
#    ($PRUNEGUARD_BIN, else target/debug/pruneguard) against the TOML the stand-in renders:
#    once with valid settings (whose metrics directory exists only on the target), once with
#    a misspelt key, which must fail the "build" naming the key.
#
# Needs: bash, coreutils, sed, nix-instantiate and nix (Debian: nix-bin), systemd-analyze
# (Debian: systemd), a built pruneguard. Prints every check; exits non-zero if any fails or a
# tool is missing.

set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo" || exit 2

# The hardened units must stay at or below this `systemd-analyze security` exposure (0-10,
# lower is safer; "OK" ends at 3.9). Both units score 0.6 today.
max_exposure=1.5

# ok, fail, indent and the passed/failed counts.
# shellcheck source=lib.sh
. "$here/lib.sh"

missing=0
for tool in nix-instantiate nix systemd-analyze; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "FAILED  required tool not found: $tool (apt-get install nix-bin systemd)"
        missing=1
    fi
done
if [ "$missing" -ne 0 ]; then
    exit 2
fi

# Nix may want a writable state directory; keep it away from the real one when not root.
if [ ! -w /nix/var 2>/dev/null ] && [ "$(id -u)" -ne 0 ]; then
    export NIX_STATE_DIR="${TMPDIR:-/tmp}/pruneguard-nix-state"
fi
nix_eval() {
    nix --extra-experimental-features nix-command eval --raw -f tests/packaging/eval.nix \
        --argstr packageOut "$stub_pkg" "$@"
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pruneguard-packaging.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT

# The stand-in package's binary (so that systemd-analyze verify accepts ExecStart) runs the
# real one, for the build-time config check.
real_bin=${PRUNEGUARD_BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug/pruneguard}
if [ ! -x "$real_bin" ]; then
    echo "FAILED  no pruneguard binary at $real_bin (cargo build, or set PRUNEGUARD_BIN)"
    exit 2
fi
stub_pkg="$tmp/pkg"
mkdir -p "$stub_pkg/bin"
printf '#!/bin/sh\nexec %q "$@"\n' "$real_bin" >"$stub_pkg/bin/pruneguard"
chmod +x "$stub_pkg/bin/pruneguard"

echo "== nix-instantiate --parse"
mapfile -t nix_files < <(find . -name '*.nix' -not -path './target/*' -not -path './.git/*' | sort)
if [ "${#nix_files[@]}" -eq 0 ]; then
    fail "no .nix files found"
fi
for f in "${nix_files[@]}"; do
    if out=$(nix-instantiate --parse "$f" 2>&1 >/dev/null); then
        ok "parses: ${f#./}"
    else
        fail "parses: ${f#./}"
        echo "$out" | indent
    fi
done

echo "== structural evaluation of the Nix packaging (stand-ins for nixpkgs; see tests/packaging/stubs.nix)"
if report=$(nix_eval report 2>&1); then
    echo "$report" | grep -v '^nix eval checks:'
    n_ok=$(grep -c '^ok  ' <<<"$report")
    n_failed=$(grep -c '^FAILED' <<<"$report")
    passed=$((passed + n_ok))
    failed=$((failed + n_failed))
    if [ "$n_ok" -lt 30 ]; then
        fail "expected at least 30 evaluation checks, got $n_ok"
    fi
else
    fail "nix eval of tests/packaging/eval.nix"
    echo "$report" | indent
fi

echo "== systemd-analyze verify"
# Units that pruneguard.service orders itself after, so verify does not depend on the host
# having Docker installed.
units="$tmp/units"
mkdir -p "$units/nixos" "$units/contrib"
for d in "$units/nixos" "$units/contrib"; do
    printf '[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n' >"$d/docker.service"
    printf '[Unit]\nDescription=stand-in\n[Socket]\nListenStream=%s/docker.sock\n' "$tmp" >"$d/docker.socket"
done

if nix_eval serviceUnit >"$units/nixos/pruneguard.service" 2>"$tmp/err" &&
    nix_eval timerUnit >"$units/nixos/pruneguard.timer" 2>>"$tmp/err"; then
    ok "rendered the module's service and timer as unit files"
else
    fail "rendering the module's units"
    indent <"$tmp/err"
fi

sed "s|^ExecStart=/usr/local/bin/pruneguard|ExecStart=$stub_pkg/bin/pruneguard|" \
    contrib/systemd/pruneguard.service >"$units/contrib/pruneguard.service"
cp contrib/systemd/pruneguard.timer "$units/contrib/pruneguard.timer"
if grep -q "^ExecStart=$stub_pkg/bin/pruneguard run" "$units/contrib/pruneguard.service"; then
    ok "contrib/systemd/pruneguard.service: ExecStart=/usr/local/bin/pruneguard run (pointed at a stub for verify)"
else
    fail "contrib/systemd/pruneguard.service: ExecStart is not /usr/local/bin/pruneguard run"
fi

for kind in nixos contrib; do
    # --man=no: the man page is installed with the binary, not on this machine.
    if out=$(cd "$units/$kind" && systemd-analyze verify --man=no ./pruneguard.service ./pruneguard.timer 2>&1); then
        ok "systemd-analyze verify: $kind pruneguard.service + pruneguard.timer"
    else
        fail "systemd-analyze verify: $kind pruneguard.service + pruneguard.timer"
        echo "$out" | indent
    fi
    # A warning from verify still exits 0; treat anything it prints about our units as a failure.
    if [ -n "$out" ] && grep -q 'pruneguard\.' <<<"$out"; then
        fail "systemd-analyze verify printed warnings for $kind units"
        echo "$out" | indent
    fi

    if sec=$(systemd-analyze security --offline=yes --no-pager "$units/$kind/pruneguard.service" 2>&1); then
        level=$(sed -n 's/.*Overall exposure level for pruneguard.service: \([0-9.]*\).*/\1/p' <<<"$sec")
        if [ -n "$level" ] && awk -v l="$level" -v m="$max_exposure" 'BEGIN { exit !(l <= m) }'; then
            ok "systemd-analyze security: $kind pruneguard.service exposure $level <= $max_exposure"
        else
            fail "systemd-analyze security: $kind pruneguard.service exposure ${level:-unknown} > $max_exposure"
            grep -E '^✗' <<<"$sec" | indent
        fi
    else
        fail "systemd-analyze security --offline=yes: $kind pruneguard.service"
        echo "$sec" | indent
    fi
done

# The contrib units promise the same behaviour as the module.
svc=contrib/systemd/pruneguard.service
tmr=contrib/systemd/pruneguard.timer
for line in 'Type=oneshot' 'DynamicUser=yes' 'SupplementaryGroups=docker' 'StateDirectory=pruneguard' \
    'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' 'NoNewPrivileges=yes' \
    'RestrictAddressFamilies=AF_UNIX' 'Requires=docker.service'; do
    if grep -qx "$line" "$svc"; then ok "$svc: $line"; else fail "$svc: missing '$line'"; fi
done
if grep -q '^After=.*docker\.service' "$svc" && grep -q '^After=.*docker\.socket' "$svc"; then
    ok "$svc: After=docker.service docker.socket"
else
    fail "$svc: not ordered after docker.service and docker.socket"
fi
for line in 'OnCalendar=daily' 'Persistent=true' 'RandomizedDelaySec=1h' 'WantedBy=timers.target'; do
    if grep -qx "$line" "$tmr"; then ok "$tmr: $line"; else fail "$tmr: missing '$line'"; fi
done

echo "== the module's build-time config check, run as the module writes it"
# Runs scenario $1's config file script with its unchecked TOML in $tmp; prints its output,
# returns its status.
run_build_check() {
    local scenario=$1 script unchecked
    script=$(nix_eval "buildCheck.$scenario.script") &&
        unchecked=$(nix_eval "buildCheck.$scenario.unchecked") &&
        nix_eval "buildCheck.$scenario.toml" >"$tmp/$scenario.toml" || return 90
    script=${script//"$unchecked"/"$tmp/$scenario.toml"}
    (cd "$tmp" && out="$tmp/$scenario.out" bash -euo pipefail -c "$script" 2>&1)
}
if out=$(run_build_check valid) && cmp -s "$tmp/valid.toml" "$tmp/valid.out" &&
    grep -q 'metrics_file = "/var/lib/pruneguard-metrics/' "$tmp/valid.toml"; then
    ok "valid settings: config --check passes (metrics directory only on the target), the file is the output"
    echo "$out" | indent
else
    fail "valid settings: the build-time check failed"
    echo "$out" | indent
fi
out=$(run_build_check invalid)
rc=$?
if [ "$rc" -eq 2 ] && grep -q "$tmp/invalid.toml:[0-9]*:.*treshold_percent" <<<"$out" && [ ! -e "$tmp/invalid.out" ]; then
    ok "a misspelt key (gates.disk.treshold_percent) fails the build with exit 2, naming file, line and key"
    echo "$out" | indent
else
    fail "a misspelt key: expected exit 2 naming treshold_percent, got exit $rc"
    echo "$out" | indent
fi

echo "== packaging checks: $passed ok, $failed failing"
[ "$failed" -eq 0 ]
