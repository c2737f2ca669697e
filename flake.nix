{
  description = "pruneguard: gated, conservative Docker image pruning (only dangling images, only under disk pressure, never during a deploy)";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # A NixOS configuration with services.pruneguard, for checks that need no VM.
      nixosWith =
        system: extraConfig:
        lib.nixosSystem {
          modules = [
            self.nixosModules.default
            {
              nixpkgs.hostPlatform = system;
              # Fewer unrelated assertions (boot loader, file systems) to evaluate.
              boot.isContainer = true;
              virtualisation.docker.enable = true;
              services.pruneguard.enable = true;
            }
            extraConfig
          ];
        };
      # The assertions that fail in such a configuration.
      failingAssertions =
        system: extraConfig:
        builtins.filter (a: !a.assertion) (nixosWith system extraConfig).config.assertions;
      # The config file the module builds (checked with `pruneguard config --check`).
      configFileWith =
        system: settings:
        (nixosWith system { services.pruneguard.settings = settings; })
        .config.environment.etc."pruneguard/config.toml".source;
      mentions = word: lib.any (a: lib.hasInfix word a.message);
    in
    {
      packages = forAllSystems (pkgs: rec {
        pruneguard = pkgs.callPackage ./nix/package.nix { };
        default = pruneguard;
      });

      overlays.default = final: _prev: {
        pruneguard = final.callPackage ./nix/package.nix { };
      };

      # The module with its package defaulting to this flake's build.
      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./nix/module.nix ];
          services.pruneguard.package = lib.mkDefault (
            self.packages.${pkgs.stdenv.hostPlatform.system}.default
              or (pkgs.callPackage ./nix/package.nix { })
          );
        };
      # The bare module: its package defaults to pkgs.pruneguard (apply overlays.default).
      nixosModules.pruneguard = ./nix/module.nix;

      checks = forAllSystems (
        pkgs:
        let
          system = pkgs.stdenv.hostPlatform.system;
        in
        {
          package = self.packages.${system}.default;

          # The full test: a VM with Docker and services.pruneguard, a dangling image removed
          # and the tagged one kept.
          vm = import ./nix/vm-test.nix {
            inherit pkgs;
            module = self.nixosModules.default;
          };

          # Evaluation only: the autoPrune assertion fails when autoPrune is on, and nothing of
          # ours fails when it is off.
          module-assertions =
            assert mentions "autoPrune" (
              failingAssertions system { virtualisation.docker.autoPrune.enable = true; }
            );
            assert !(mentions "pruneguard" (failingAssertions system { }));
            assert mentions "absolute" (
              failingAssertions system { services.pruneguard.settings.state.dir = "state"; }
            );
            pkgs.runCommand "pruneguard-module-assertions" { } "touch $out";

          # The build-time config check: valid settings build (their metrics directory exists
          # only on the target), a misspelt key fails the build, naming the key.
          config-check =
            pkgs.runCommand "pruneguard-config-check"
              {
                valid = configFileWith system {
                  gates.disk.threshold_percent = 70;
                  output.metrics_file = "/var/lib/pruneguard-metrics/pruneguard.prom";
                };
                invalid = pkgs.testers.testBuildFailure (
                  configFileWith system { gates.disk.treshold_percent = 70; }
                );
              }
              ''
                grep -q 'threshold_percent = 70' "$valid"
                [ "$(cat "$invalid/testBuildFailure.exit")" = 2 ]
                grep -q treshold_percent "$invalid/testBuildFailure.log"
                touch "$out"
              '';
        }
      );
    };
}
