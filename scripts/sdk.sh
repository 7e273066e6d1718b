#!/usr/bin/env bash
# Generated SDKs: builds three clients from openapi/openapi.json with real generators, then runs
# a smoke flow with the generated Python client against a started debug server on SQLite.
#
#   target/sdk/python            openapi-python-client
#   target/sdk/typescript-fetch  openapi-generator `typescript-fetch`
#   target/sdk/rust              openapi-generator `rust`
#
# Fails when a generator fails, when openapi-python-client warns about the document, or when a
# step of the smoke flow (scripts/sdk_smoke.py) fails. openapi-generator's notes about the
# document are printed (OpenAPI 3.1 "beta" support and target-language renames are not defects
# of the document). Everything it starts it stops.
#
# Settings (environment): SDK_VENV (default target/sdk-venv), SDK_SKIP_SMOKE=1 (generate only).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${SDK_VENV:-target/sdk-venv}"
OUT=target/sdk
SPEC=openapi/openapi.json
WORK="$(mktemp -d)"
SERVER_PID=""

cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ ! -x "$VENV/bin/openapi-python-client" ] || [ ! -x "$VENV/bin/openapi-generator-cli" ]; then
  echo "installing openapi-python-client and openapi-generator-cli into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q openapi-python-client openapi-generator-cli
fi
VENV="$(cd "$VENV" && pwd)"
# openapi-python-client formats its output with ruff, installed next to it.
export PATH="$VENV/bin:$PATH"
rm -rf "$OUT"
mkdir -p "$OUT"

echo "== openapi-python-client $(openapi-python-client --version 2>/dev/null | tail -n 1)"
openapi-python-client generate --path "$SPEC" --output-path "$OUT/python" --overwrite \
  2>&1 | tee "$WORK/python.log"
if grep -q -i "warning" "$WORK/python.log"; then
  echo "openapi-python-client warned about the document (above)" >&2
  exit 1
fi

for gen in typescript-fetch rust; do
  echo "== openapi-generator $gen"
  props="supportsES6=true,npmName=licentia-client"
  [ "$gen" = rust ] && props="packageName=licentia-client,supportAsync=true"
  if ! openapi-generator-cli generate -g "$gen" -i "$SPEC" -o "$OUT/$gen" \
      --additional-properties="$props" >"$WORK/$gen.log" 2>&1; then
    cat "$WORK/$gen.log" >&2
    echo "openapi-generator $gen failed" >&2
    exit 1
  fi
  # Notes about the document, without the target language's identifier renames.
  grep -E "WARN|ERROR" "$WORK/$gen.log" | grep -v -E "cannot be used as a" | sort | uniq -c || true
  echo "$gen: $(find "$OUT/$gen" -type f | wc -l) files"
done

if [ "${SDK_SKIP_SMOKE:-}" = 1 ]; then
  exit 0
fi

# The smoke flow's dependencies (httpx, attrs, python-dateutil) come with openapi-python-client.
echo "building the debug binary"
cargo build -q --locked -p licentia-api
BIN=target/debug/licentia
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:${PORT}"
ADMIN_EMAIL="sdk-admin@licentia.test"
ADMIN_PASSWORD="sdk-admin-password-$$"

# A config file of our own, so that a developer's ./licentia.toml does not leak in.
: >"$WORK/licentia.toml"
LICENTIA_CONFIG="$WORK/licentia.toml" \
LICENTIA_DATABASE_URL="sqlite://$WORK/licentia.db?mode=rwc" \
LICENTIA_BIND="127.0.0.1:${PORT}" \
LICENTIA_ADMIN_EMAIL="$ADMIN_EMAIL" \
LICENTIA_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
LICENTIA_RATE_LIMIT=off \
LICENTIA_JOB_POLL_MS=100 \
LICENTIA_LOG=warn \
  "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "$BASE/healthz" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; echo "the server did not start" >&2; exit 1; }
  sleep 0.2
done
curl -fsS "$BASE/readyz" >/dev/null

echo "== smoke flow with the generated Python client against $BASE"
if ! PYTHONPATH="$OUT/python" "$VENV/bin/python" scripts/sdk_smoke.py "$BASE" "$ADMIN_EMAIL" "$ADMIN_PASSWORD"; then
  echo "--- server log" >&2
  tail -n 50 "$WORK/server.log" >&2
  exit 1
fi
