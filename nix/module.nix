# NixOS module: services.pruneguard
#
# A daily timer plus a hardened oneshot that runs `pruneguard run --config <generated TOML>`.
# Modelled on nixpkgs' services.docuum (nixos/modules/services/admin/docuum.nix): a transient
# user (DynamicUser) whose only privilege is membership of the `docker` group, a StateDirectory,
# and an ExecStart built with utils.escapeSystemdExecArgs.
#
# Structural checks of this file (without nixpkgs) live in tests/packaging/; the full check is
# the flake's VM test, nix/vm-test.nix (`nix flake check` / `nix build .#checks.<system>.vm`).
{
  config,
  lib,
  pkgs,
  utils,
  ...
}:

let
  cfg = config.services.pruneguard;
  settingsFormat = pkgs.formats.toml { };
  settingsFile = settingsFormat.generate "pruneguard-unchecked.toml" cfg.settings;

  # The settings, validated at build time with the binary's own rules (`config --check`: types,
  # ranges, globs, path syntax; nothing about the build machine), so that a typo fails the
  # system build instead of the 03:00 run. Skipped only when the build cannot run the binary
  # (cross compilation).
  canRunPackage = pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform;
  configFile =
    pkgs.runCommand "pruneguard.toml"
      {
        preferLocalBuild = true;
        passthru.unchecked = settingsFile;
      }
      ''
        ${lib.optionalString canRunPackage "${getExe cfg.package} config --check --config ${settingsFile}"}
        cp ${settingsFile} $out
      '';

  inherit (lib)
    any
    attrByPath
    getExe
    hasPrefix
    literalExpression
    mkEnableOption
    mkIf
    mkOption
    mkPackageOption
    optional
    types
    ;

  # The default of the binary and the directory systemd creates for StateDirectory=pruneguard.
  defaultStateDir = "/var/lib/pruneguard";

  setting = path: default: attrByPath path default cfg.settings;
  metricsFile = setting [ "output" "metrics_file" ] null;
  stateDir = setting [ "state" "dir" ] defaultStateDir;
  lockFiles = setting [ "gates" "workload" "lock_files" ] [ ];
  diskPath = setting [ "gates" "disk" "path" ] "auto";
  dockerDataRoot =
    attrByPath [ "daemon" "settings" "data-root" ] "/var/lib/docker"
      config.virtualisation.docker;

  isUnder = dir: path: path == dir || hasPrefix "${dir}/" path;
  anyUnder = dirs: paths: any (path: any (dir: isUnder dir path) dirs) paths;

  # PrivateTmp= gives the service its own empty /tmp and /var/tmp. A workload lock file there
  # would then never be seen: "absent" means "no deploy is live", the workload gate would open
  # during a deploy. So PrivateTmp is dropped when a configured lock file lives there.
  lockFileInTmp = anyUnder [
    "/tmp"
    "/var/tmp"
  ] lockFiles;

  # ProtectHome=yes makes /home, /root and /run/user inaccessible. A lock file there could not
  # be read (the workload gate stays closed: safe, but pruning never happens) and a Docker data
  # root there could not be measured. Those hosts get ProtectHome=read-only instead.
  needsHome =
    anyUnder
      [
        "/home"
        "/root"
        "/run/user"
      ]
      (lockFiles ++ [ dockerDataRoot ] ++ optional (diskPath != "auto") diskPath ++ tlsDirs);

  # TLS files (engine.tls_cert_path, gates.swarm.manager_tls_cert_path): read by the service,
  # so they must be reachable in its sandbox (and readable by the docker group: the user is
  # transient).
  tlsDirs = builtins.filter (dir: dir != null) [
    (setting [ "engine" "tls_cert_path" ] null)
    (setting [ "gates" "swarm" "manager_tls_cert_path" ] null)
  ];

  # A daemon or a swarm manager reached over the network (tcp://, http://, https://) needs the
  # network namespace and the IP address families; a unix socket needs neither. Without them
  # the manager could never be asked and every run's swarm gate would stay closed.
  isNetworkHost = url: builtins.isString url && builtins.match "(tcp|http|https)://.*" (lib.toLower url) != null;
  needsNetwork = any isNetworkHost [
    (setting [ "engine" "host" ] null)
    (setting [ "gates" "swarm" "manager_host" ] null)
  ];

  metricsDir = if metricsFile == null then null else dirOf metricsFile;

  # Every path setting, for the assertion that each is absolute: a relative one would become a
  # tmpfiles rule `d . …` and ReadWritePaths=-. (pruneguard itself refuses them at run time).
  isAbsolute = path: builtins.isString path && hasPrefix "/" path;
  pathSettings =
    [
      {
        key = "state.dir";
        value = stateDir;
      }
    ]
    ++ optional (metricsFile != null) {
      key = "output.metrics_file";
      value = metricsFile;
    }
    ++ optional (diskPath != "auto") {
      key = "gates.disk.path";
      value = diskPath;
    }
    ++ map (lockFile: {
      key = "gates.workload.lock_files";
      value = lockFile;
    }) lockFiles
    ++ optional (setting [ "engine" "tls_cert_path" ] null != null) {
      key = "engine.tls_cert_path";
      value = setting [ "engine" "tls_cert_path" ] null;
    }
    ++ optional (setting [ "gates" "swarm" "manager_tls_cert_path" ] null != null) {
      key = "gates.swarm.manager_tls_cert_path";
      value = setting [ "gates" "swarm" "manager_tls_cert_path" ] null;
    };
  relativePaths = builtins.filter (setting: !(isAbsolute setting.value)) pathSettings;
  customStateDir = stateDir != defaultStateDir;

  execArgs = [
    (getExe cfg.package)
    "run"
    "--config"
    configFile
  ]
  ++ cfg.extraArgs;
