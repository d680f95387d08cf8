#!/usr/bin/env bash
# The side-by-side benchmark (direct to s3s-fs on tmpfs, through nginx, through wormgate):
# installs nginx if it is missing, builds the release binaries, then runs bench/bench.py, which
# writes docs/BENCHMARKS.md and docs/benchmarks.json. BENCH_ROUNDS (default 5) sets the rounds;
# BENCH_QUICK=1 runs small sizes to check the harness. A benchmark, not a test.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq nginx-light >/dev/null \
    || DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq nginx >/dev/null
fi
export PATH=$PATH:/usr/sbin
cargo build --release --quiet -p wormgate -p wormgate-bench
cargo build --release --quiet -p policy --example index_bench
exec python3 bench/bench.py
