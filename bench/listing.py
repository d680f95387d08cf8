#!/usr/bin/env python3
"""Listings of a large versioned bucket: ListObjectsV2 of its current versions through wormgate
against a ListObjectsV2 of the same backend objects direct from the store, and wormgate's peak
memory while it lists every version (ListObjectVersions), at two sizes of the bucket.

The bucket is a lock bucket of the `gateway` profile over the benchmark's s3s-fs store on tmpfs
(the same targets as bench/bench.py), filled through wormgate: KEYS keys, half with one
version, half with three. A benchmark, not a test: it asserts no timing; it fails only if a
request gets an unexpected answer or a listing does not hold what was written.

    LIST_KEYS=100000 python3 bench/listing.py    (bench/run.sh builds the binaries)

Writes docs/LISTING.md (or target/bench-quick/LISTING.md with BENCH_QUICK=1).
s3s-fs reads its whole folder for every page it answers, so a full listing costs the store
O(objects² / 1000): the direct listing pays that as much as wormgate's, and the ratio compares
like with like; it also bounds the sizes that can be measured here.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

from bench import ROOT, QUICK, Targets, load, peak_mib, reset_peak

KEYS = int(os.environ.get("LIST_KEYS", "2000" if QUICK else "100000"))
STREAMS = 32


def fill(targets, bucket, keys):
    """`keys` keys through wormgate: every one once, then the first half twice more."""
    per_stream = keys // STREAMS
    half = per_stream // 2
    for count in (per_stream, half, half):
        load(targets, "wormgate", op="put", size=64, count=count, concurrency=STREAMS, prefix="k",
             bucket=bucket)
    return per_stream * STREAMS, per_stream * STREAMS + 2 * half * STREAMS


def measure(targets, bucket, keys):
    current, versions = fill(targets, bucket, keys)
    out = {"keys": current, "versions": versions}
    direct = load(targets, "direct", op="list", bucket=bucket)
    through = load(targets, "wormgate", op="list", bucket=bucket)
    # The store also holds the bucket's lock record.
    if through["entries"] != current or direct["entries"] != versions + 1:
        raise SystemExit(f"listed {through['entries']} keys of {current}, "
                         f"{direct['entries']} backend objects of {versions}")
    # A fresh process: its peak shows what the listing costs, not what earlier work kept.
    targets.restart_wormgate()
    reset_peak(targets.wormgate_pid)
    before = peak_mib(targets.wormgate_pid)
    all_versions = load(targets, "wormgate", op="list-versions", bucket=bucket)
    if all_versions["entries"] != versions:
        raise SystemExit(f"listed {all_versions['entries']} versions of {versions}")
    out.update(direct_secs=direct["secs"], wormgate_secs=through["secs"],
               ratio=direct["secs"] / through["secs"],
               versions_secs=all_versions["secs"], rss_before_mib=before,
               rss_peak_mib=all_versions["wormgate_peak_mib"])
    print(json.dumps(out), flush=True)
    return out


def main():
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    work = Path(tempfile.mkdtemp(prefix="wormgate-listing-", dir=shm))
    index_dir = Path(tempfile.mkdtemp(prefix="wormgate-listing-index-", dir=ROOT / "target"))
    targets = Targets(work, index_dir)
    rows = []
    try:
        for n, size in enumerate((KEYS // 10, KEYS)):
            bucket = f"bench-list-{n}"
            load(targets, "wormgate", op="create-bucket", bucket=bucket, object_lock=True)
            rows.append(measure(targets, bucket, size))
    finally:
        targets.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(index_dir, ignore_errors=True)
    lines = [
        "# Listing a large versioned bucket",
        "",
        "Made by `bench/listing.py` (see its header): a lock bucket of the `gateway` profile over "
        "s3s-fs on tmpfs, half its keys with one version and half with three, written through "
        "wormgate. ListObjectsV2 through wormgate lists the current keys; the direct listing "
        "lists every backend object of the bucket (versions included) from the store. One run "
        "each; the store answers every page by reading its whole folder, which is most of both "
        "times.",
        "",
        "| keys | versions | direct ListObjectsV2 of the backend objects, s | wormgate ListObjectsV2, s "
        "| wormgate ÷ direct (speed) | wormgate ListObjectVersions, s | wormgate RSS before, MiB "
        "| wormgate peak RSS listing every version, MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['keys']} | {r['versions']} | {r['direct_secs']:.1f} | {r['wormgate_secs']:.1f} "
                     f"| {r['ratio']:.2f} × | {r['versions_secs']:.1f} | {r['rss_before_mib']} "
                     f"| {r['rss_peak_mib']} |")
    docs = ROOT / "docs" if not QUICK else ROOT / "target" / "bench-quick"
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "LISTING.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