in
{
  options.services.pruneguard = {
    enable = mkEnableOption "pruneguard, gated and conservative pruning of dangling Docker images on a timer";

    package = mkPackageOption pkgs "pruneguard" { };

    settings = mkOption {
      type = settingsFormat.type;
      default = { };
      example = literalExpression ''
        {
          policy.min_age = "24h";
          gates = {
            disk.threshold_percent = 80;
            quiet.period = "10m";
            workload = {
              stacks = [ "run-app*" ];
              labels = [ "ci.role=run-app" ];
              lock_files = [ "/run/ci/run-app.lock" ];
            };
            swarm.stuck_after = "30m";
          };
          output.metrics_file = "/var/lib/pruneguard-metrics/pruneguard.prom";
        }
      '';
      description = ''
        pruneguard's configuration, rendered to TOML and passed to the service as
        `--config`. Every key of `/etc/pruneguard/config.toml` can be set here (tables
        `policy`, `gates`, `gates.disk`, `gates.quiet`, `gates.workload`, `gates.swarm`,
        `state`, `output`); a key left out keeps pruneguard's own default, which is the
        conservative policy: only dangling images at least 24h old, only when the Docker data
        root's filesystem is at least 80 % full, no configured workload is live, no swarm
        service is converging and no image was pulled, loaded, imported or tagged (nor a
        container created) in the last 10 minutes. The rendered file is checked when the
        system is built, with `pruneguard config --check`: an unknown key, a value of the
        wrong type, a bad duration, glob or label selector, an out-of-range value or a
        relative path fails the build, naming the key. Every path must be absolute.

        The same file is linked to `/etc/pruneguard/config.toml`, so `pruneguard plan`,
        `pruneguard doctor` and `pruneguard config` run by hand see the timer's settings.

        When `output.metrics_file` is set, its directory is created (mode 0775, group
        `docker`, the service's only stable group) and made writable in the sandbox. Point
        node_exporter's textfile collector at that directory. It must not be inside
        /var/lib/pruneguard (private to the service's transient user). A `state.dir` other
        than /var/lib/pruneguard is created the same way (mode 0770).

        Lock files (`gates.workload.lock_files`) must be on paths the service can stat: a lock
        file under /tmp or /var/tmp turns PrivateTmp off, one under /home, /root or /run/user
        turns ProtectHome to read-only, and its parent directories must be searchable (o+x)
        by an unprivileged user, or the workload gate reports it unreadable and stays closed.
      '';
    };

    startAt = mkOption {
      type = with types; either singleLineStr (listOf str);
      default = "daily";
      example = "*-*-* 03:30:00";
      description = ''
        When to run, as a systemd calendar event (see {manpage}`systemd.time(7)`); the
        timer's `OnCalendar=`.
      '';
    };

    persistent = mkOption {
      type = types.bool;
      default = true;
      example = false;
      description = ''
        The timer's `Persistent=`: when true, a run missed while the machine was off starts
        soon after the next boot.
      '';
    };

    randomizedDelaySec = mkOption {
      type = types.singleLineStr;
      default = "1h";
      example = "0";
      description = ''
        The timer's `RandomizedDelaySec=`: a random delay, up to this long, added to every
        start, so that a fleet of hosts does not prune (and put load on its disks) at the
        same moment. A systemd time span such as `45min` or `1h`; `0` disables it.
      '';
    };

    extraArgs = mkOption {
      type = with types; listOf str;
      default = [ ];
      example = [
        "--wait-for-gates"
        "2h"
        "--output"
        "json"
      ];
      description = ''
        Extra command-line arguments appended to `pruneguard run --config <file>`; flags
        take precedence over the config file. Each element is one argument, escaped for
        systemd (`%` and `$` are taken literally). Prefer {option}`settings` for policy:
        the sandbox adjustments for lock files and the metrics directory are derived from
        {option}`settings` only, not from flags given here.
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = config.virtualisation.docker.enable;
        message = ''
          services.pruneguard requires virtualisation.docker.enable = true: pruneguard prunes
          the local Docker daemon's images through its socket.
        '';
      }
      {
        assertion = !(config.virtualisation.docker.autoPrune.enable or false);
        message = ''
          services.pruneguard and virtualisation.docker.autoPrune are both enabled. autoPrune
          runs `docker system prune` on its own timer, with no gates: it deletes during
          deploys, and with --all it evicts in-use base images, so the next deploy re-pulls
          them cold and a rate-limited registry (Docker Hub) starts refusing pulls. That is
          what pruneguard replaces; set virtualisation.docker.autoPrune.enable = false.
        '';
      }
      {
        assertion = relativePaths == [ ];
        message = ''
          services.pruneguard.settings: every path must be absolute (start with /), but
          ${lib.concatMapStringsSep ", " (setting: "${setting.key} = ${builtins.toJSON setting.value}") relativePaths}
          is not. pruneguard refuses relative paths, and the sandbox (tmpfiles rules,
          ReadWritePaths) cannot be derived from one. Write it from /.
        '';
      }
      {
        assertion = metricsDir == null || !(isUnder defaultStateDir metricsDir);
        message = ''
          services.pruneguard.settings.output.metrics_file is inside ${defaultStateDir}. With
          DynamicUser that directory lives under /var/lib/private (mode 0700), where
          node_exporter cannot read it. Use a directory of its own, e.g.
          /var/lib/pruneguard-metrics/pruneguard.prom, and point node_exporter's textfile
          collector there.
        '';
      }
    ];

    # For `pruneguard doctor`, `plan`, `status` by hand.
    environment.systemPackages = [ cfg.package ];
    environment.etc."pruneguard/config.toml".source = configFile;

    # The service's user is transient; `docker` is its only stable group, so directories it
    # must write outside its StateDirectory belong to that group. (Members of `docker` are
    # root-equivalent already: this grants them nothing new.)
    systemd.tmpfiles.rules =
      optional (metricsDir != null) "d ${metricsDir} 0775 root docker - -"
      ++ optional customStateDir "d ${stateDir} 0770 root docker - -";

    systemd.services.pruneguard = {
      description = "pruneguard: remove old dangling Docker images when every gate is open";
      documentation = [ "man:pruneguard(1)" ];
      after = [
        "docker.service"
        "docker.socket"
      ];
      requires = [ "docker.service" ];
      # Started by the timer only; a configuration switch must neither start nor stop a run.
      restartIfChanged = false;
      unitConfig.X-StopOnRemoval = false;

      serviceConfig = {
        Type = "oneshot";
        ExecStart = utils.escapeSystemdExecArgs execArgs;

        # Identity: a transient user whose only privilege is the docker group, i.e. access to
        # /run/docker.sock. (The docker group is root-equivalent; the sandbox below limits what
        # the process itself can do, not what it can ask the daemon for.)
        DynamicUser = true;
        SupplementaryGroups = [ "docker" ];
        StateDirectory = "pruneguard";
        # Files it creates are readable by others: node_exporter reads the metrics file.
        UMask = "0022";

        # Filesystem: everything read-only except the state directory (and the metrics
        # directory). Reading /proc/self/mountinfo, statvfs() of the data root and stat() of
        # lock files under /run keep working: ProtectSystem=strict leaves them readable.
        ProtectSystem = "strict";
        ReadWritePaths =
          optional (metricsDir != null) "-${metricsDir}"
          ++ optional customStateDir "-${stateDir}";
        ProtectHome = if needsHome then "read-only" else true;
        PrivateTmp = !lockFileInTmp;
        PrivateDevices = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectProc = "invisible";
        PrivateMounts = true;

        # Privileges and kernel surface.
        NoNewPrivileges = true;
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        RestrictSUIDSGID = true;
        RestrictNamespaces = true;
        RestrictRealtime = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        RemoveIPC = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [
          "@system-service"
          "~@privileged"
          "~@resources"
        ];
        SystemCallErrorNumber = "EPERM";
        # The Docker socket is a unix socket, reachable by path from a private network
        # namespace. A daemon or a swarm manager at tcp:// or https:// in the settings gets
        # the network (needsNetwork); a `-H tcp://…` in extraArgs is not seen here and needs
        # PrivateNetwork = false and AF_INET/AF_INET6 set by hand.
        PrivateNetwork = !needsNetwork;
        RestrictAddressFamilies = [
          "AF_UNIX"
        ]
        ++ lib.optionals needsNetwork [
          "AF_INET"
          "AF_INET6"
        ];
      };
    };

    systemd.timers.pruneguard = {
      description = "Run pruneguard on a schedule";
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = cfg.startAt;
        Persistent = cfg.persistent;
        RandomizedDelaySec = cfg.randomizedDelaySec;
      };
    };
  };
}
