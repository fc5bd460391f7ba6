#!/usr/bin/env python3
"""Builds the test images as OCI image layouts, offline and deterministically
(fixed times, sorted entries, numeric root ownership), from Debian's busybox-static.

  fixtures.py OUTDIR

Images (OUTDIR/<name>/ is an OCI layout with one manifest tagged "latest"):
  busybox    one layer: /bin/busybox, an applet symlink per command, /etc/passwd, /etc/group
  layers     three layers: L2 whites out /data/deleteme.txt, L3 makes /opq opaque
  traversal  a layer whose tar has an entry "../escaped" (must be refused)
  symlinkesc a layer with a symlink to /tmp, then a file written through it (must be refused)
  badblob    one layer of its own (test-registry.sh corrupts it in the registry's storage)
"""
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

MTIME = 1546300800  # 2019-01-01T00:00:00Z
CREATED = "2019-01-01T00:00:00Z"
BUSYBOX = "/bin/busybox"


def add_dir(tar, path, mode=0o755):
    ti = tarfile.TarInfo(path)
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, mode, MTIME
    tar.addfile(ti)


def add_file(tar, path, data, mode=0o644):
    ti = tarfile.TarInfo(path)
    ti.size, ti.mode, ti.mtime = len(data), mode, MTIME
    tar.addfile(ti, io.BytesIO(data))


def add_symlink(tar, path, target):
    ti = tarfile.TarInfo(path)
    ti.type, ti.linkname, ti.mode, ti.mtime = tarfile.SYMTYPE, target, 0o777, MTIME
    tar.addfile(ti)


def layer(build):
    """Runs build(tar) and returns (gzipped bytes, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    data = raw.getvalue()
    diff_id = "sha256:" + hashlib.sha256(data).hexdigest()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0) as g:
        g.write(data)
    return gz.getvalue(), diff_id


def busybox_rootfs(tar):
    with open(BUSYBOX, "rb") as f:
        binary = f.read()
    add_dir(tar, "bin")
    add_file(tar, "bin/busybox", binary, 0o755)
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for a in sorted(set(applets)):
        if a != "busybox":
            add_symlink(tar, "bin/" + a, "/bin/busybox")
    add_dir(tar, "etc")
    add_file(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n")
    add_file(tar, "etc/group", b"root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n")
    for d in ("root", "tmp", "home", "usr", "var"):
        add_dir(tar, d, 0o1777 if d == "tmp" else 0o755)


def write_blob(out, data):
    digest = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(out, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def image(out, layers, cmd, history_names):
    os.makedirs(out, exist_ok=True)
    descs, diff_ids = [], []
    for gz, diff_id in layers:
        d, n = write_blob(out, gz)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n})
        diff_ids.append(diff_id)
    config = {
        "created": CREATED,
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": cmd},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": CREATED, "created_by": "berth fixture: " + h} for h in history_names],
    }
    cd, cn = write_blob(out, json.dumps(config, sort_keys=True, separators=(",", ":")).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
        "layers": descs,
    }
    md, mn = write_blob(out, json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
                       "annotations": {"org.opencontainers.image.ref.name": "latest"}}],
    }
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


def main():
    out = sys.argv[1]
    base = layer(busybox_rootfs)
    image(os.path.join(out, "busybox"), [base], ["sh"], ["busybox"])

    def l1(tar):
        busybox_rootfs(tar)
        add_dir(tar, "data")
        add_file(tar, "data/keep.txt", b"keep\n")
        add_file(tar, "data/deleteme.txt", b"delete\n")
        add_file(tar, "data/changed.txt", b"layer1\n")
        add_dir(tar, "opq")
        add_file(tar, "opq/old1.txt", b"old1\n")
        add_dir(tar, "opq/sub")
        add_file(tar, "opq/sub/old2.txt", b"old2\n")

    def l2(tar):
        add_dir(tar, "data")
        add_file(tar, "data/.wh.deleteme.txt", b"")
        add_file(tar, "data/changed.txt", b"layer2\n")
        add_file(tar, "data/added2.txt", b"added2\n")

    def l3(tar):
        add_dir(tar, "opq")
        add_file(tar, "opq/.wh..wh..opq", b"")
        add_file(tar, "opq/new.txt", b"new\n")

    image(os.path.join(out, "layers"), [layer(l1), layer(l2), layer(l3)], ["sh"], ["layers-1", "layers-2", "layers-3"])

    # 125 layers: busybox, then one small file per layer, each also rewriting
    # deep/top.txt. dockerd needs short lowerdir links to mount such an image.
    deep = [base]
    for n in range(1, 125):
        def one(tar, n=n):
            add_dir(tar, "deep")
            add_file(tar, "deep/%d.txt" % n, b"%d\n" % n)
            add_file(tar, "deep/top.txt", b"%d\n" % n)
        deep.append(layer(one))
    image(os.path.join(out, "deep"), deep, ["sh"], ["busybox"] + ["deep-%d" % n for n in range(1, 125)])

    def escape(tar):
        add_file(tar, "../escaped-by-berth-test", b"outside\n")

    image(os.path.join(out, "traversal"), [layer(escape)], ["sh"], ["traversal"])

    def through_symlink(tar):
        add_symlink(tar, "link", "/tmp")
        add_file(tar, "link/escaped-by-berth-test", b"outside\n")

    image(os.path.join(out, "symlinkesc"), [layer(through_symlink)], ["sh"], ["symlink escape"])

    def own(tar):
        add_file(tar, "only-in-badblob.txt", b"this layer's blob is corrupted in the registry\n" * 64)

    image(os.path.join(out, "badblob"), [layer(own)], ["sh"], ["badblob"])


if __name__ == "__main__":
    main()
