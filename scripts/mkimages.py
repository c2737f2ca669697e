#!/usr/bin/env python3
"""Generate a `docker save`-format archive of N distinct images, without any registry.

The archive uses the legacy layout that `docker load` accepts (dockerd 20.10 and later):

    manifest.json            [{"Config": "<id>.json", "RepoTags": [...], "Layers": [...]}, ...]
    <id>.json                the image config; the image ID is sha256 of these exact bytes
    <diffid>/layer.tar       an uncompressed layer; its sha256 is the config's rootfs diff_id
    <diffid>/VERSION, json   v1 compatibility files

Every image gets a distinct config (so a distinct ID). All N are listed under the same RepoTag,
so after `docker load` the last one holds the tag and the other N-1 are dangling; `--no-tag`
leaves all N dangling.

Usage:
    mkimages.py OUT.tar (--tag NAME:TAG | --no-tag) [--count N]
                [--created RFC3339 | --age SECONDS] [--layer-bytes BYTES] [--busybox]
                [--label k=v ...] [--seed S]

Prints the image IDs (sha256:<64 hex>), one per line, in manifest order (= load order; with a
tag, the last line is the tagged image).

Layers: without --layer-bytes all images share one tiny layer (1000 images load fast). With
--busybox they share a layer holding /bin/busybox (from Debian's busybox-static) and a /bin/sh
symlink, and the default Cmd is ["/bin/busybox", "sleep", "3600"], so containers really run.
--layer-bytes B adds to every image its own layer with B bytes of (seeded) random data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import os
import random
import sys
import tarfile
import tempfile

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
# A fixed timestamp for every tar member, so equal content gives equal layer digests.
EPOCH = 946684800  # 2000-01-01T00:00:00Z
CHUNK = 1 << 20


def die(msg: str) -> None:
    sys.stderr.write(f"mkimages.py: {msg}\n")
    sys.exit(2)


def parse_created(value: str) -> str:
    """Validate an RFC 3339 timestamp and return it normalised to UTC with a trailing Z."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        die(f"--created: not an RFC 3339 timestamp: {value!r}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return format_time(when)


