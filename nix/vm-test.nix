# NixOS VM test of services.pruneguard: the flake's checks.<system>.vm.
#
#   nix build .#checks.x86_64-linux.vm -L      (or: nix flake check -L)
#
# A VM with Docker and services.pruneguard, its gates opened on purpose (disk threshold 0 %,
# min_age 0s, quiet period 0s). One tag is loaded twice with different contents, so the first
# image becomes dangling. The test checks the timer is installed, that a live lock file makes
# the run skip, that `pruneguard plan` deletes nothing, and that the hardened service (dynamic
# user in the docker group) removes the dangling image and keeps the tagged one.
{ pkgs, module }:

let
  # Two images under one name:tag. dockerTools sets Created to 1970-01-01, so both are "old"
  # on the classic store's age basis (the image's Created) even with a real min_age.
  mkImage =
    version:
    pkgs.dockerTools.buildImage {
      name = "pruneguard-vmtest";
      tag = "latest";
      copyToRoot = pkgs.writeTextDir "etc/pruneguard-vmtest" version;
    };
  imageOld = mkImage "old";
  imageNew = mkImage "new";

  metricsFile = "/var/lib/pruneguard-metrics/pruneguard.prom";
in
pkgs.testers.runNixOSTest {
  name = "pruneguard";

  nodes.machine =
    { pkgs, ... }:
    {
      imports = [ module ];

      virtualisation.docker.enable = true;
      virtualisation.diskSize = 2048;
      environment.systemPackages = [ pkgs.jq ];

      services.pruneguard = {
        enable = true;
        settings = {
          policy.min_age = "0s";
          gates = {
            disk.threshold_percent = 0;
            quiet.period = "0s";
            workload.lock_files = [ "/run/ci/run-app.lock" ];
          };
          output.metrics_file = metricsFile;
        };
      };
    };

  testScript = ''
    import json


    def same_image(a, b):
        a, b = a.split(":")[-1], b.split(":")[-1]
        return a.startswith(b) or b.startswith(a)


    def last_report():
        return json.loads(machine.succeed("cat /var/lib/pruneguard/last-run.json"))


    machine.wait_for_unit("docker.service")
    machine.wait_for_unit("timers.target")

    with subtest("the timer is installed, docker's autoPrune is not"):
        machine.succeed("systemctl list-timers --all | grep pruneguard")
        machine.succeed("systemctl cat pruneguard.timer | grep -x 'OnCalendar=daily'")
        machine.succeed("systemctl cat pruneguard.timer | grep -x 'Persistent=true'")
        machine.succeed("systemctl cat pruneguard.timer | grep -x 'RandomizedDelaySec=1h'")
        machine.succeed("systemctl show -p DynamicUser pruneguard.service | grep -x DynamicUser=yes")
        machine.fail("systemctl cat docker-prune.timer")

    with subtest("one tagged image and one dangling image"):
        machine.succeed("docker load --input ${imageOld}")
        old_id = machine.succeed("docker image inspect --format '{{.Id}}' pruneguard-vmtest:latest").strip()
        machine.succeed("docker load --input ${imageNew}")
        new_id = machine.succeed("docker image inspect --format '{{.Id}}' pruneguard-vmtest:latest").strip()
        assert old_id != new_id, f"both loads gave {old_id}"
        dangling = machine.succeed("docker image ls --filter dangling=true --quiet --no-trunc")
        assert old_id in dangling, f"{old_id} is not dangling: {dangling!r}"

    with subtest("a live lock file closes the workload gate: the run skips and exits 0"):
        machine.succeed("mkdir -p /run/ci && touch /run/ci/run-app.lock")
        machine.succeed("systemctl start pruneguard.service")
        machine.succeed(f"docker image inspect {old_id}")
        report = last_report()
        assert report["decision"] == "skipped", report
        workload = [g for g in report["gates"] if g["name"] == "workload"]
        assert workload and not workload[0]["open"], report["gates"]
        machine.succeed("rm /run/ci/run-app.lock")

    with subtest("plan (same config, via /etc/pruneguard/config.toml) lists it and deletes nothing"):
        plan = json.loads(machine.succeed("pruneguard plan --output json"))
        assert plan["dry_run"], plan
        assert any(same_image(c["id"], old_id) for c in plan["candidates"]), plan["candidates"]
        assert not any(same_image(c["id"], new_id) for c in plan["candidates"]), plan["candidates"]
        machine.succeed(f"docker image inspect {old_id}")

    with subtest("the service removes the dangling image and keeps the tagged one"):
        machine.succeed("systemctl start pruneguard.service")
        machine.fail(f"docker image inspect {old_id}")
        machine.succeed("docker image inspect pruneguard-vmtest:latest")
        kept = machine.succeed("docker image inspect --format '{{.Id}}' pruneguard-vmtest:latest").strip()
        assert kept == new_id, f"{kept} != {new_id}"
        report = last_report()
        assert report["decision"] == "pruned", report
        assert all(g["open"] for g in report["gates"]), report["gates"]
        machine.succeed("grep -x 'pruneguard_last_run_success 1' ${metricsFile}")
        machine.succeed("grep -x 'pruneguard_images_removed 1' ${metricsFile}")
        machine.succeed("pruneguard status")

    with subtest("a second run finds nothing to do"):
        machine.succeed("systemctl start pruneguard.service")
        assert last_report()["decision"] == "nothing_to_do", last_report()
        machine.succeed("docker image inspect pruneguard-vmtest:latest")
  '';
}
