# The pruneguard binary, built from this repository with the Cargo.lock it carries.
{
  lib,
  stdenv,
  rustPlatform,
  installShellFiles,
}:

let
  cargoToml = lib.importTOML ../Cargo.toml;
  root = ../.;
in
rustPlatform.buildRustPackage {
  pname = cargoToml.package.name;
  inherit (cargoToml.package) version;

  # Only what cargo needs, so that editing docs or nix files does not rebuild the binary.
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions (
      [
        ../Cargo.toml
        ../Cargo.lock
        ../src
        # The workspace's dev-only testkit: cargo reads every member's manifest to resolve.
        ../crates
      ]
      ++ map lib.fileset.maybeMissing [
        ../build.rs
        ../benches
        ../bench
        ../examples
        ../tests
        ../README.md
      ]
    );
  };

  cargoLock.lockFile = ../Cargo.lock;

  nativeBuildInputs = [ installShellFiles ];

  # The test suite needs a real Docker daemon (the integration tests start a private dockerd
  # in their own network namespace), which the Nix build sandbox does not have. The NixOS VM
  # test (nix/vm-test.nix, the flake's checks.<system>.vm) exercises the built binary instead.
  doCheck = false;

  # Completions and the man page come from the binary itself (`pruneguard completions SHELL`,
  # `pruneguard man`), so they can only be generated when the build can run what it built.
  postInstall = lib.optionalString (stdenv.buildPlatform.canExecute stdenv.hostPlatform) ''
    installShellCompletion --cmd pruneguard \
      --bash <($out/bin/pruneguard completions bash) \
      --zsh <($out/bin/pruneguard completions zsh) \
      --fish <($out/bin/pruneguard completions fish)
    $out/bin/pruneguard man > pruneguard.1
    installManPage pruneguard.1
  '';

  meta = {
    description = cargoToml.package.description;
    license = with lib.licenses; [
      mit
      asl20
    ];
    mainProgram = "pruneguard";
    platforms = lib.platforms.linux;
  };
}
