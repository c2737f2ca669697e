# Structural evaluation checks of the Nix packaging, run by tests/packaging/check.sh:
#
#   nix eval --raw -f tests/packaging/eval.nix report --argstr packageOut DIR
#
# nix/module.nix is called with the stand-ins of stubs.nix and a tiny module evaluator
# (option defaults + the values a scenario sets, type-checked; mkIf/mkMerge/mkOverride
# resolved), and its returned `config` is inspected: the generated service, timer, tmpfiles
# rules and assertions. `serviceUnit` and `timerUnit` render the service and timer the way
# NixOS writes unit files, for `systemd-analyze verify`.
#
# This is a structural check. It does not prove the module works on a real NixOS system:
# the flake's VM test (nix/vm-test.nix) boots one with Docker and runs the service.
{
  packageOut ? "/nix/store/00000000000000000000000000000000-pruneguard-0.1.0",
}:

let
  stubs = import ./stubs.nix { inherit packageOut; };
  inherit (stubs) lib pkgs utils;
  inherit (builtins)
    attrNames
    concatStringsSep
    elem
    filter
    isAttrs
    isBool
    isList
    isString
    length
    mapAttrs
    replaceStrings
    toJSON
    tryEval
    ;

  root = ../..;
  modulePath = root + "/nix/module.nix";
  module = import modulePath;

  # ------------------------------------------------------------------------------------------
  # A tiny module evaluator for one module that declares options.services.pruneguard.

  optionsOf = (module {
    config = throw "option declarations must not depend on config";
    inherit lib pkgs utils;
  }).options.services.pruneguard;

  isDisabled = v: isAttrs v && (v._type or null) == "if" && !v.condition;
  resolve =
    v:
    if isAttrs v && (v._type or null) == "if" then
      (if v.condition then resolve v.content else { })
    else if isAttrs v && (v._type or null) == "override" then
      resolve v.content
    else if isAttrs v && (v._type or null) == "merge" then
      builtins.foldl' merge { } (map resolve v.contents)
    else if isAttrs v && !(v ? _type) && !(v ? outPath) then
      mapAttrs (_: resolve) (builtins.removeAttrs v (filter (n: isDisabled v.${n}) (attrNames v)))
    else
      v;
  merge =
    a: b:
    a
    // mapAttrs (
      n: bv:
      if !(a ? ${n}) then
        bv
      else if isList bv then
        a.${n} ++ bv
      else if isAttrs bv && !(bv ? outPath) then
        merge a.${n} bv
      else
        bv
    ) b;

  evalWith =
    {
      pruneguard ? { },
      docker ? { },
    }:
    let
      given = {
        enable = true;
      }
      // pruneguard;
      unknown = filter (n: !(optionsOf ? ${n})) (attrNames given);
      value =
        n: opt:
        if given ? ${n} then
          (
            if opt.type.check given.${n} then
              given.${n}
            else
              throw "services.pruneguard.${n}: not a ${opt.type.name}"
          )
        else
          opt.default;
      cfg =
        if unknown != [ ] then
          throw "services.pruneguard: no such option: ${concatStringsSep ", " unknown}"
        else
          mapAttrs value optionsOf;
      config = {
        services.pruneguard = cfg;
        virtualisation.docker = merge {
          enable = true;
          autoPrune.enable = false;
        } docker;
      };
      out = module {
        inherit config lib pkgs utils;
      };
    in
    # Like the module system, check every value set (and every default) against its type.
    builtins.deepSeq cfg (resolve out.config);

  # ------------------------------------------------------------------------------------------
  # Reading the result.

  # systemd's reading of an escaped Exec line, enough for our arguments: "a" "b" -> a b.
  unquote =
    line:
    replaceStrings
      [
        "\" \""
        "%%"
        "$$"
      ]
      [
        " "
        "%"
        "$"
      ]
      (builtins.substring 1 (builtins.stringLength line - 2) line);

  failing = c: map (a: a.message) (filter (a: !a.assertion) c.assertions);
  mentions = word: msgs: builtins.any (lib.hasInfix word) msgs;

  # ------------------------------------------------------------------------------------------
  # Scenarios.

  baseSettings = {
    policy.min_age = "24h";
    gates.workload.lock_files = [ "/run/ci/run-app.lock" ];
    output.metrics_file = "/var/lib/pruneguard-metrics/pruneguard.prom";
  };
  base = evalWith {
    pruneguard = {
      settings = baseSettings;
      extraArgs = [
        "--output"
        "json"
        "--wait-for-gates"
        "2h"
      ];
    };
  };
  svc = base.systemd.services.pruneguard;
  sc = svc.serviceConfig;
  timer = base.systemd.timers.pruneguard;
  configFile = base.environment.etc."pruneguard/config.toml".source;
  exe = "${packageOut}/bin/pruneguard";

  autoPrune = evalWith { docker.autoPrune.enable = true; };
  noDocker = evalWith { docker.enable = false; };
  disabled = evalWith { pruneguard.enable = false; };
  defaults = evalWith { };
  lockInTmp = evalWith { pruneguard.settings.gates.workload.lock_files = [ "/tmp/deploy.lock" ]; };
  lockInHome = evalWith { pruneguard.settings.gates.workload.lock_files = [ "/home/ci/deploy.lock" ]; };
  rootInHome = evalWith { docker.daemon.settings.data-root = "/home/docker"; };
  metricsInState = evalWith { pruneguard.settings.output.metrics_file = "/var/lib/pruneguard/m.prom"; };
  customState = evalWith { pruneguard.settings.state.dir = "/srv/pruneguard"; };
  # A worker that asks its manager over TLS, with the files under /root.
  tlsManager = evalWith {
    pruneguard.settings.gates.swarm = {
      manager_host = "HTTPS://10.0.0.1:2376";
      manager_tls_cert_path = "/root/pruneguard-tls";
    };
  };
  unixManager = evalWith {
    pruneguard.settings.gates.swarm.manager_host = "unix:///run/pruneguard/manager.sock";
  };
  tcpEngine = evalWith { pruneguard.settings.engine.host = "tcp://10.0.0.5:2375"; };
  customTimer = evalWith {
    pruneguard = {
      startAt = "hourly";
      persistent = false;
      randomizedDelaySec = "0";
    };
  };
  escaping = evalWith {
    pruneguard.extraArgs = [
      "--workload-stack"
      "app-%i$HOME \"x\""
    ];
  };
  badType = tryEval (builtins.deepSeq (evalWith { pruneguard.persistent = "yes"; }) true);
  badOption = tryEval (builtins.deepSeq (evalWith { pruneguard.schedule = "daily"; }) true);
  # singleLineStr, as nixpkgs' docker autoPrune: a newline would smuggle a line into the unit.
  multiLine = tryEval (
    builtins.deepSeq (evalWith { pruneguard.randomizedDelaySec = "1h\nExecStartPre=/bin/sh"; }) true
  );
  multiLineStartAt = tryEval (
    builtins.deepSeq (evalWith { pruneguard.startAt = "daily\nPersistent=false"; }) true
  );

  # One relative path setting at a time: each must fail the path assertion, naming its key.
  relativeIn = settings: failing (evalWith { pruneguard.settings = settings; });
  relativeCases = [
    {
      key = "state.dir";
      settings.state.dir = "state";
    }
    {
      key = "output.metrics_file";
      settings.output.metrics_file = "pruneguard.prom";
    }
    {
      key = "gates.disk.path";
      settings.gates.disk.path = "docker";
    }
    {
      key = "gates.workload.lock_files";
      settings.gates.workload.lock_files = [
        "/run/ok.lock"
        "run/app.lock"
      ];
    }
  ];
  relativeFailures = map (
    case:
    let
      msgs = relativeIn case.settings;
    in
    length msgs == 1 && mentions case.key msgs && mentions "absolute" msgs
  ) relativeCases;
  absoluteEverywhere = evalWith {
    pruneguard.settings = {
      state.dir = "/srv/pruneguard";
      gates.disk.path = "/srv/docker";
      gates.workload.lock_files = [ "/run/ci/app.lock" ];
      output.metrics_file = "/var/lib/pruneguard-metrics/m.prom";
    };
  };
  diskAuto = evalWith { pruneguard.settings.gates.disk.path = "auto"; };

  # The build-time check, for check.sh to run against a real binary: the module's script and
  # the TOML its unchecked file holds, once valid (the base settings; their metrics directory
  # exists only on the target) and once with a misspelt key.
  buildCheckOf =
    c:
    let
      file = c.environment.etc."pruneguard/config.toml".source;
    in
    {
      inherit (file) script;
      unchecked = file.unchecked.outPath;
      toml = file.unchecked.text;
    };
  misspelt = evalWith {
    pruneguard.settings = baseSettings // {
      gates.disk.treshold_percent = 70;
    };
  };
  buildCheck = {
    valid = buildCheckOf base;
    invalid = buildCheckOf misspelt;
  };

  # The keys pruneguard's config file accepts (src/config.rs, deny_unknown_fields). Only used
  # to check the settings that our own files pass; keep in step with the Rust side.
  schema = {
    policy.min_age = true;
    gates = {
      wait = true;
      wait_interval = true;
      disk = {
        path = true;
        threshold_percent = true;
        inode_threshold_percent = true;
      };
      quiet.period = true;
      workload = {
        stacks = true;
        labels = true;
        containers = true;
        lock_files = true;
        stale_lock_after = true;
      };
      swarm = {
        enabled = true;
        stuck_after = true;
      };
    };
    state.dir = true;
    output.metrics_file = true;
  };
  unknownKeys =
    prefix: s: set:
    builtins.concatLists (
      map (
        n:
        let
          key = if prefix == "" then n else "${prefix}.${n}";
        in
        if !(s ? ${n}) then
          [ key ]
        else if isAttrs s.${n} then
          (if isAttrs set.${n} then unknownKeys key s.${n} set.${n} else [ "${key} (not a table)" ])
        else if isAttrs set.${n} then
          [ "${key} (a table, expected a value)" ]
        else
          [ ]
      ) (attrNames set)
    );

  # nix/vm-test.nix, called with the stand-ins: its node's settings must be valid keys and
  # must evaluate through the module with every assertion holding.
  vmTest = import (root + "/nix/vm-test.nix") {
    inherit pkgs;
    module = { };
  };
  vmNode = vmTest.nodes.machine { inherit pkgs; };
  vmSettings = vmNode.services.pruneguard.settings;
  vmEval = evalWith {
    pruneguard = builtins.removeAttrs vmNode.services.pruneguard [ "enable" ];
  };

  # flake.nix, its outputs called with a stand-in nixpkgs: the promised output names.
  flake = import (root + "/flake.nix");
  fakeNixpkgs = {
    lib = lib // {
      nixosSystem = _: throw "nixosSystem is not available to the structural check";
    };
    legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (
      system:
      pkgs
      // {
        stdenv = pkgs.stdenv // {
          hostPlatform.system = system;
        };
        callPackage =
          path: _:
          import path (
            builtins.intersectAttrs (builtins.functionArgs (import path)) (
              pkgs
              // {
                inherit lib;
                pkgs = pkgs // {
                  inherit lib;
                };
              }
            )
          );
      }
    );
  };
  flakeOut = flake.outputs {
    self = flakeOut;
    nixpkgs = fakeNixpkgs;
  };
  pkgX86 = flakeOut.packages.x86_64-linux.default;
  flakeModule = flakeOut.nixosModules.default {
    inherit lib;
    pkgs = fakeNixpkgs.legacyPackages.x86_64-linux;
  };
  cargo = lib.importTOML (root + "/Cargo.toml");

  # Every option documented nixpkgs-style.
  optionNames = attrNames optionsOf;
  undocumented = filter (
    n:
    let
      o = optionsOf.${n};
    in
    !(isString (o.description or null) && o.description != "" && o ? type && o ? default)
  ) optionNames;

  # ------------------------------------------------------------------------------------------

  checks = [
    # options
    {
      name = "options: enable package settings startAt persistent randomizedDelaySec extraArgs";
      ok =
        builtins.sort builtins.lessThan optionNames == [
          "enable"
          "extraArgs"
          "package"
          "persistent"
          "randomizedDelaySec"
          "settings"
          "startAt"
        ];
      detail = toString optionNames;
    }
    {
      name = "every option has a type, a default and a description";
      ok = undocumented == [ ];
      detail = toString undocumented;
    }
    {
      name = "defaults: startAt=daily persistent=true randomizedDelaySec=1h extraArgs=[] settings={} enable=false";
      ok =
        optionsOf.startAt.default == "daily"
        && optionsOf.persistent.default == true
        && optionsOf.randomizedDelaySec.default == "1h"
        && optionsOf.extraArgs.default == [ ]
        && optionsOf.settings.default == { }
        && optionsOf.enable.default == false;
      detail = "";
    }
    {
      name = "settings is typed by pkgs.formats.toml (any config key can be set)";
      ok =
        optionsOf.settings.type.name == "TOML value"
        && optionsOf.settings.type.check {
          gates.disk.inode_threshold_percent = 90;
          some.future.key = [ "x" ];
        };
      detail = "";
    }
    {
      name = "a value of the wrong type or an unknown option is rejected";
      ok = !badType.success && !badOption.success;
      detail = "";
    }
    {
      name = "disabled: the module defines nothing";
      ok = disabled == { };
      detail = toString (attrNames disabled);
    }

    # service
    {
      name = "service is a oneshot";
      ok = (sc.Type or null) == "oneshot";
      detail = toString (sc.Type or "");
    }
    {
      name = "ExecStart = pruneguard run --config <generated toml> ++ extraArgs (escaped)";
      ok =
        (sc.ExecStart or null) == utils.escapeSystemdExecArgs [
          exe
          "run"
          "--config"
          configFile
          "--output"
          "json"
          "--wait-for-gates"
          "2h"
        ];
      detail = sc.ExecStart or "";
    }
    {
      name = "ExecStart, unquoted, reads 'pruneguard run --config ... --output json --wait-for-gates 2h'";
      ok =
        lib.hasInfix "pruneguard run --config ${configFile}" (unquote (sc.ExecStart or ""))
        && lib.hasSuffix " --output json --wait-for-gates 2h" (unquote (sc.ExecStart or ""));
      detail = unquote (sc.ExecStart or "");
    }
    {
      name = "the config file is settings rendered with pkgs.formats.toml, also at /etc/pruneguard/config.toml";
      ok = configFile.name == "pruneguard.toml" && configFile.unchecked.value == baseSettings;
      detail = configFile.unchecked.text or "";
    }
    {
      name = "the config file is checked at build time: pruneguard config --check --config <rendered toml>, then copied";
      ok =
        lib.hasInfix "${exe} config --check --config ${configFile.unchecked}" configFile.script
        && lib.hasInfix "cp ${configFile.unchecked} $out" configFile.script;
      detail = configFile.script;
    }
    {
      name = "package: mkPackageOption pkgs \"pruneguard\" (default pkgs.pruneguard)";
      ok =
        (optionsOf.package._packageOption or null) == "pruneguard"
        && optionsOf.package.default == pkgs.pruneguard
        && optionsOf.package.defaultText.text == "pkgs.pruneguard";
      detail = "";
    }
    {
      name = "no option description mentions the flake (the module is for nixpkgs)";
      ok = !(builtins.any (n: lib.hasInfix "flake" (optionsOf.${n}.description or "")) optionNames);
      detail = "";
    }
    {
      name = "startAt and randomizedDelaySec are single-line strings (types.singleLineStr, as docker autoPrune)";
      ok =
        optionsOf.randomizedDelaySec.type.name == "singleLineStr"
        && lib.hasInfix "singleLineStr" optionsOf.startAt.type.name
        && !multiLine.success
        && !multiLineStartAt.success;
      detail = "";
    }
    {
      name = "a relative state.dir, output.metrics_file, gates.disk.path or lock file fails an assertion naming the key";
      ok = relativeFailures == [ true true true true ];
      detail = toJSON relativeFailures;
    }
    {
      name = "absolute paths everywhere and gates.disk.path = \"auto\": no path assertion fails";
      ok = failing absoluteEverywhere == [ ] && failing diskAuto == [ ];
      detail = toString (failing absoluteEverywhere ++ failing diskAuto);
    }
    {
      name = "extraArgs are escaped for systemd (% and $ literal)";
      ok = lib.hasSuffix ''"--workload-stack" "app-%%i$$HOME \"x\""'' escaping.systemd.services.pruneguard.serviceConfig.ExecStart;
      detail = escaping.systemd.services.pruneguard.serviceConfig.ExecStart;
    }
    {
      name = "ordering: after docker.service and docker.socket, requires docker.service";
      ok =
        elem "docker.service" svc.after
        && elem "docker.socket" svc.after
        && elem "docker.service" svc.requires;
      detail = "after=${toString svc.after} requires=${toString svc.requires}";
    }
    {
      name = "identity: DynamicUser, SupplementaryGroups=docker, StateDirectory=pruneguard";
      ok = (sc.DynamicUser or null) == true && (sc.SupplementaryGroups or null) == [ "docker" ] && (sc.StateDirectory or null) == "pruneguard";
      detail = "";
    }
    {
      name = "hardening: ProtectSystem=strict ProtectHome PrivateTmp NoNewPrivileges RestrictAddressFamilies=AF_UNIX";
      ok =
        (sc.ProtectSystem or null) == "strict"
        && (sc.ProtectHome or null) == true
        && (sc.PrivateTmp or null) == true
        && (sc.NoNewPrivileges or null) == true
        && (sc.RestrictAddressFamilies or null) == [ "AF_UNIX" ]
        && (sc.CapabilityBoundingSet or null) == "";
      detail = "";
    }
    {
      name = "nothing hides /proc/self/mountinfo, the data root or lock files (no ProcSubset, InaccessiblePaths, TemporaryFileSystem)";
      ok = !(sc ? ProcSubset) && !(sc ? InaccessiblePaths) && !(sc ? TemporaryFileSystem);
      detail = "";
    }
    {
      name = "metrics file: its directory is writable in the sandbox and created 0775 root:docker";
      ok =
        elem "-/var/lib/pruneguard-metrics" (sc.ReadWritePaths or [ ])
        && elem "d /var/lib/pruneguard-metrics 0775 root docker - -" base.systemd.tmpfiles.rules;
      detail = toString (sc.ReadWritePaths or [ ]);
    }
    {
      name = "no metrics file: no extra writable path, no tmpfiles rule";
      ok = defaults.systemd.services.pruneguard.serviceConfig.ReadWritePaths == [ ] && defaults.systemd.tmpfiles.rules == [ ];
      detail = "";
    }
    {
      name = "custom state.dir: writable in the sandbox, created 0770 root:docker";
      ok =
        elem "-/srv/pruneguard" customState.systemd.services.pruneguard.serviceConfig.ReadWritePaths
        && elem "d /srv/pruneguard 0770 root docker - -" customState.systemd.tmpfiles.rules;
      detail = "";
    }
    {
      name = "a lock file under /tmp turns PrivateTmp off (it would be invisible: gate open)";
      ok = lockInTmp.systemd.services.pruneguard.serviceConfig.PrivateTmp == false;
      detail = "";
    }
    {
      name = "a manager or a daemon over the network gets the network and AF_INET/AF_INET6; a unix socket does not";
      ok =
        let
          networked = c: c.systemd.services.pruneguard.serviceConfig;
        in
        (networked tlsManager).PrivateNetwork == false
        && (networked tlsManager).RestrictAddressFamilies == [ "AF_UNIX" "AF_INET" "AF_INET6" ]
        && (networked tcpEngine).PrivateNetwork == false
        && (networked unixManager).PrivateNetwork == true
        && (networked unixManager).RestrictAddressFamilies == [ "AF_UNIX" ];
      detail = "";
    }
    {
      name = "TLS files under /root: ProtectHome=read-only; relative TLS paths are refused";
      ok =
        tlsManager.systemd.services.pruneguard.serviceConfig.ProtectHome == "read-only"
        && length (relativeIn { engine.tls_cert_path = "tls"; }) == 1
        && mentions "engine.tls_cert_path" (relativeIn { engine.tls_cert_path = "tls"; });
      detail = "";
    }
    {
      name = "a lock file or the data root under /home: ProtectHome=read-only";
      ok =
        lockInHome.systemd.services.pruneguard.serviceConfig.ProtectHome == "read-only"
        && rootInHome.systemd.services.pruneguard.serviceConfig.ProtectHome == "read-only";
      detail = "";
    }
    {
      name = "pruneguard and the same config are available to operators (plan, doctor by hand)";
      ok = elem pkgs.pruneguard base.environment.systemPackages && configFile == base.environment.etc."pruneguard/config.toml".source;
      detail = "";
    }

    # timer
    {
      name = "timer: OnCalendar=daily Persistent=true RandomizedDelaySec=1h, wanted by timers.target";
      ok =
        timer.timerConfig.OnCalendar == "daily"
        && timer.timerConfig.Persistent == true
        && timer.timerConfig.RandomizedDelaySec == "1h"
        && timer.wantedBy == [ "timers.target" ];
      detail = toJSON timer.timerConfig;
    }
    {
      name = "timer follows startAt, persistent and randomizedDelaySec";
      ok =
        customTimer.systemd.timers.pruneguard.timerConfig == {
          OnCalendar = "hourly";
          Persistent = false;
          RandomizedDelaySec = "0";
        };
      detail = toJSON customTimer.systemd.timers.pruneguard.timerConfig;
    }

    # assertions
    {
      name = "assertions hold with docker on and autoPrune off";
      ok = length base.assertions >= 2 && failing base == [ ];
      detail = toString (failing base);
    }
    {
      name = "autoPrune on: the autoPrune assertion fails, saying why (system prune, --all, base images)";
      ok =
        length (failing autoPrune) == 1
        && mentions "autoPrune" (failing autoPrune)
        && mentions "--all" (failing autoPrune)
        && mentions "base images" (failing autoPrune)
        && mentions "autoPrune.enable = false" (failing autoPrune);
      detail = toString (failing autoPrune);
    }
    {
      name = "docker off: the docker assertion fails";
      ok = length (failing noDocker) == 1 && mentions "virtualisation.docker.enable" (failing noDocker);
      detail = toString (failing noDocker);
    }
    {
      name = "metrics file inside the private state directory: assertion fails";
      ok = length (failing metricsInState) == 1 && mentions "metrics_file" (failing metricsInState);
      detail = "";
    }

    # vm test, flake, package
    {
      name = "vm-test: settings use only pruneguard config keys";
      ok = unknownKeys "" schema vmSettings == [ ];
      detail = toString (unknownKeys "" schema vmSettings);
    }
    {
      name = "vm-test: gates opened (threshold 0, min_age 0s, quiet 0s); module evaluates with no failing assertion";
      ok =
        vmSettings.gates.disk.threshold_percent == 0
        && vmSettings.policy.min_age == "0s"
        && vmSettings.gates.quiet.period == "0s"
        && vmNode.virtualisation.docker.enable
        && failing vmEval == [ ];
      detail = "";
    }
    {
      name = "vm-test: runNixOSTest; script checks the timer, the dangling image gone, the tagged kept";
      ok =
        vmTest._type == "nixos-test"
        && builtins.all (s: lib.hasInfix s vmTest.testScript) [
          "systemctl list-timers --all | grep pruneguard"
          "systemctl start pruneguard.service"
          "machine.fail(f\"docker image inspect {old_id}\")"
          "docker image inspect pruneguard-vmtest:latest"
        ];
      detail = "";
    }
    {
      name = "flake: packages.<system>.default, nixosModules.default, overlays.default, checks.<system>.{vm,config-check}";
      ok =
        builtins.all (
          s: flakeOut.packages ? ${s}.default && flakeOut.checks ? ${s}.vm && flakeOut.checks ? ${s}.config-check
        ) [
          "x86_64-linux"
          "aarch64-linux"
        ]
        && flakeOut.nixosModules ? default
        && flakeOut.overlays ? default
        && (flakeOut.overlays.default pkgs pkgs) ? pruneguard;
      detail = "";
    }
    {
      name = "flake: nixosModules.default imports nix/module.nix and defaults the package to the flake's";
      ok =
        flakeModule.imports == [ modulePath ]
        && flakeModule.services.pruneguard.package._type == "override"
        && flakeModule.services.pruneguard.package.content == pkgX86;
      detail = "";
    }
    {
      name = "package: buildRustPackage from Cargo.toml's name/version, cargoLock from ../Cargo.lock";
      ok =
        pkgX86.args.pname == "pruneguard"
        && pkgX86.args.version == cargo.package.version
        && pkgX86.args.cargoLock.lockFile == root + "/Cargo.lock"
        && pkgX86.meta.mainProgram == "pruneguard";
      detail = "";
    }
    {
      name = "package: runs the tests that need no daemon (--lib --test core), not the docker ones";
      ok =
        (pkgX86.args.doCheck or true) == true
        && pkgX86.args.cargoTestFlags == [
          "--lib"
          "--test"
          "core"
        ];
      detail = toJSON (pkgX86.args.cargoTestFlags or null);
    }
    {
      name = "package: its source is Cargo.toml, Cargo.lock, src, crates/testkit, tests/core, README.md, docs, contrib/prometheus only";
      ok =
        pkgX86.args.src.root == root
        && pkgX86.args.src.fileset.members == map (p: root + p) [
          "/Cargo.toml"
          "/Cargo.lock"
          "/src"
          "/crates/testkit"
          "/tests/core"
          "/README.md"
          "/docs"
          "/contrib/prometheus"
        ];
      detail = toString (pkgX86.args.src.fileset.members or [ ]);
    }
    {
      name = "package: passthru.tests.vm is the NixOS VM test, run with this package";
      ok =
        pkgX86.tests.vm._type == "nixos-test"
        && (pkgX86.tests.vm.nodes.machine { inherit pkgs; }).services.pruneguard.enable
        && pkgX86.tests.vm.name == "pruneguard";
      detail = "";
    }
  ];

  # ------------------------------------------------------------------------------------------
  # Unit files rendered as NixOS writes them: lists as repeated keys, booleans as true/false.

  renderValue =
    v:
    if isBool v then
      (if v then "true" else "false")
    else
      toString v;
  renderSection =
    attrs:
    concatStringsSep "" (
      map (
        n:
        let
          v = attrs.${n};
        in
        if isList v then concatStringsSep "" (map (x: "${n}=${renderValue x}\n") v) else "${n}=${renderValue v}\n"
      ) (attrNames attrs)
    );

  serviceUnit = ''
    # Rendered by tests/packaging/eval.nix from nix/module.nix's systemd.services.pruneguard
    [Unit]
    Description=${svc.description}
    ${renderSection {
      Documentation = svc.documentation;
      After = svc.after;
      Requires = svc.requires;
      X-RestartIfChanged = svc.restartIfChanged;
    }}${renderSection svc.unitConfig}
    [Service]
    ${renderSection sc}'';

  timerUnit = ''
    # Rendered by tests/packaging/eval.nix from nix/module.nix's systemd.timers.pruneguard
    [Unit]
    Description=${timer.description}

    [Timer]
    ${renderSection timer.timerConfig}
    [Install]
    ${renderSection { WantedBy = timer.wantedBy; }}'';

  results = map (
    c:
    let
      r = tryEval (builtins.deepSeq c.ok c.ok);
      ok = r.success && r.value == true;
    in
    {
      inherit (c) name;
      inherit ok;
      detail = if r.success then c.detail else "evaluation failed (run nix eval with --show-trace on this check)";
    }
  ) checks;
  failed = filter (r: !r.ok) results;
in
{
  inherit
    results
    serviceUnit
    timerUnit
    buildCheck
    ;
  ok = failed == [ ];
  report =
    concatStringsSep "" (
      map (r: (if r.ok then "ok      " else "FAILED  ") + r.name + (if r.ok || r.detail == "" then "" else "\n        ${r.detail}") + "\n") results
    )
    + "nix eval checks: ${toString (length results - length failed)} ok, ${toString (length failed)} failing\n";
  generatedToml = configFile.unchecked.text;
}
