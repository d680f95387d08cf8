#!/usr/bin/env python3
"""The side-by-side benchmark: the same workloads direct to an s3s-fs store on tmpfs, through
nginx as a plain reverse proxy, and through wormgate, alternating target order round by round.
Writes docs/BENCHMARKS.md (medians, min-max, ratios) and docs/benchmarks.json.

Run by bench/run.sh, which installs nginx and builds the release binaries. A benchmark, not a
test: it asserts no timing; it fails only if a request gets an unexpected answer.
`bench.py --report` writes the report again from the last run's raw figures; `bench.py --index`
measures the lock index again and keeps the rest. `WORMGATE_BIN=<path>` runs another build of
wormgate (an earlier commit's) through the same workloads, for an A/B.
"""

import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / "release"
BENCH = str(RELEASE / "wormgate-bench")
# WORMGATE_BIN: another build of wormgate (an A/B against an earlier commit).
WORMGATE = os.environ.get("WORMGATE_BIN", str(RELEASE / "wormgate"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
# BENCH_QUICK=1: small sizes and short runs, to check the harness itself.
QUICK = os.environ.get("BENCH_QUICK") == "1"
GIB = 1 << 30 if not QUICK else 64 << 20
MID = 64 << 20 if not QUICK else 4 << 20
SMALL_SECS = 5.0 if not QUICK else 1.0
INDEX_SIZES = [1_000_000, 10_000_000] if not QUICK else [20_000]
# BENCH_INDEX_SIZES=1000000: fewer (or other) index sizes; 10 M records take most of a full run.
if os.environ.get("BENCH_INDEX_SIZES"):
    INDEX_SIZES = [int(n) for n in os.environ["BENCH_INDEX_SIZES"].split(",")]
RAW = ROOT / "target" / ("bench-raw.json" if not QUICK else "bench-raw-quick.json")

BACKEND_KEY, BACKEND_SECRET = "BENCHBACKENDKEY00001", "bench-backend-secret-000000000000001"
USER_KEY, USER_SECRET = "BENCHAGENTKEY0000001", "bench-agent-secret-0000000000000000001"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, what, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not start on port {port}")


def cpu_secs(pids):
    """User + system CPU seconds of these processes."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / tick


def reset_peak(pid):
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


class Targets:
    def __init__(self, work, index_dir):
        self.work = work
        self.procs = []
        sport, nport, wport, aport = free_port(), free_port(), free_port(), free_port()
        store = subprocess.Popen(
            [BENCH, "store", "--root", str(work / "store"), "--addr", f"127.0.0.1:{sport}",
             "--access-key", BACKEND_KEY, "--secret-key", BACKEND_SECRET],
            stdout=subprocess.DEVNULL)
        self.procs.append(store)
        wait_port(sport, "the store")

        conf = work / "nginx.conf"
        conf.write_text(f"""
worker_processes auto;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
daemon off;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {work}/nginx-body;
  proxy_temp_path {work}/nginx-proxy;
  upstream store {{ server 127.0.0.1:{sport}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{nport};
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_buffering off;
    proxy_http_version 1.1;
    location / {{
      proxy_pass http://store;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
    }}
  }}
}}
""")
        nginx = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work)],
                                 stderr=subprocess.DEVNULL)
        self.procs.append(nginx)
        wait_port(nport, "nginx")
        self.nginx_pids = [nginx.pid] + children(nginx.pid)

        config = work / "wormgate.toml"
        config.write_text(f"""
[server]
listen = "127.0.0.1:{wport}"
data_dir = "{work}/wormgate"

[admin]
listen = "127.0.0.1:{aport}"
token = "bench-admin-token-00000000000000"

[backend]
url = "http://127.0.0.1:{sport}"
access_key = "{BACKEND_KEY}"
secret_key = "{BACKEND_SECRET}"

[[users]]
access_key = "{USER_KEY}"
secret_key = "{USER_SECRET}"

