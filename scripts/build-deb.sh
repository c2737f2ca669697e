#!/usr/bin/env bash
# Builds the Debian package (binary, man page, completions, the systemd units installed but
# not enabled, /etc/pruneguard/config.toml as a conffile) with cargo-deb:
#
#     bash scripts/build-deb.sh            -> prints the path of target/debian/pruneguard_*.deb
#     dpkg -i target/debian/pruneguard_*.deb   (or: apt install ./target/debian/pruneguard_*.deb)
#
# Needs cargo and cargo-deb (installed here when missing: `cargo install cargo-deb --version
# $CARGO_DEB_VERSION --locked`, into ~/.cargo/bin). The man page, completions and units are
# generated from the freshly built binary and contrib/systemd/ into target/deb/ (relative to
# the repository, whatever CARGO_TARGET_DIR is: Cargo.toml's [package.metadata.deb] names them
# there). Progress goes to stderr; stdout is only the .deb's path.
set -euo pipefail

# The cargo-deb release this package's metadata was written and tested against.
CARGO_DEB_VERSION=3.8.0

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$root"

if ! command -v cargo >/dev/null 2>&1 && [ -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
  export PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi

if [ "$(cargo deb --version 2>/dev/null || true)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
  echo "==> cargo install cargo-deb --version $CARGO_DEB_VERSION --locked" >&2
  cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --quiet >&2
fi

target=${CARGO_TARGET_DIR:-$root/target}
echo "==> cargo build --release --locked (target dir $target)" >&2
cargo build --release --locked --bin pruneguard >&2
bin=$target/release/pruneguard

# cargo-deb maps target/release/ to the real target dir, but not other paths: the generated
# assets live in the repository's own target/deb/.
assets=$root/target/deb
rm -rf "$assets"
mkdir -p "$assets/units"
"$bin" man | gzip -9n >"$assets/pruneguard.1.gz"
"$bin" completions bash >"$assets/pruneguard.bash"
"$bin" completions zsh >"$assets/_pruneguard"
"$bin" completions fish >"$assets/pruneguard.fish"
# The package installs the binary in /usr/bin, the contrib units expect /usr/local/bin.
for unit in pruneguard.service pruneguard.timer; do
  {
    echo "# Installed by the pruneguard Debian package (binary: /usr/bin/pruneguard). Not enabled"
    echo "# by the package: systemctl enable --now pruneguard.timer. Adjust with a drop-in"
    echo "# (systemctl edit $unit); this file is replaced on upgrade."
    sed -e 's|/usr/local/bin/pruneguard|/usr/bin/pruneguard|g' "contrib/systemd/$unit"
  } >"$assets/units/$unit"
done
if ! grep -q '^ExecStart=/usr/bin/pruneguard run' "$assets/units/pruneguard.service"; then
  echo "build-deb.sh: contrib/systemd/pruneguard.service no longer has ExecStart=/usr/local/bin/pruneguard run; update this script" >&2
  exit 1
fi

echo "==> cargo deb --no-build" >&2
out=$(cargo deb --no-build --locked 2>&1 >/dev/null | tee /dev/stderr; true)
deb=$(ls -t "$target"/debian/pruneguard_*.deb 2>/dev/null | head -n 1 || true)
if [ -z "$deb" ]; then
  echo "build-deb.sh: cargo deb produced no .deb in $target/debian: $out" >&2
  exit 1
fi
echo "$deb"
