#!/usr/bin/env bash
# Generated SDKs: builds three clients from openapi/openapi.json with pinned generators, then
# runs the same smoke flow with each of them against one started debug server on SQLite.
#
#   target/sdk/python            openapi-python-client   flow: scripts/sdk_smoke.py
#   target/sdk/typescript-fetch  openapi-generator       flow: scripts/sdk/ts/smoke.ts (tsc, Node 20)
#   target/sdk/rust              openapi-generator       flow: scripts/sdk/rust-smoke (cargo)
#
# The flow, in each language: log in, create a product, a partner with an owner, credit it,
# preview and order a license, list with filters, preview and renew (the new valid_until is the
# preview's), disable and enable, preview and make a transfer to a second partner who accepts
# it, then validate the license and verify the Ed25519 signature of the answer against
# GET /v1/signing-key. Each step asserts the objects it gets back.
#
# Fails when a generator fails, when openapi-python-client warns about the document, when a
# client does not compile, or when a step of a flow fails. openapi-generator's notes about the
# document are printed (OpenAPI 3.1 "beta" support and target-language renames are not defects
# of the document). Everything it starts it stops. Prints the time each language took.
#
# Settings (environment): SDK_VENV (default target/sdk-venv), SDK_SKIP_SMOKE=1 (generate only),
# SDK_LANGUAGES (default "python typescript rust").
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned generator and tool versions; the TypeScript and Rust flows pin theirs in
# scripts/sdk/ts/package-lock.json and scripts/sdk/rust-smoke/Cargo.lock.
OPENAPI_PYTHON_CLIENT=0.29.1
OPENAPI_GENERATOR_CLI=7.26.0 # the PyPI wheel ships the openapi-generator jar of this version
RUFF=0.17.6                  # openapi-python-client formats its output with it
CRYPTOGRAPHY=50.0.2          # Ed25519 for the Python flow's signature check

VENV="${SDK_VENV:-target/sdk-venv}"
LANGUAGES="${SDK_LANGUAGES:-python typescript rust}"
OUT=target/sdk
SPEC=openapi/openapi.json
WORK="$(mktemp -d)"
SERVER_PID=""
declare -A TOOK

cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

wants() { [[ " $LANGUAGES " == *" $1 "* ]]; }
# `timed LANG command…`: runs the command and adds its seconds to LANG's total.
timed() {
  local lang="$1" start=$SECONDS
  shift
  "$@"
  TOOK[$lang]=$(( ${TOOK[$lang]:-0} + SECONDS - start ))
}

pins_installed() {
  [ -x "$VENV/bin/python" ] || return 1
  "$VENV/bin/python" - "$OPENAPI_PYTHON_CLIENT" "$OPENAPI_GENERATOR_CLI" "$RUFF" "$CRYPTOGRAPHY" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
wanted = dict(zip(["openapi-python-client", "openapi-generator-cli", "ruff", "cryptography"], sys.argv[1:]))
try:
    sys.exit(0 if all(version(name) == v for name, v in wanted.items()) else 1)
except PackageNotFoundError:
    sys.exit(1)
PY
}
if ! pins_installed; then
  echo "installing the pinned generators into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "openapi-python-client==$OPENAPI_PYTHON_CLIENT" \
    "openapi-generator-cli==$OPENAPI_GENERATOR_CLI" "ruff==$RUFF" "cryptography==$CRYPTOGRAPHY"
fi
VENV="$(cd "$VENV" && pwd)"
export PATH="$VENV/bin:$PATH"
mkdir -p "$OUT"

generate_python() {
  echo "== openapi-python-client $(openapi-python-client --version 2>/dev/null | tail -n 1)"
  rm -rf "$OUT/python"
  openapi-python-client generate --path "$SPEC" --output-path "$OUT/python" --overwrite \
    2>&1 | tee "$WORK/python.log"
  if grep -q -i "warning" "$WORK/python.log"; then
    echo "openapi-python-client warned about the document (above)" >&2
    return 1
  fi
}

generate_openapi_generator() {
  local gen="$1" props
  echo "== openapi-generator $OPENAPI_GENERATOR_CLI $gen"
  props="supportsES6=true,npmName=licentia-client"
  [ "$gen" = rust ] && props="packageName=licentia-client,supportAsync=true"
  rm -rf "${OUT:?}/$gen"
  if ! openapi-generator-cli generate -g "$gen" -i "$SPEC" -o "$OUT/$gen" \
      --additional-properties="$props" >"$WORK/$gen.log" 2>&1; then
    cat "$WORK/$gen.log" >&2
    echo "openapi-generator $gen failed" >&2
    return 1
  fi
  # Notes about the document, without the target language's identifier renames.
  grep -E "WARN|ERROR" "$WORK/$gen.log" | grep -v -E "cannot be used as a" | sort | uniq -c || true
  echo "$gen: $(find "$OUT/$gen" -type f | wc -l) files"
}

build_typescript() {
  echo "== tsc: the TypeScript flow with the generated client"
  (cd scripts/sdk/ts && npm ci --no-audit --no-fund --loglevel=error)
  rm -rf "$OUT/ts-build"
  scripts/sdk/ts/node_modules/.bin/tsc -p scripts/sdk/ts
}

build_rust() {
  echo "== cargo: the generated Rust client and the Rust flow"
  # The generated crate is its own workspace, so that `cargo check` works where it is written
  # (inside this repository's workspace directory, of which it is no member).
  printf '\n[workspace]\n' >>"$OUT/rust/Cargo.toml"
  CARGO_TARGET_DIR=target/sdk-rust-target cargo build -q --locked \
    --manifest-path scripts/sdk/rust-smoke/Cargo.toml
}

if wants python; then timed python generate_python; fi
if wants typescript; then timed typescript generate_openapi_generator typescript-fetch; fi
if wants rust; then timed rust generate_openapi_generator rust; fi

if [ "${SDK_SKIP_SMOKE:-}" = 1 ]; then
  exit 0
fi

if wants typescript; then timed typescript build_typescript; fi
if wants rust; then timed rust build_rust; fi

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

flow() {
  local lang="$1"
  shift
  echo "== smoke flow with the generated $lang client against $BASE"
  if ! "$@" "$BASE" "$ADMIN_EMAIL" "$ADMIN_PASSWORD"; then
    echo "--- server log" >&2
    tail -n 50 "$WORK/server.log" >&2
    return 1
  fi
}
if wants python; then
  timed python flow python env PYTHONPATH="$OUT/python" "$VENV/bin/python" scripts/sdk_smoke.py
fi
if wants typescript; then
  timed typescript flow typescript node target/sdk/ts-build/scripts/sdk/ts/smoke.js
fi
if wants rust; then
  timed rust flow rust target/sdk-rust-target/debug/licentia-sdk-smoke
fi

for lang in $LANGUAGES; do
  echo "sdk $lang: ${TOOK[$lang]:-0} s (generate, build, flow)"
done
