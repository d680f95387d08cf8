#!/usr/bin/env bash
# Real clients through a real `wormgate serve` (the embedded default): aws CLI, boto3, rclone,
# restic (also on a lock bucket with a default retention). Each check prints PASS or FAIL; the last line counts them.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${WORMGATE_BIN:-$root/target/debug/wormgate}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export WORMGATE_URL="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=clientcheck AWS_SECRET_ACCESS_KEY=clientcheck-secret-0123456789
export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
unset AWS_CA_BUNDLE AWS_PROFILE
passed=0 failed=0

WORMGATE_LISTEN=127.0.0.1:$port WORMGATE_DATA=$work/data \
WORMGATE_ACCESS_KEY=$AWS_ACCESS_KEY_ID WORMGATE_SECRET_KEY=$AWS_SECRET_ACCESS_KEY \
  "$bin" serve >"$work/gateway.out" 2>"$work/gateway.err" &
gw=$!
cleanup() { kill "$gw" 2>/dev/null; wait "$gw" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 100); do grep -q listening "$work/gateway.out" 2>/dev/null && break; sleep 0.1; done

check() { # name, command...
  local name=$1; shift
  if ( "$@" ) >"$work/$name.log" 2>&1; then
    echo "PASS $name"; passed=$((passed + 1))
  else
    echo "FAIL $name"; sed 's/^/    /' "$work/$name.log" | tail -30; failed=$((failed + 1))
  fi
}

aws_cli() {
  local aws="/usr/bin/aws --endpoint-url $WORMGATE_URL --only-show-errors"
  head -c $((100 * 1024 * 1024)) /dev/urandom >"$work/100m.bin"
  $aws s3 mb s3://aws-cli-check
  $aws s3 cp "$work/100m.bin" s3://aws-cli-check/dir/100m.bin
  $aws s3 cp s3://aws-cli-check/dir/100m.bin "$work/100m.back"
  local a b; a=$(sha256sum <"$work/100m.bin") b=$(sha256sum <"$work/100m.back")
  echo "up $a / down $b"
  [ "$a" = "$b" ]
  $aws s3 ls s3://aws-cli-check --recursive | grep -q 'dir/100m.bin'
  $aws s3 rm s3://aws-cli-check/dir/100m.bin
  rm -f "$work/100m.bin" "$work/100m.back"
}

boto3_check() { python3 "$here/clients/boto3_check.py"; }

rclone_check() {
  export RCLONE_CONFIG_WG_TYPE=s3 RCLONE_CONFIG_WG_PROVIDER=Other RCLONE_CONFIG_WG_ENDPOINT=$WORMGATE_URL
  export RCLONE_CONFIG_WG_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_WG_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
  export RCLONE_CONFIG_WG_FORCE_PATH_STYLE=true RCLONE_CONFIG_WG_REGION=us-east-1
  mkdir -p "$work/tree/a/b" "$work/tree/c"
  for i in 1 2 3; do head -c $((i * 70000)) /dev/urandom >"$work/tree/a/b/f$i"; done
  head -c 7000000 /dev/urandom >"$work/tree/c/large"
  echo small >"$work/tree/top.txt"
  env -u AWS_CA_BUNDLE rclone mkdir wg:rclone-check
  env -u AWS_CA_BUNDLE rclone copy "$work/tree" wg:rclone-check/backup
  env -u AWS_CA_BUNDLE rclone check "$work/tree" wg:rclone-check/backup
  [ "$(env -u AWS_CA_BUNDLE rclone lsf -R --files-only wg:rclone-check/backup | wc -l)" -eq 5 ]
}

restic_check() {
  export RESTIC_REPOSITORY="s3:$WORMGATE_URL/restic-check" RESTIC_PASSWORD=restic-check-password
  mkdir -p "$work/data-to-backup/sub"
  head -c 3000000 /dev/urandom >"$work/data-to-backup/sub/blob"
  echo "hello restic" >"$work/data-to-backup/note.txt"
  restic init
  restic backup "$work/data-to-backup"
  restic check
  restic restore latest --target "$work/restored"
  diff -r "$work/data-to-backup" "$work/restored$work/data-to-backup"
}

# restic on a lock bucket with a 1-day GOVERNANCE default retention (restic's docs, "S3
# object lock"): its deletes (lock files, packs on prune) become delete markers, and no version
# it wrote is destroyed while its retention lasts. The versions are read with the aws CLI.
restic_locked_check() {
  set -e
  local aws="/usr/bin/aws --endpoint-url $WORMGATE_URL"
  $aws s3api create-bucket --bucket restic-locked --object-lock-enabled-for-bucket >/dev/null
  $aws s3api put-object-lock-configuration --bucket restic-locked --object-lock-configuration \
    '{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"GOVERNANCE","Days":1}}}'
  [ "$($aws s3api get-bucket-versioning --bucket restic-locked --query Status --output text)" = Enabled ]
  export RESTIC_REPOSITORY="s3:$WORMGATE_URL/restic-locked" RESTIC_PASSWORD=restic-locked-password
  local src="$work/locked-src"
  mkdir -p "$src"
  head -c 2000000 /dev/urandom >"$src/a"
  head -c 2000000 /dev/urandom >"$src/b"
  restic init
  restic backup "$src"
  head -c 2000000 /dev/urandom >"$src/b"
  restic backup "$src"
  restic check
  $aws s3api list-object-versions --bucket restic-locked --query 'Versions[].[Key,VersionId]' \
    --output text | sort >"$work/versions-before"
  restic forget --keep-last 1 --prune
  restic check
  restic restore latest --target "$work/locked-restored"
  diff -r "$src" "$work/locked-restored$src"
  $aws s3api list-object-versions --bucket restic-locked --query 'Versions[].[Key,VersionId]' \
    --output text | sort >"$work/versions-after"
  local markers
  markers=$($aws s3api list-object-versions --bucket restic-locked --query 'length(DeleteMarkers)')
  echo "versions before prune: $(wc -l <"$work/versions-before"), after: $(wc -l <"$work/versions-after"), delete markers: $markers"
  # Every version written before the prune is still there; the prune's deletes were markers.
  [ -z "$(comm -23 "$work/versions-before" "$work/versions-after")" ]
  [ "$markers" -gt 0 ]
}

check aws-cli aws_cli
check boto3 boto3_check
check rclone rclone_check
check restic restic_check
check restic-locked restic_locked_check
grep -h "versions before prune" "$work/restic-locked.log" 2>/dev/null | sed 's/^/    /'

if ! kill -0 "$gw" 2>/dev/null; then
  echo "FAIL gateway-alive (the gateway exited)"; failed=$((failed + 1))
fi
echo "clients: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
