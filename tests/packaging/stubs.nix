# Minimal stand-ins for nixpkgs' `lib`, `pkgs` and NixOS' `utils`, just enough to evaluate
# nix/module.nix, nix/package.nix, nix/vm-test.nix and flake.nix without a nixpkgs checkout
# (none can be downloaded where these checks run).
#
# Each function here follows the documented behaviour of its nixpkgs namesake for the
# arguments our files pass; none of nixpkgs' code is copied. This is a structural check:
# it catches typos, missing attributes, wrong option types and wrong unit directives, but not
# differences between these stand-ins and the real module system. The flake's VM test
# (nix/vm-test.nix, `nix flake check`) is the full check.
{
  # What the stub package's outPath is: a directory holding bin/pruneguard, so that a unit
  # rendered from the module's output passes `systemd-analyze verify`.
  packageOut ? "/nix/store/00000000000000000000000000000000-pruneguard-0.1.0",
}:

let
  inherit (builtins)
    all
    attrNames
    concatStringsSep
    elem
    filter
    foldl'
    head
    isAttrs
    isBool
    isFloat
    isInt
    isList
    isPath
    isString
    length
    mapAttrs
    replaceStrings
    stringLength
    substring
    tail
    toJSON
    ;

  mkType = name: check: {
    _type = "option-type";
    inherit name check;
    description = name;
  };

  isDerivation = x: isAttrs x && (x.type or null) == "derivation";

  # A value the TOML format can represent: no null, no functions; tables and arrays of them.
  isTomlValue =
    v:
    isBool v
    || isInt v
    || isFloat v
    || isString v
    || isPath v
    || (isList v && all isTomlValue v)
    || (isAttrs v && !(isDerivation v) && all (n: isTomlValue v.${n}) (attrNames v));

  types = {
    bool = mkType "bool" isBool;
    int = mkType "int" isInt;
    str = mkType "str" isString;
    singleLineStr = mkType "singleLineStr" (x: isString x && !(hasInfix "\n" x));
    package = mkType "package" (x: isDerivation x || isPath x);
    attrs = mkType "attrs" isAttrs;
    anything = mkType "anything" (_: true);
    listOf = t: mkType "listOf ${t.name}" (x: isList x && all t.check x);
    attrsOf = t: mkType "attrsOf ${t.name}" (x: isAttrs x && all (n: t.check x.${n}) (attrNames x));
    nullOr = t: mkType "nullOr ${t.name}" (x: x == null || t.check x);
    either = a: b: mkType "${a.name} or ${b.name}" (x: a.check x || b.check x);
    enum = values: mkType "enum" (x: elem x values);
  };

  hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;
  hasSuffix =
    suffix: s:
    let
      ls = stringLength s;
      lx = stringLength suffix;
    in
    ls >= lx && substring (ls - lx) lx s == suffix;
  hasInfix =
    infix: s:
    let
      li = stringLength infix;
      go = i: i + li <= stringLength s && (substring i li s == infix || go (i + 1));
    in
    go 0;

  attrByPath =
    path: default: set:
    if path == [ ] then
      set
    else if isAttrs set && set ? ${head path} then
      attrByPath (tail path) default set.${head path}
    else
      default;

  lib = {
    inherit
      types
      hasPrefix
      hasSuffix
      hasInfix
      attrByPath
      isDerivation
      ;
    any = builtins.any;
    all = builtins.all;
    genAttrs =
      names: f:
      builtins.listToAttrs (
        map (n: {
          name = n;
          value = f n;
        }) names
      );
    optional = cond: x: if cond then [ x ] else [ ];
    optionals = cond: xs: if cond then xs else [ ];
    optionalString = cond: s: if cond then s else "";
    toLower = builtins.replaceStrings [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ] [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
    optionalAttrs = cond: as: if cond then as else { };
    concatStringsSep = concatStringsSep;
    concatMapStringsSep = sep: f: xs: concatStringsSep sep (map f xs);

    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption = name: {
      _type = "option";
      type = types.bool;
      default = false;
      example = true;
      description = "Whether to enable ${name}.";
    };
    mkIf = condition: content: {
      _type = "if";
      inherit condition content;
    };
    mkMerge = contents: {
      _type = "merge";
      inherit contents;
    };
    mkOverride = priority: content: {
      _type = "override";
      inherit priority content;
    };
    mkDefault = content: {
      _type = "override";
      priority = 1000;
      inherit content;
    };
    mkForce = content: {
      _type = "override";
      priority = 50;
      inherit content;
    };
    literalExpression = text: {
      _type = "literalExpression";
      inherit text;
    };
    # As nixpkgs' lib.mkPackageOption for a top-level attribute name: its default is pkgs.NAME.
    mkPackageOption =
      pkgSet: name: _args:
      lib.mkOption {
        type = types.package;
        default = pkgSet.${name};
        defaultText = lib.literalExpression "pkgs.${name}";
        description = "The ${name} package to use.";
        _packageOption = name;
      };
    getExe =
      pkg:
      if pkg ? meta.mainProgram then
        "${pkg}/bin/${pkg.meta.mainProgram}"
      else
        throw "getExe: ${pkg.name or "package"} has no meta.mainProgram";

    importTOML = path: builtins.fromTOML (builtins.readFile path);
    licenses = {
      mit = "MIT";
      asl20 = "Apache-2.0";
    };
    platforms.linux = [
      "x86_64-linux"
      "aarch64-linux"
    ];
    # lib.fileset: the stand-in only records what would be included.
    fileset = {
      unions = xs: {
        _type = "fileset";
        members = xs;
      };
      maybeMissing = p: {
        _type = "fileset-maybe";
        path = p;
      };
      toSource =
        { root, fileset }:
        {
          _type = "fileset-source";
          inherit root fileset;
        };
    };
  };

  # utils.escapeSystemdExecArg(s), as documented in nixos/lib/utils.nix: each argument is
  # quoted as a JSON string (a subset of systemd's C-style quoting), `%` is doubled so systemd
  # does not expand specifiers and `$` is doubled so it does not substitute variables.
  escapeSystemdExecArg =
    arg:
    let
      s =
        if isPath arg || isDerivation arg || isInt arg || isFloat arg then
          toString arg
        else if isString arg then
          arg
        else
          throw "escapeSystemdExecArg: strings, paths, numbers and derivations only";
    in
    replaceStrings [ "%" "$" ] [ "%%" "$$" ] (toJSON s);
  utils = {
    inherit escapeSystemdExecArg;
    escapeSystemdExecArgs = args: concatStringsSep " " (map escapeSystemdExecArg args);
  };

  # A TOML rendering of settings, for display and for checking only (the real
  # pkgs.formats.toml renders with remarshal). Tables after scalars, dotted headers.
  toTOML =
    let
      scalar =
        v:
        if isBool v then
          (if v then "true" else "false")
        else if isInt v || isFloat v then
          toString v
        else if isList v then
          "[ ${concatStringsSep ", " (map scalar v)} ]"
        else
          toJSON (toString v);
      table =
        prefix: set:
        let
          names = attrNames set;
          isTable = n: isAttrs set.${n};
          scalars = filter (n: !(isTable n)) names;
          tables = filter isTable names;
          header = if prefix == "" || scalars == [ ] then "" else "[${prefix}]\n";
          body = concatStringsSep "" (map (n: "${n} = ${scalar set.${n}}\n") scalars);
        in
        header
        + body
        + concatStringsSep "" (map (n: table (if prefix == "" then n else "${prefix}.${n}") set.${n}) tables);
    in
    table "";

  fakeDrv = name: extra: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  }
  // extra;

  pkgs = {
    formats.toml =
      _:
      {
        type = mkType "TOML value" (v: isAttrs v && isTomlValue v);
        generate =
          name: value:
          assert isTomlValue value || throw "formats.toml: ${name} holds a value TOML cannot represent";
          fakeDrv name {
            inherit value;
            text = toTOML value;
          };
      };
    pruneguard = {
      type = "derivation";
      name = "pruneguard-0.1.0";
      pname = "pruneguard";
      outPath = packageOut;
      meta.mainProgram = "pruneguard";
    };
    jq = fakeDrv "jq" { };
    writeTextDir = path: text: fakeDrv "text-dir" { inherit path text; };
    dockerTools.buildImage = args: fakeDrv "docker-image-${args.name}.tar.gz" { inherit args; };
    testers.runNixOSTest = test: test // { _type = "nixos-test"; };
    # Records the script and the environment; passthru attributes land on the result, as with
    # stdenv.mkDerivation.
    runCommand =
      name: env: script:
      fakeDrv name ({ inherit script env; } // (env.passthru or { }));
    stdenv = {
      hostPlatform.system = "x86_64-linux";
      buildPlatform.canExecute = _: true;
    };
    installShellFiles = fakeDrv "install-shell-files" { };
    rustPlatform.buildRustPackage =
      args:
      fakeDrv "${args.pname}-${args.version}" (
        {
          inherit args;
          inherit (args) meta;
        }
        // (args.passthru or { })
      );
  };
in
{
  inherit
    lib
    pkgs
    utils
    toTOML
    isTomlValue
    ;
}
