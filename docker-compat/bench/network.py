#!/usr/bin/env python3
"""What a container's network costs at start: `docker run --rm busybox true` on
the default bridge against the same with `--network none`, with a published
port, and on a user-defined network (whose containers get the DNS server at
127.0.0.11), interleaved sample by sample on every endpoint given, so machine
noise hits each the same way. The user network (berth-bench-net) is made and
removed by the script.

    docker-compat/bench/network.py unix:///var/run/berth.sock [unix:///other.sock ...] [--runs 30]

Prints the median (p50) of each and the bridge's cost over none per endpoint,
and, with two or more endpoints, each one's ratio to the first."""

import argparse
import socket
import statistics
import subprocess
import sys
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def timed(host, args):
    start = time.perf_counter()
    r = subprocess.run(["docker", "-H", host, "run", "--rm", "-l", "berth-bench=1", *args],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
    elapsed = (time.perf_counter() - start) * 1000
    if r.returncode != 0:
        sys.exit(f"{host}: docker run {' '.join(args)} failed: {r.stderr.decode().strip()}")
    return elapsed


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("hosts", nargs="+")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--image", default="busybox")
    a = p.parse_args()
    kinds = {
        "bridge": lambda: [a.image, "true"],
        "none": lambda: ["--network", "none", a.image, "true"],
        "publish": lambda: ["-p", f"127.0.0.1:{free_port()}:80", a.image, "true"],
        "user": lambda: ["--network", NET, a.image, "true"],
    }
    for h in a.hosts:
        subprocess.run(["docker", "-H", h, "network", "create", NET],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        measure(a, kinds)
    finally:
        for h in a.hosts:
            subprocess.run(["docker", "-H", h, "network", "rm", NET],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


NET = "berth-bench-net"


def measure(a, kinds):
    samples = {(h, k): [] for h in a.hosts for k in kinds}
    for h in a.hosts:  # warm-up: the image's pages, the daemon's caches
        for k, args in kinds.items():
            timed(h, args())
    for i in range(a.runs):
        order = a.hosts if i % 2 == 0 else list(reversed(a.hosts))
        for h in order:
            ks = list(kinds) if i % 2 == 0 else list(reversed(list(kinds)))
            for k in ks:
                samples[(h, k)].append(timed(h, kinds[k]()))
    base = a.hosts[0]
    print(f"{'endpoint':40} {'bridge p50':>11} {'none p50':>9} {'publish p50':>12} {'user p50':>9} {'bridge-none':>12} {'user-none':>10}")
    for h in a.hosts:
        m = {k: statistics.median(samples[(h, k)]) for k in kinds}
        line = (f"{h:40} {m['bridge']:9.1f}ms {m['none']:7.1f}ms {m['publish']:10.1f}ms {m['user']:7.1f}ms"
                f" {m['bridge'] - m['none']:+10.1f}ms {m['user'] - m['none']:+8.1f}ms")
        if h != base:
            line += f"   bridge ratio to {base}: {m['bridge'] / statistics.median(samples[(base, 'bridge')]):.2f}"
        print(line)


if __name__ == "__main__":
    main()
