# The pruneguard binary, built from this repository with the Cargo.lock it carries.
{
  lib,
  stdenv,
  rustPlatform,
  installShellFiles,
  # For passthru.tests: nixpkgs' own nixosTests.pruneguard when it exists, else the VM test
  # of this repository (nix/vm-test.nix) with this very package.
  nixosTests ? { },
  pkgs,
}:

let
  cargoToml = lib.importTOML ../Cargo.toml;
  root = ../.;
  package = rustPlatform.buildRustPackage {
    pname = cargoToml.package.name;
    inherit (cargoToml.package) version;

    # Only what the build and the tests it runs need, so that editing docs, scripts or nix files
    # does not rebuild: the crate, the workspace's dev-only testkit (a workspace member, which
    # cargo resolves even for a release build) and the pure test binary with what it reads
    # (README.md and docs/ pin the documented keys and the report schema). The docker and
    # packaging test binaries are declared in Cargo.toml but not part of the source: cargo only
    # needs a target's files when it builds that target.
    src = lib.fileset.toSource {
      inherit root;
      fileset = lib.fileset.unions [
        ../Cargo.toml
        ../Cargo.lock
        ../src
        ../crates/testkit
        ../tests/core
        ../README.md
        ../docs
        # The core tests read the alert rules (tests/core/alerts.rs).
        ../contrib/prometheus
      ];
    };

    cargoLock.lockFile = ../Cargo.lock;

    nativeBuildInputs = [ installShellFiles ];

    # The tests that need no Docker daemon: the library's unit tests and the pure `core` test
    # binary (config, gates, plan, execute, report schema, CLI). The `docker` binary starts
    # private dockerds (root, network namespaces), which the build sandbox cannot; the NixOS VM
    # test (passthru.tests.vm) exercises the built binary against a real daemon instead.
    cargoTestFlags = [
      "--lib"
      "--test"
      "core"
    ];

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

    passthru.tests.vm =
      nixosTests.pruneguard or (import ./vm-test.nix {
        inherit pkgs;
        module = {
          imports = [ ./module.nix ];
          services.pruneguard.package = package;
        };
      });

    meta = {
      description = cargoToml.package.description;
      license = with lib.licenses; [
        mit
        asl20
      ];
      mainProgram = "pruneguard";
      platforms = lib.platforms.linux;
    };
  };
in
package
