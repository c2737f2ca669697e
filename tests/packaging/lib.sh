# The tally shared by the packaging checks (check.sh, deb.sh), which source this file: `ok` and
# `fail` print one line each and count, `indent` sets output apart under a failing line.
# shellcheck shell=bash

passed=0
failed=0
ok() {
  echo "ok      $*"
  passed=$((passed + 1))
}
fail() {
  echo "FAILED  $*"
  failed=$((failed + 1))
}
indent() { sed 's/^/        /'; }