def format_time(when: dt.datetime) -> str:
    when = when.astimezone(dt.timezone.utc)
    if when.microsecond:
        return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def tar_info(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


class HashingWriter(io.RawIOBase):
    """A write-only file that hashes what passes through it."""

    def __init__(self, fileobj):
        super().__init__()
        self.fileobj = fileobj
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.sha.update(data)
        self.fileobj.write(data)
        self.size += len(data)
        return len(data)


class RandomReader(io.RawIOBase):
    """`size` bytes of deterministic pseudo-random data, read in chunks."""

    def __init__(self, rng: random.Random, size: int):
        super().__init__()
        self.rng = rng
        self.left = size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        if n is None or n < 0 or n > self.left:
            n = self.left
        n = min(n, CHUNK)
        self.left -= n
        return self.rng.randbytes(n)


def build_layer(tmpdir: str, members) -> tuple[str, str, int]:
    """Write one layer tar to a temp file. Returns (path, diff_id hex, size)."""
    fd, path = tempfile.mkstemp(dir=tmpdir, suffix=".tar")
    with os.fdopen(fd, "wb") as raw:
        hasher = HashingWriter(raw)
        with tarfile.open(fileobj=hasher, mode="w|", format=tarfile.GNU_FORMAT) as tar:
            for info, data in members:
                tar.addfile(info, data)
    return path, hasher.sha.hexdigest(), hasher.size


def tiny_layer_members():
    body = b"pruneguard test image layer\n"
    yield tar_info("pgsb", tarfile.REGTYPE, 0o644, len(body)), io.BytesIO(body)


def busybox_members(busybox_path: str):
    with open(busybox_path, "rb") as fh:
        body = fh.read()
    # A dynamically linked busybox would not run in an image that has no libc.
    if b"/lib64/ld-linux" in body[:4096] or b"/lib/ld-linux" in body[:4096]:
        die(f"{busybox_path} is dynamically linked; install Debian's busybox-static")
    yield tar_info("bin", tarfile.DIRTYPE, 0o755), None
    yield tar_info("bin/busybox", tarfile.REGTYPE, 0o755, len(body)), io.BytesIO(body)
    link = tar_info("bin/sh", tarfile.SYMTYPE, 0o777)
    link.linkname = "busybox"
    yield link, None
    yield tar_info("tmp", tarfile.DIRTYPE, 0o1777), None
    yield tar_info("pgsb", tarfile.REGTYPE, 0o644, 13), io.BytesIO(b"pruneguard b\n")


def random_layer_members(rng: random.Random, size: int):
    yield tar_info("pgsb-data.bin", tarfile.REGTYPE, 0o644, size), RandomReader(rng, size)


def find_busybox() -> str:
    for path in BUSYBOX_CANDIDATES:
        if os.path.isfile(path):
            return path
    die("--busybox: /bin/busybox not found; install Debian's busybox-static")
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Generate a docker-save archive of N distinct images (no registry needed).",
    )
    parser.add_argument("out", metavar="OUT.tar")
    tags = parser.add_mutually_exclusive_group(required=True)
    tags.add_argument("--tag", help="NAME:TAG that every image is listed under (last one keeps it)")
    tags.add_argument("--no-tag", action="store_true", help="list no tags: all N are dangling")
    parser.add_argument("--count", type=int, default=1)
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--created", help="RFC 3339 creation time of every image (default: now)")
    when.add_argument("--age", type=float, help="creation time = now - SECONDS")
    parser.add_argument("--layer-bytes", type=int, default=0,
                        help="give every image its own random layer of this many bytes")
    parser.add_argument("--busybox", action="store_true",
                        help="add /bin/busybox and /bin/sh; Cmd busybox sleep 3600")
    parser.add_argument("--label", action="append", default=[], metavar="K=V")
    parser.add_argument("--seed", help="seed for distinct configs and random layers "
                                       "(default: random, so every call makes new IDs)")
    args = parser.parse_args()

    if args.count < 1:
        die("--count must be at least 1")
    if args.layer_bytes < 0:
        die("--layer-bytes must not be negative")
    if args.tag is not None:
        if not args.tag or "@" in args.tag or any(c.isspace() for c in args.tag):
            die(f"--tag must be NAME:TAG, got {args.tag!r}")
        if ":" not in args.tag.rsplit("/", 1)[-1]:
            args.tag += ":latest"  # what docker assumes for a bare name
    labels = {}
    for item in args.label:
        key, sep, value = item.partition("=")
        if not sep or not key:
            die(f"--label: expected k=v, got {item!r}")
        labels[key] = value
    if args.created is not None:
        created = parse_created(args.created)
    else:
        now = dt.datetime.now(dt.timezone.utc)
        if args.age is not None:
            now -= dt.timedelta(seconds=args.age)
        created = format_time(now.replace(microsecond=0))
    seed = args.seed if args.seed is not None else os.urandom(8).hex()

    out_dir = os.path.dirname(os.path.abspath(args.out))
    cmd = ["/bin/busybox", "sleep", "3600"] if args.busybox else ["/bin/sh"]
    ids = []
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".mkimages.") as tmpdir, \
            tarfile.open(args.out, mode="w", format=tarfile.GNU_FORMAT) as archive:
        written = set()

        def add_file(name: str, data: bytes) -> None:
            archive.addfile(tar_info(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))

        def add_layer(path: str, diff: str, size: int, parent: str | None) -> str:
            name = f"{diff}/layer.tar"
            if diff not in written:
                written.add(diff)
                archive.addfile(tar_info(diff, tarfile.DIRTYPE, 0o755))
                add_file(f"{diff}/VERSION", b"1.0")
                v1 = {"id": diff, "created": created}
                if parent:
                    v1["parent"] = parent
                add_file(f"{diff}/json", json.dumps(v1).encode())
                with open(path, "rb") as fh:
                    archive.addfile(tar_info(name, tarfile.REGTYPE, 0o644, size), fh)
            os.unlink(path)
            return name

        base = build_layer(tmpdir, busybox_members(find_busybox()) if args.busybox
                           else tiny_layer_members())
        base_diff = base[1]
        base_name = None
        manifest = []
        for index in range(args.count):
            if base_name is None:
                base_name = add_layer(*base, None)
            layers = [base_name]
            diff_ids = [f"sha256:{base_diff}"]
            history = [{"created": created, "created_by": "mkimages.py base layer"}]
            if args.layer_bytes:
                rng = random.Random(f"{seed}:{index}")
                path, diff, size = build_layer(tmpdir, random_layer_members(rng, args.layer_bytes))
                layers.append(add_layer(path, diff, size, base_diff))
                diff_ids.append(f"sha256:{diff}")
                history.append({"created": created,
                                "created_by": f"mkimages.py random layer {args.layer_bytes} bytes"})
            history.append({"created": created, "empty_layer": True,
                            "created_by": f"mkimages.py seed={seed} index={index}"})
            config = {
                "architecture": "amd64",
                "os": "linux",
                "created": created,
                "comment": f"pruneguard test image seed={seed} index={index}",
                "config": {
                    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                    "Cmd": cmd,
                    "Labels": labels or None,
                },
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
                "history": history,
            }
            blob = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
            digest = hashlib.sha256(blob).hexdigest()
            add_file(f"{digest}.json", blob)
            manifest.append({
                "Config": f"{digest}.json",
                "RepoTags": [args.tag] if args.tag else None,
                "Layers": layers,
            })
            ids.append(f"sha256:{digest}")
        add_file("manifest.json", json.dumps(manifest).encode())
    sys.stdout.write("".join(f"{i}\n" for i in ids))


if __name__ == "__main__":
    main()
