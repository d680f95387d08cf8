#!/usr/bin/env bash
# LocalStack, the backend with native S3 Object Lock that the `native` profile tests run against.
#
#   tests/localstack.sh install        create the venv (idempotent)
#   tests/localstack.sh start DIR [PORT]  start on 127.0.0.1:PORT (default 4566) with state under
#                                         DIR; prints the PID
#
# localstack-core 4.14.0 is the last release that runs without an auth token; it needs
# Python 3.13 (pyenv) and the pins below.
set -euo pipefail

VENV="${WORMGATE_LOCALSTACK_VENV:-$HOME/.cache/wormgate/localstack-venv}"

install() {
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import localstack, rolo' 2>/dev/null; then
        return
    fi
    local py=""
    # pyenv's shim exists even where 3.13 is not selected: ask for the interpreter itself.
    if command -v pyenv >/dev/null; then
        local v
        v="$(pyenv versions --bare | grep '^3\.13' | tail -1 || true)"
        [ -n "$v" ] && py="$(pyenv root)/versions/$v/bin/python3.13"
    fi
    if [ ! -x "$py" ] && command -v python3.13 >/dev/null && python3.13 -V >/dev/null 2>&1; then
        py="$(command -v python3.13)"
    fi
    [ -x "$py" ] || { echo "localstack: no python3.13 found" >&2; exit 1; }
    "$py" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        'localstack-core[runtime]==4.14.0' 'cbor2<5.7' 'pyopenssl<24.3' 'cryptography<44' service_identity
}

start() {
    local dir="$1" port="${2:-4566}"
    mkdir -p "$dir/cache"
    SERVICES=s3 GATEWAY_SERVER=hypercorn GATEWAY_LISTEN="127.0.0.1:$port" OVERRIDE_IN_DOCKER=0 \
        FILESYSTEM_ROOT="$dir" LOCALSTACK_VOLUME_DIR="$dir" DNS_ADDRESS=0 EAGER_SERVICE_LOADING=1 \
        SKIP_SSL_CERT_DOWNLOAD=1 DISABLE_EVENTS=1 XDG_CACHE_HOME="$dir/cache" \
        nohup "$VENV/bin/python" -m localstack.runtime.main >"$dir/localstack.log" 2>&1 &
    echo $!
}

case "${1:-}" in
    install) install ;;
    start) install >&2; start "${2:?state dir}" "${3:-4566}" ;;
    *) echo "usage: $0 install|start DIR" >&2; exit 2 ;;
esac
