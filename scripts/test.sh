#!/usr/bin/env bash
# pruneguard's test command. Run it as root from anywhere in the repository:
#
#     scripts/test.sh [extra cargo-nextest arguments...]     (as root)
#     sudo -E env "PATH=$PATH" scripts/test.sh                (from a normal account)
#
# It installs what the tests need when it is missing (Debian: docker.io, docker-registry,
# prometheus, busybox-static, iproute2, time; quietly, only once), builds everything, runs the
# doc tests (if there are any) and then the whole suite with cargo-nextest. Integration tests
# start private Docker daemons (scripts/sandbox.sh): root is needed for their network
# namespaces and mounts. The host's own dockerd and /var/run/docker.sock are never used.
#
# Extra arguments go to `cargo nextest run --workspace --all-targets`: narrow the run with
# nextest filters, e.g. `scripts/test.sh -E 'binary(docker) & test(sandbox_smoke::)'` or
# `scripts/test.sh swarm`.
#
# With CI=true, PRUNEGUARD_REQUIRE_DOCKER=1 is exported (a test that cannot get Docker fails,
# never skips) and nextest's `ci` profile is used. Every sandbox this run started is stopped
# on exit, even when a test was killed; sandboxes of other runs are left alone.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
root=$(cd "$here/.." && pwd -P)
cd "$root"

if [ "$(id -u)" -ne 0 ]; then
  cat >&2 <<'MSG'
scripts/test.sh must run as root: the integration tests start private Docker daemons in their
own network namespaces (ip netns, nsenter, loop mounts), which only root can do.
Run it as root, or: sudo -E env "PATH=$PATH" scripts/test.sh
MSG
  exit 1
fi

# cargo from rustup lives in ~/.cargo/bin, which a CI environment may not have on PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
  export PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi

bash "$here/sandbox.sh" ensure-installed

if [ "${CI:-}" = true ] || [ "${CI:-}" = 1 ]; then
  export PRUNEGUARD_REQUIRE_DOCKER=1
  profile=ci
else
  profile=default
fi

# Every sandbox of this run lives below one temp dir (tests make theirs in $TMPDIR), so that the
# exit trap can find and stop exactly this run's sandboxes and daemons.
run_tmp=$(mktemp -d /tmp/pgrun.XXXXXX)
# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  bash "$here/sandbox.sh" cleanup-under "$run_tmp" || true
  rm -rf --one-file-system "$run_tmp" 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export TMPDIR=$run_tmp

failed=0

echo "==> cargo build --workspace --all-targets"
cargo build --workspace --all-targets

# Doc tests first (nextest does not run them), so that nextest's summary is the last word.
# Only when some doc comment holds a code block: otherwise `cargo test --doc` runs 0 tests.
if [ -f src/lib.rs ] && grep -rqE '^[[:space:]]*//[/!].*```' src; then
  echo "==> cargo test --doc"
  cargo test --workspace --doc || failed=1
fi

if cargo nextest --version >/dev/null 2>&1; then
  echo "==> cargo nextest run --profile $profile"
  cargo nextest run --workspace --all-targets --no-fail-fast --profile "$profile" "$@" || failed=1
else
  echo "==> cargo-nextest is not installed; running cargo test instead" >&2
  cargo test --workspace --all-targets --no-fail-fast "$@" || failed=1
fi

exit "$failed"
