#!/usr/bin/env bash
# Streaming proof for the audit: 1 M lock records in the index, exported whole through the admin
# listener's /audit/locks three times (JSON lines, CSV, JSON lines) while the gateway's peak RSS
# (VmHWM) is sampled. The first export warms the index's page cache (bounded by its size) and
# the allocator; after that, streaming another million rows must not raise the peak. Fails if a
# row is missing, if the third export raised the peak over the second, or if the peak passes the
# limit.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${WORMGATE_BIN:-$root/target/debug/wormgate}
fill=${FILL_BIN:-$root/target/debug/examples/fill_index}
rows=${AUDIT_ROWS:-1000000}
limit_mib=${AUDIT_RSS_LIMIT_MIB:-256}
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
aport=$(free_port)
token=audit-rss-check-token-0123456789

t0=$(date +%s)
"$fill" "$work/data/index" "$rows" >/dev/null
t1=$(date +%s)
WORMGATE_LISTEN=127.0.0.1:$port WORMGATE_DATA=$work/data WORMGATE_ADMIN_LISTEN=127.0.0.1:$aport \
  WORMGATE_ADMIN_TOKEN=$token WORMGATE_ACCESS_KEY=auditcheck WORMGATE_SECRET_KEY=auditcheck-secret-0123 \
  "$bin" serve >"$work/gateway.out" 2>"$work/gateway.err" &
gw=$!
trap 'kill $gw 2>/dev/null; wait $gw 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 200); do grep -q "admin listening" "$work/gateway.out" 2>/dev/null && break; sleep 0.1; done

hwm() { awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$gw/status"; }
export_lines() { curl -sS -f -H "Authorization: Bearer $token" "http://127.0.0.1:$aport/audit/locks$1" | wc -l; }

start_hwm=$(hwm)
t2=$(date +%s)
jsonl=$(export_lines "")
t3=$(date +%s)
first_hwm=$(hwm)
csv=$(export_lines "?format=csv")
t4=$(date +%s)
second_hwm=$(hwm)
again=$(export_lines "")
third_hwm=$(hwm)

echo "index: $rows records filled in $((t1 - t0)) s; export JSONL $((t3 - t2)) s, CSV $((t4 - t3)) s (informational)"
echo "gateway peak RSS (VmHWM): at start ${start_hwm} MiB, after export 1 (JSONL) ${first_hwm} MiB, export 2 (CSV) ${second_hwm} MiB, export 3 (JSONL) ${third_hwm} MiB; limit ${limit_mib} MiB"
status=0
if [ "$jsonl" -ne "$rows" ]; then echo "FAIL JSONL export has $jsonl lines, want $rows"; status=1; fi
if [ "$csv" -ne $((rows + 1)) ]; then echo "FAIL CSV export has $csv lines, want $((rows + 1))"; status=1; fi
if [ "$again" -ne "$rows" ]; then echo "FAIL the third export has $again lines, want $rows"; status=1; fi
if [ $((third_hwm - second_hwm)) -gt 8 ]; then echo "FAIL the third export raised the peak by $((third_hwm - second_hwm)) MiB"; status=1; fi
if [ "$third_hwm" -ge "$limit_mib" ]; then echo "FAIL peak RSS ${third_hwm} MiB >= ${limit_mib} MiB"; status=1; fi
[ $status -eq 0 ] && echo "audit rss: 1 passed, 0 failed" || echo "audit rss: 0 passed, 1 failed"
exit $status
