#!/usr/bin/env python3
"""`docker build` (the classic builder, DOCKER_BUILDKIT=0) of a 10-step
Dockerfile, cold (`--no-cache`: every step runs) and warm (every step from
the cache), interleaved sample by sample on every endpoint given, so machine
noise hits each the same way. The base image must be there already.

    docker-compat/bench/build.py unix:///var/run/berth.sock unix:///var/run/ref-docker.sock [--runs 10]

Prints the median (p50) of each per endpoint and, with two or more
endpoints, each one's ratio to the first. Every image a run made is
removed at the end (by ID: nothing else on the endpoint is touched)."""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

DOCKERFILE = """FROM busybox
ENV APP=/app MODE=bench
ARG VERSION=1
WORKDIR /app
COPY files/ ./files/
COPY main.sh ./
RUN chmod +x main.sh && mkdir -p /data && echo "$VERSION" > /data/version
RUN ./main.sh > /data/out
LABEL bench=build
CMD ["./main.sh"]
"""

TAG = "berth-bench-build:latest"


def build(host, ctx, *args):
    env = dict(os.environ, DOCKER_BUILDKIT="0", DOCKER_API_VERSION="1.41")
    start = time.perf_counter()
    r = subprocess.run(["docker", "-H", host, "build", "-q", "-t", TAG, *args, ctx],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=300)
    elapsed = (time.perf_counter() - start) * 1000
    if r.returncode != 0:
        sys.exit(f"{host}: build failed: {r.stderr.decode()}")
    return elapsed, r.stdout.decode().strip()


def context():
    ctx = tempfile.mkdtemp(prefix="berth-bench-build-")
    os.makedirs(os.path.join(ctx, "files"))
    for i in range(20):
        with open(os.path.join(ctx, "files", f"f{i}.txt"), "w") as f:
            f.write(f"file {i}\n" * 200)
    with open(os.path.join(ctx, "main.sh"), "w") as f:
        f.write("#!/bin/sh\nls /app/files | wc -l\n")
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(DOCKERFILE)
    return ctx


def main():
    p = argparse.ArgumentParser()
    p.add_argument("hosts", nargs="+")
    p.add_argument("--runs", type=int, default=10)
    a = p.parse_args()
    ctx = context()
    made = {h: set() for h in a.hosts}
    cold = {h: [] for h in a.hosts}
    warm = {h: [] for h in a.hosts}
    try:
        for h in a.hosts:  # warm-up: the first build of all, not counted
            made[h].add(build(h, ctx)[1])
        for _ in range(a.runs):
            for h in a.hosts:
                ms, image = build(h, ctx, "--no-cache")
                cold[h].append(ms)
                made[h].add(image)
                ms, image = build(h, ctx)
                warm[h].append(ms)
                made[h].add(image)
    finally:
        for h, images in made.items():
            env = dict(os.environ, DOCKER_API_VERSION="1.41")
            subprocess.run(["docker", "-H", h, "rmi", "-f", *sorted(images)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        subprocess.run(["rm", "-rf", ctx])
    base = a.hosts[0]
    print(f"{'endpoint':<45} {'cold p50 ms':>12} {'warm p50 ms':>12}")
    for h in a.hosts:
        print(f"{h:<45} {statistics.median(cold[h]):>12.0f} {statistics.median(warm[h]):>12.0f}")
    for h in a.hosts[1:]:
        print(f"{base} / {h}: cold {statistics.median(cold[base]) / statistics.median(cold[h]):.2f}, "
              f"warm {statistics.median(warm[base]) / statistics.median(warm[h]):.2f}")


if __name__ == "__main__":
    main()
