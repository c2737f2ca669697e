#!/usr/bin/env bash
# pruneguard's test command. Run it as root from anywhere in the repository:
#
#     scripts/test.sh [extra cargo-nextest arguments...]     (as root)
#     scripts/test.sh --engine NAME [extra nextest arguments...]
#     sudo -E env "PATH=$PATH" scripts/test.sh                (from a normal account)
#
# Engines (issue 10; `scripts/engines.sh list`): docker-20.10 (the host's dockerd), docker-28,
# docker-28-containerd, docker-28-containerd-ext, podman-5, podman-4.3. With no arguments at
# all, the whole suite runs on docker-20.10 and then the conformance suite
# (tests/docker/conformance) on each of the other five, one nextest run each with
# PRUNEGUARD_ENGINE set, plus the 3-node swarm suite (tests/docker/swarm3/) on docker-28 and
# docker-28-containerd; any failure fails the whole. `--engine NAME` runs one target: on
# docker-20.10 the whole suite, on the others that selection. Extra arguments without
# --engine narrow the docker-20.10 run only (and no other engine runs). The engines' root
# filesystems are built first (debootstrap, cached in /var/cache/pruneguard-ci; ~1 min each
# the first time on a machine, seconds after).
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

engine=''
case "${1:-}" in
  --engine)
    [ $# -ge 2 ] || { echo "scripts/test.sh: --engine needs a NAME: $(bash "$here/engines.sh" list | tr '\n' ' ')" >&2; exit 2; }
    engine=$2
    shift 2
    ;;
  --engine=*)
    engine=${1#*=}
    shift
    ;;
esac
if [ -n "$engine" ] && ! bash "$here/engines.sh" list | grep -qx -- "$engine"; then
  echo "scripts/test.sh: unknown engine $engine; the engines are: $(bash "$here/engines.sh" list | tr '\n' ' ')" >&2
  exit 2
fi
# Which targets run: one (--engine), docker-20.10 alone (narrowed by arguments), or all.
if [ -n "$engine" ]; then
  targets=("$engine")
elif [ $# -gt 0 ]; then
  targets=(docker-20.10)
else
  mapfile -t targets < <(bash "$here/engines.sh" list)
fi

if [ "${targets[*]}" = docker-20.10 ]; then
  bash "$here/sandbox.sh" ensure-installed
else
  echo "==> scripts/sandbox.sh ensure-engines (root filesystems of the engines, cached)"
  started=$SECONDS
  bash "$here/sandbox.sh" ensure-engines
  echo "    engines ready in $((SECONDS - started)) s"
fi

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

# One run per target: docker-20.10 runs everything (or what the arguments select), the others
# the conformance suite. Each says how long it took; the summary repeats it.
summary=()
for target in "${targets[@]}"; do
  export PRUNEGUARD_ENGINE=$target
  started=$SECONDS
  rc=0
  case "$target" in
    docker-20.10) selection=() filters=() ;;
    # The 3-node swarm suite too, on current Docker's classic and containerd stores (issue 11:
    # deploy safety on real multi-node swarms, not only on the engine it was born on).
    docker-28 | docker-28-containerd)
      selection=(--test docker -E 'test(conformance::) | test(swarm3::)')
      filters=(conformance:: swarm3::)
      ;;
    *) selection=(--test docker -E 'test(conformance::)') filters=(conformance::) ;;
  esac
  if cargo nextest --version >/dev/null 2>&1; then
    if [ "$target" = docker-20.10 ]; then
      echo "==> [$target] cargo nextest run --profile $profile (the whole suite)"
      cargo nextest run --workspace --all-targets --no-fail-fast --profile "$profile" "$@" || rc=$?
    else
      echo "==> [$target] cargo nextest run --profile $profile ${selection[*]}"
      cargo nextest run --no-fail-fast --profile "$profile" "${selection[@]}" "$@" || rc=$?
    fi
  else
    echo "==> [$target] cargo-nextest is not installed; running cargo test instead" >&2
    if [ "$target" = docker-20.10 ]; then
      cargo test --workspace --all-targets --no-fail-fast "$@" || rc=$?
    else
      cargo test --no-fail-fast --test docker "$@" -- "${filters[@]}" || rc=$?
    fi
  fi
  [ "$rc" -eq 0 ] || failed=1
  summary+=("$(printf '%-26s %-6s %4d s' "$target" "$([ "$rc" -eq 0 ] && echo ok || echo FAILED)" $((SECONDS - started)))")
done

if [ ${#targets[@]} -gt 1 ]; then
  echo "==> engines"
  printf '    %s\n' "${summary[@]}"
fi
exit "$failed"