[locks]
index_dir = "{index_dir}"
""")
        self.config, self.wport = config, wport
        self.start_wormgate()
        self.urls = {
            "direct": (f"http://127.0.0.1:{sport}", BACKEND_KEY, BACKEND_SECRET),
            "nginx": (f"http://127.0.0.1:{nport}", BACKEND_KEY, BACKEND_SECRET),
            "wormgate": (f"http://127.0.0.1:{wport}", USER_KEY, USER_SECRET),
        }

    def start_wormgate(self):
        gw = subprocess.Popen([WORMGATE, "serve", "--config", str(self.config)],
                              stdout=subprocess.DEVNULL, stderr=open(self.work / "wormgate.log", "a"),
                              env={**os.environ, "WORMGATE_LOG": "warn"})
        self.procs.append(gw)
        wait_port(self.wport, "wormgate")
        self.wormgate_pid = gw.pid
        self.wormgate = gw

    def restart_wormgate(self):
        """A fresh process: its peak memory then shows what one workload costs, not what the
        allocator kept from the ones before."""
        self.wormgate.send_signal(signal.SIGTERM)
        self.wormgate.wait(30)
        self.procs.remove(self.wormgate)
        self.start_wormgate()

    def proxy_pids(self, target):
        return {"nginx": self.nginx_pids, "wormgate": [self.wormgate_pid]}.get(target, [])

    def stop(self):
        for p in reversed(self.procs):
            p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def load(targets, target, **kw):
    """One workload run: the load generator's JSON, plus the proxy's CPU and peak memory."""
    url, key, secret = targets.urls[target]
    args = [BENCH, "load", "--endpoint", url, "--access-key", key, "--secret-key", secret]
    for k, v in kw.items():
        if v is True:
            args.append("--" + k.replace("_", "-"))
        elif v is not None:
            args += ["--" + k.replace("_", "-"), str(v)]
    pids = targets.proxy_pids(target)
    gw = targets.wormgate_pid
    reset_peak(gw)
    cpu0 = cpu_secs(pids)
    out = subprocess.run(args, capture_output=True, text=True)
    cpu1 = cpu_secs(pids)
    if out.returncode != 0:
        sys.exit(f"{target} {kw}: {out.stdout}\n{out.stderr}")
    if kw.get("op") == "create-bucket":
        return {}
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["proxy_cpu_secs"] = cpu1 - cpu0
    result["wormgate_peak_mib"] = peak_mib(gw) if target == "wormgate" else None
    return result


def size_label(n):
    return f"{n >> 30} GiB" if n >= 1 << 30 else f"{n >> 20} MiB"


BIG, MIDL = size_label(GIB), size_label(MID)
# name, parameters, the figure compared
TRANSFERS = [
    (f"PUT {BIG}, 1 stream", dict(op="put", size=GIB, count=1, prefix="big", keys=1), "mib_per_s"),
    (f"GET {BIG}, 1 stream", dict(op="get", size=GIB, count=1, prefix="big", keys=1), "mib_per_s"),
    (f"PUT 16 × {MIDL}", dict(op="put", size=MID, count=1, concurrency=16, prefix="mid"), "mib_per_s"),
    (f"GET 16 × {MIDL}", dict(op="get", size=MID, count=1, concurrency=16, prefix="mid"), "mib_per_s"),
    (f"PUT {BIG}, signed payload", dict(op="put", size=GIB, count=1, prefix="big", keys=1, payload="signed"), "mib_per_s"),
]
SMALL = []
for c in (1, 32):
    SMALL += [
        (f"PUT 4 KiB, c{c}", dict(op="put", size=4096, concurrency=c, seconds=SMALL_SECS, prefix="small", keys=256), "ops_per_s"),
        (f"GET 4 KiB, c{c}", dict(op="get", size=4096, concurrency=c, seconds=SMALL_SECS, prefix="small", keys=256), "ops_per_s"),
        (f"HEAD 4 KiB, c{c}", dict(op="head", size=4096, concurrency=c, seconds=SMALL_SECS, prefix="small", keys=256), "ops_per_s"),
    ]
# Through wormgate only: the enforcement path against the plain path.
ENFORCEMENT = [
    ("plain PUT 4 KiB, c32", dict(op="put", size=4096, concurrency=32, seconds=SMALL_SECS, prefix="plainput", bucket="bench-plain")),
    ("locked PUT 4 KiB, c32", dict(op="put", size=4096, concurrency=32, seconds=SMALL_SECS, prefix="lockput", bucket="bench-locked", lock_days=1)),
    ("plain DELETE, c32", dict(op="delete", concurrency=32, seconds=SMALL_SECS, prefix="plainput", keys=100000, bucket="bench-plain")),
    # A lock bucket is versioned: a delete that would destroy names the version.
    ("refused DELETE (locked), c32", dict(op="delete", concurrency=32, seconds=SMALL_SECS, prefix="locked", keys=256, bucket="bench-locked", expect=403, versions="LOCKED_VERSIONS")),
    # The delete the lock allows, by version id: decided on the version's records on the store
    # (its HEAD and its lock journal, read at once). The versions are deleted again every round
    # (a delete of a version already gone takes the same path).
    ("allowed DELETE of a version (lock bucket), c32", dict(op="delete", concurrency=32, seconds=SMALL_SECS, prefix="unlocked", keys=256, bucket="bench-locked", versions="UNLOCKED_VERSIONS")),
    ("GET 4 KiB latest version (lock bucket), c32", dict(op="get", size=4096, concurrency=32, seconds=SMALL_SECS, prefix="locked", keys=256, bucket="bench-locked")),
    ("HEAD latest version (lock bucket), c32", dict(op="head", concurrency=32, seconds=SMALL_SECS, prefix="locked", keys=256, bucket="bench-locked")),
]


def index_lookups():
    out = []
    bench = RELEASE / "examples" / "index_bench"
    for n in INDEX_SIZES:
        # On disk, not tmpfs: sled's files for 10 M records take several GiB.
        # The second pass: a page cache big enough for the whole index (about 650 MiB per
        # million records here), warmed by one read of every record.
        big_mib = max(1024, n // 1_000_000 * 800)
        with tempfile.TemporaryDirectory(dir=ROOT / "target") as d:
            text = subprocess.run([str(bench), str(n), d, str(big_mib)], capture_output=True, text=True,
                                  check=True).stdout
        m = re.search(r"lookup \(get\):\s+p50 ([\d.]+) µs, p99 ([\d.]+) µs", text)
        w = re.search(r"(\d+) MiB cache warmed .*: p50 ([\d.]+) µs, p99 ([\d.]+) µs; resident memory (\d+) MiB", text)
        r = re.search(r"records in memory, loaded in ([\d.]+) s: p50 ([\d.]+) µs, p99 ([\d.]+) µs; "
                      r"resident memory (\d+) MiB \((\d+) MiB before loading\)", text)
        out.append({"records": n, "p50_us": float(m.group(1)), "p99_us": float(m.group(2)),
                    "big_cache_mib": int(w.group(1)), "big_cache_p50_us": float(w.group(2)),
                    "big_cache_p99_us": float(w.group(3)), "big_cache_rss_mib": int(w.group(4)),
                    "in_memory_load_s": float(r.group(1)), "in_memory_p50_us": float(r.group(2)),
                    "in_memory_p99_us": float(r.group(3)), "in_memory_rss_mib": int(r.group(4)),
                    "in_memory_rss_before_mib": int(r.group(5))})
    return out


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main():
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    work = Path(tempfile.mkdtemp(prefix="wormgate-bench-", dir=shm))
    # The lock index lives on disk, as in a deployment (a persistent volume): its flushes are
    # part of what a locked write costs.
    index_dir = Path(tempfile.mkdtemp(prefix="wormgate-bench-index-", dir=ROOT / "target"))
    targets = Targets(work, index_dir)
    names = ["direct", "nginx", "wormgate"]
    runs = {}  # (workload, target) -> [result]
    try:
        for target in names:
            load(targets, target, op="create-bucket", bucket="bench-plain")
        load(targets, "wormgate", op="create-bucket", bucket="bench-locked", object_lock=True)
        # Objects to read and to refuse deleting, made once.
        load(targets, "direct", op="put", size=4096, count=256, prefix="small", keys=256, bucket="bench-plain")
        locked_versions = work / "locked-versions"
        load(targets, "wormgate", op="put", size=4096, count=256, prefix="locked", keys=256, bucket="bench-locked", lock_days=1,
             record_versions=locked_versions)
        unlocked_versions = work / "unlocked-versions"
        load(targets, "wormgate", op="put", size=4096, count=256, prefix="unlocked", keys=256, bucket="bench-locked",
             record_versions=unlocked_versions)
        for r in range(ROUNDS):
            order = names[r % 3:] + names[:r % 3]
            print(f"round {r + 1}/{ROUNDS}: order {', '.join(order)}", flush=True)
            for name, params, _ in TRANSFERS + SMALL:
                for target in order:
                    res = load(targets, target, bucket="bench-plain", **params)
                    runs.setdefault((name, target), []).append(res)
            for name, params in ENFORCEMENT:
                if params.get("versions") == "LOCKED_VERSIONS":
                    params = {**params, "versions": locked_versions}
                if params.get("versions") == "UNLOCKED_VERSIONS":
                    params = {**params, "versions": unlocked_versions}
                if params.get("lock_days"):
                    # A locked object cannot be written again: new keys every round.
                    params = {**params, "prefix": f"{params['prefix']}-r{r}"}
                res = load(targets, "wormgate", **params)
                runs.setdefault((name, "wormgate"), []).append(res)
        # Memory with 32 concurrent 1 GiB streams (GETs: 32 GiB of uploads would not fit in tmpfs),
        # in a fresh process.
        targets.restart_wormgate()
        rss32 = load(targets, "wormgate", op="get", size=GIB, count=1, concurrency=32, prefix="big", bucket="bench-plain",
                     keys=1)
    finally:
        targets.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(index_dir, ignore_errors=True)
    # Kept, so that the report can be made again without a new run (`bench.py --report`).
    RAW.parent.mkdir(parents=True, exist_ok=True)
    raw = {"runs": [[k[0], k[1], v] for k, v in runs.items()], "rss32": rss32}
    RAW.write_text(json.dumps(raw))
    raw["index"] = index_lookups()
    RAW.write_text(json.dumps(raw))
    report(runs, rss32, raw["index"])


def report_again(new_index=False):
    raw = json.loads(RAW.read_text())
    runs = {(name, target): v for name, target, v in raw["runs"]}
    if new_index or not raw.get("index"):
        raw["index"] = index_lookups()
        RAW.write_text(json.dumps(raw))
    report(runs, raw["rss32"], raw["index"])


def cell(s, fmt):
    return f"{fmt(s['median'])} ({fmt(s['min'])}–{fmt(s['max'])})"


def report(runs, rss32, index):
    # The rounds the figures come from (a report made again need not know BENCH_ROUNDS).
    rounds = max(len(v) for v in runs.values())
    machine = {
        "cpus": os.cpu_count(),
        "cpu": next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                     if l.startswith("model name")), platform.processor()),
        "kernel": platform.release(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
        "rounds": rounds,
        "quick": QUICK,
        "date": time.strftime("%Y-%m-%d"),
    }
    data = {"machine": machine, "workloads": [], "index": index, "rss_32_streams_mib": rss32["wormgate_peak_mib"]}
    lines = []
    lines.append("# Benchmarks\n")
    lines.append("Produced by `bash bench/run.sh` (see the README). Every figure is the median of "
                 f"{rounds} rounds with the min–max in brackets; in each round the three targets run one after "
                 "the other, in an order that rotates from round to round. The store is s3s-fs on tmpfs; "
                 "wormgate's lock index is on disk, as on a persistent volume; wormgate runs with its default "
                 "worker threads (half the cores). The "
                 "client is `wormgate-bench load` (hyper + aws-sigv4). The machine is shared: compare figures "
                 "within this page only.\n")
    lines.append(f"Machine: {machine['cpus']} cores ({machine['cpu']}), {machine['memory_gib']} GiB, Linux "
                 f"{machine['kernel']}, {machine['nginx']}, {machine['date']}.\n")
    lines.append("## Transfers and small operations\n")
    lines.append("The peak RSS column is wormgate's peak during the workload after the peak was reset to the "
                 "current RSS (`/proc/PID/clear_refs`): it includes what the allocator kept from the workloads "
                 "before, in the same process.\n")
    lines.append("| workload | direct | nginx | wormgate | wormgate ÷ direct | wormgate ÷ nginx | CPU s/GiB nginx | CPU s/GiB wormgate | wormgate peak RSS MiB |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for name, _, figure in TRANSFERS + SMALL:
        row = {"workload": name, "figure": figure}
        cells = []
        for t in ["direct", "nginx", "wormgate"]:
            s = summary([r[figure] for r in runs[(name, t)]])
            row[t] = s
            cells.append(cell(s, lambda v: f"{v:.0f}"))
        ratios = []
        for base in ["direct", "nginx"]:
            rs = [w[figure] / b[figure] for w, b in zip(runs[(name, "wormgate")], runs[(name, base)]) if b[figure]]
            s = summary(rs)
            row[f"wormgate_over_{base}"] = s
            ratios.append(cell(s, lambda v: f"{v:.2f}"))
        cpu = []
        for t in ["nginx", "wormgate"]:
            per = [r["proxy_cpu_secs"] / (r["bytes"] / 2**30) for r in runs[(name, t)] if r["bytes"]]
            if figure == "mib_per_s" and per:
                s = summary(per)
                row[f"cpu_secs_per_gib_{t}"] = s
                cpu.append(cell(s, lambda v: f"{v:.2f}"))
            else:
                cpu.append("–")
        peak = summary([r["wormgate_peak_mib"] for r in runs[(name, "wormgate")]])
        row["wormgate_peak_mib"] = peak
        if figure == "ops_per_s":
            for t in ["direct", "nginx", "wormgate"]:
                row[f"p50_us_{t}"] = summary([r["p50_us"] for r in runs[(name, t)]])
                row[f"p99_us_{t}"] = summary([r["p99_us"] for r in runs[(name, t)]])
        data["workloads"].append(row)
        unit = "MiB/s" if figure == "mib_per_s" else "ops/s"
        lines.append(f"| {name} ({unit}) | " + " | ".join(cells + ratios + cpu) + f" | {peak['max']} |")
    lines.append("\n## Latency of small operations (µs, median of rounds)\n")
    lines.append("| workload | direct p50 | direct p99 | nginx p50 | nginx p99 | wormgate p50 | wormgate p99 | wormgate p99 − direct p99 |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for row in data["workloads"]:
        if row["figure"] != "ops_per_s":
            continue
        vals = [row[f"{p}_us_{t}"]["median"] for t in ["direct", "nginx", "wormgate"] for p in ["p50", "p99"]]
        added = row["p99_us_wormgate"]["median"] - row["p99_us_direct"]["median"]
        lines.append(f"| {row['workload']} | " + " | ".join(f"{v:.0f}" for v in vals) + f" | {added:+.0f} |")
    lines.append("\n## Proxy CPU per small operation (µs, all threads of the proxy process)\n")
    lines.append("On two shared cores the rates above move with everything else on the machine; the CPU a "
                 "proxy spends per request moves much less.\n")
    lines.append("| workload | nginx | wormgate | wormgate ÷ nginx |")
    lines.append("|---|---|---|---|")
    for row in data["workloads"]:
        if row["figure"] != "ops_per_s":
            continue
        name = row["workload"]
        per = {t: [r["proxy_cpu_secs"] * 1e6 / r["ops"] for r in runs[(name, t)] if r["ops"]]
               for t in ["nginx", "wormgate"]}
        ratio = summary([w / n for w, n in zip(per["wormgate"], per["nginx"]) if n])
        for t in ["nginx", "wormgate"]:
            row[f"cpu_us_per_op_{t}"] = summary(per[t])
        row["cpu_per_op_wormgate_over_nginx"] = ratio
        lines.append(f"| {name} | {cell(row['cpu_us_per_op_nginx'], lambda v: f'{v:.1f}')} | "
                     f"{cell(row['cpu_us_per_op_wormgate'], lambda v: f'{v:.1f}')} | "
                     f"{cell(ratio, lambda v: f'{v:.2f}')} |")
    lines.append("\n## The enforcement path (through wormgate only)\n")
    lines.append("| workload | ops/s | p50 µs | p99 µs | wormgate CPU µs/op |")
    lines.append("|---|---|---|---|---|")
    enforcement = {}
    for name, _ in ENFORCEMENT:
        rs = runs[(name, "wormgate")]
        s = summary([r["ops_per_s"] for r in rs])
        enforcement[name] = s
        cpu = statistics.median(r["proxy_cpu_secs"] * 1e6 / r["ops"] for r in rs if r["ops"])
        lines.append(f"| {name} | {cell(s, lambda v: f'{v:.0f}')} | {statistics.median(r['p50_us'] for r in rs):.0f} | "
                     f"{statistics.median(r['p99_us'] for r in rs):.0f} | {cpu:.0f} |")
    data["enforcement"] = enforcement
    put_ratio = enforcement["locked PUT 4 KiB, c32"]["median"] / enforcement["plain PUT 4 KiB, c32"]["median"]
    del_ratio = enforcement["refused DELETE (locked), c32"]["median"] / enforcement["plain DELETE, c32"]["median"]
    plain_get = statistics.median(r["ops_per_s"] for r in runs[("GET 4 KiB, c32", "wormgate")])
    plain_head = statistics.median(r["ops_per_s"] for r in runs[("HEAD 4 KiB, c32", "wormgate")])
    get_ratio = enforcement["GET 4 KiB latest version (lock bucket), c32"]["median"] / plain_get
    head_ratio = enforcement["HEAD latest version (lock bucket), c32"]["median"] / plain_head
    lines.append(f"\nA locked PUT (a new version of a lock bucket) runs at {put_ratio:.2f} × the rate of a plain PUT "
                 f"through wormgate; a refused DELETE of a locked version at {del_ratio:.2f} × the rate of a plain "
                 f"DELETE (which must ask the backend first). A GET of a lock bucket's latest version (the backend's "
                 f"listing of the key's versions, then the GET) runs at {get_ratio:.2f} × a plain GET through wormgate, "
                 f"a HEAD at {head_ratio:.2f} ×.\n")
    lines.append("## Memory and the lock index\n")
    lines.append(f"- wormgate's peak RSS while serving 32 concurrent GETs of a {BIG} object, in a fresh process: "
                 f"{rss32['wormgate_peak_mib']} MiB ({rss32['mib_per_s']:.0f} MiB/s in all).")
    for i in index:
        lines.append(f"- lock index lookups at {i['records']:,} records, default 32 MiB page cache: p50 {i['p50_us']:.1f} µs, "
                     f"p99 {i['p99_us']:.1f} µs (`cargo run --release -p policy --example index_bench`).")
        if "big_cache_mib" in i:
            lines.append(f"  - with `index_cache_mib = {i['big_cache_mib']}`, warmed: p50 {i['big_cache_p50_us']:.1f} µs, "
                         f"p99 {i['big_cache_p99_us']:.1f} µs, at {i['big_cache_rss_mib']} MiB resident.")
        if "in_memory_p99_us" in i:
            per_record = (i["in_memory_rss_mib"] - i["in_memory_rss_before_mib"]) * 2**20 / i["records"]
            lines.append(f"  - with `index_records_in_memory = true`: p50 {i['in_memory_p50_us']:.1f} µs, "
                         f"p99 {i['in_memory_p99_us']:.1f} µs, at {i['in_memory_rss_mib']} MiB resident "
                         f"(about {per_record:.0f} bytes per record), loaded in {i['in_memory_load_s']:.1f} s.")
    lines.append("\n## Raw figures\n")
    lines.append("`docs/benchmarks.json` holds every summary above.\n")
    # A quick run checks the harness; its figures do not replace the real ones.
    docs = ROOT / "docs" if not QUICK else ROOT / "target" / "bench-quick"
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "BENCHMARKS.md").write_text("\n".join(lines) + "\n")
    (docs / "benchmarks.json").write_text(json.dumps(data, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1:] == ["--report"]:
        report_again()
    elif sys.argv[1:] == ["--index"]:
        # The lock index figures measured again; the rest of the report from the last run.
        report_again(new_index=True)
    else:
        main()
