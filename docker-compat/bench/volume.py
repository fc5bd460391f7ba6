#!/usr/bin/env python3
"""What a named volume costs at start: `docker run --rm -v NAME:/data busybox
true` against plain `docker run --rm busybox true`, interleaved sample by
sample on every endpoint given, so machine noise hits each the same way. The
volume is made before the first sample and removed after the last.

    docker-compat/bench/volume.py unix:///var/run/berth.sock [unix:///other.sock ...] [--runs 30]

Prints the median (p50) of each and the volume's cost over plain per
endpoint, and, with two or more endpoints, each one's ratio to the first."""

import argparse
import statistics
import subprocess
import sys
import time

VOLUME = "berth-bench-vol"


def docker(host, *args):
    return subprocess.run(["docker", "-H", host, *args], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, timeout=120)


def timed(host, args):
    start = time.perf_counter()
    r = docker(host, "run", "--rm", "-l", "berth-bench=1", *args)
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
        "volume": [f"-v={VOLUME}:/data", a.image, "true"],
        "plain": [a.image, "true"],
    }
    for h in a.hosts:
        docker(h, "volume", "create", VOLUME)
    try:
        samples = {(h, k): [] for h in a.hosts for k in kinds}
        for h in a.hosts:  # warm-up: the image's pages, the daemon's caches
            for args in kinds.values():
                timed(h, args)
        for i in range(a.runs):
            order = a.hosts if i % 2 == 0 else list(reversed(a.hosts))
            for h in order:
                ks = list(kinds) if i % 2 == 0 else list(reversed(list(kinds)))
                for k in ks:
                    samples[(h, k)].append(timed(h, kinds[k]))
    finally:
        for h in a.hosts:
            docker(h, "volume", "rm", VOLUME)
    base = a.hosts[0]
    print(f"{'endpoint':40} {'volume p50':>11} {'plain p50':>10} {'volume-plain':>13}")
    for h in a.hosts:
        m = {k: statistics.median(samples[(h, k)]) for k in kinds}
        line = f"{h:40} {m['volume']:9.1f}ms {m['plain']:8.1f}ms {m['volume'] - m['plain']:+11.1f}ms"
        if h != base:
            ratio = m["volume"] / statistics.median(samples[(base, "volume")])
            line += f"   volume ratio to {base}: {ratio:.2f}"
        print(line)


if __name__ == "__main__":
    main()
