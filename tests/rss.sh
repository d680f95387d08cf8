#!/usr/bin/env bash
# Streaming proof: a 2 GiB object up and down through `wormgate serve` (the embedded store runs
# in the same process, so its memory counts too) with curl, single stream each way. Fails if the
# gateway's peak RSS (VmHWM) goes over the limit or the bytes differ.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${WORMGATE_BIN:-$root/target/debug/wormgate}
size_mib=${RSS_SIZE_MIB:-2048}
limit_mib=${RSS_LIMIT_MIB:-100}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
ak=rsscheck sk=rsscheck-secret-0123456789

WORMGATE_LISTEN=127.0.0.1:$port WORMGATE_DATA=$work/data WORMGATE_ACCESS_KEY=$ak WORMGATE_SECRET_KEY=$sk \
  "$bin" serve >"$work/gateway.out" 2>"$work/gateway.err" &
gw=$!
trap 'kill $gw 2>/dev/null; wait $gw 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q listening "$work/gateway.out" 2>/dev/null && break; sleep 0.1; done

s3curl() { curl -sS -f --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ak:$sk" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"; }
hwm() { awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$gw/status"; }

# A file of pseudo-random content (a repeated 1 MiB random block) that costs no time to read.
head -c $((1024 * 1024)) /dev/urandom >"$work/block"
for _ in $(seq "$size_mib"); do cat "$work/block"; done >"$work/object"
want=$(sha256sum <"$work/object" | cut -d' ' -f1)

s3curl -X PUT "$url/rss-check" >/dev/null
start_hwm=$(hwm)
t0=$(date +%s%N)
s3curl -T "$work/object" "$url/rss-check/object" >/dev/null
t1=$(date +%s%N)
rm -f "$work/object"
up_hwm=$(hwm)
got=$(s3curl "$url/rss-check/object" | sha256sum | cut -d' ' -f1)
t2=$(date +%s%N)
end_hwm=$(hwm)

echo "object: $size_mib MiB; PUT $(((t1 - t0) / 1000000)) ms, GET $(((t2 - t1) / 1000000)) ms (informational)"
echo "gateway peak RSS (VmHWM): at start ${start_hwm} MiB, after PUT ${up_hwm} MiB, after GET ${end_hwm} MiB; limit ${limit_mib} MiB"
status=0
if [ "$got" != "$want" ]; then echo "FAIL bytes differ: $got != $want"; status=1; fi
if [ "$end_hwm" -ge "$limit_mib" ]; then echo "FAIL peak RSS ${end_hwm} MiB >= ${limit_mib} MiB"; status=1; fi
[ $status -eq 0 ] && echo "rss: 1 passed, 0 failed" || echo "rss: 0 passed, 1 failed"
exit $status
