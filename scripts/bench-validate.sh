#!/usr/bin/env bash
# Benchmark of the licensed software's hot path, POST /v1/validate, on PostgreSQL.
#
# Builds the server (release by default), starts it on a fresh PostgreSQL database, seeds an
# active license with a registered machine, drives POST /v1/validate with wrk (installed with
# apt-get when missing) and prints throughput and latency percentiles. Not a test: the figures
# depend on the machine. Everything it starts it stops, and the database is dropped.
#
# Settings (environment):
#   BENCH_PG_URL       PostgreSQL server (default postgres://postgres@127.0.0.1:5432/postgres)
#   BENCH_PROFILE      cargo profile to build and run: release (default) or dev
#   BENCH_DURATION     wrk duration (default 20s)
#   BENCH_CONNECTIONS  concurrent connections (default 32)
#   BENCH_THREADS      wrk threads (default 2)
#   BENCH_PORT         port of the server (default 18080)
#   BENCH_DB_POOL      server's database pool size (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."

PG_URL="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
PROFILE="${BENCH_PROFILE:-release}"
DURATION="${BENCH_DURATION:-20s}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
THREADS="${BENCH_THREADS:-2}"
PORT="${BENCH_PORT:-18080}"
POOL="${BENCH_DB_POOL:-10}"
BASE="http://127.0.0.1:${PORT}"
DB="licentia_bench_$$"
ADMIN_EMAIL="bench-admin@licentia.test"
ADMIN_PASSWORD="bench-admin-password-$$"
WORK="$(mktemp -d)"
SERVER_PID=""

need() { command -v "$1" >/dev/null 2>&1; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  psql "$PG_URL" -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

if ! need wrk; then
  echo "installing wrk"
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi
for tool in psql curl python3 wrk; do
  need "$tool" || { echo "$tool is required" >&2; exit 1; }
done

echo "building ($PROFILE)"
cargo build -q --profile "$PROFILE" -p licentia-api
case "$PROFILE" in
  dev) BIN=target/debug/licentia ;;
  *) BIN="target/$PROFILE/licentia" ;;
esac

psql "$PG_URL" -qc "CREATE DATABASE \"$DB\"" >/dev/null
SERVER_URL="$(python3 - "$PG_URL" "$DB" <<'PY'
import sys, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit(url._replace(path="/" + sys.argv[2])))
PY
)"

LICENTIA_DATABASE_URL="$SERVER_URL" \
LICENTIA_BIND="127.0.0.1:${PORT}" \
LICENTIA_ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)" \
LICENTIA_ADMIN_EMAIL="$ADMIN_EMAIL" \
LICENTIA_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
LICENTIA_RATE_LIMIT=off \
LICENTIA_LOG=warn \
LICENTIA_DB_MAX_CONNECTIONS="$POOL" \
  "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -fs "$BASE/readyz" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.2
done
curl -fs "$BASE/readyz" >/dev/null

call() { # method path [body]
  local args=(-fsS -X "$1" "$BASE$2" -H "authorization: Bearer $TOKEN")
  [ $# -ge 3 ] && args+=(-H 'content-type: application/json' -d "$3")
  curl "${args[@]}"
}

echo "seeding an active license"
TOKEN="$(curl -fsS "$BASE/v1/auth/token" -H 'content-type: application/json' \
  -d "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}" | json '["access_token"]')"
PRODUCT="$(call POST /v1/products '{"code":"bench","name":"Bench","prices":[{"period_months":12,"amount":1000}],"options":[],"max_registrations":10,"transferable":false}' | json '["id"]')"
ACCOUNT="$(call POST /v1/accounts '{"name":"Bench partner"}' | json '["id"]')"
call POST "/v1/accounts/$ACCOUNT/credits" '{"amount":100000,"reference":"bench"}' >/dev/null
LICENSE="$(call POST /v1/licenses "{\"product_id\":\"$PRODUCT\",\"account_id\":\"$ACCOUNT\",\"name\":\"bench\",\"ip\":\"192.0.2.1\",\"period_months\":12,\"payment\":{\"method\":\"balance\"}}" | json '["license"]["id"]')"
for _ in $(seq 1 100); do
  STATUS="$(call GET "/v1/licenses/$LICENSE" | json '["status"]')"
  [ "$STATUS" = active ] && break
  sleep 0.1
done
[ "$STATUS" = active ] || { echo "the license never became active" >&2; exit 1; }
KEY="$(call GET "/v1/licenses/$LICENSE" | json '["registration_key"]')"
curl -fsS "$BASE/v1/registrations" -H 'content-type: application/json' \
  -d "{\"registration_key\":\"$KEY\",\"fingerprint\":\"bench-machine\"}" >/dev/null
BODY="{\"registration_key\":\"$KEY\",\"fingerprint\":\"bench-machine\",\"ip\":\"192.0.2.1\"}"
CODE="$(curl -fsS "$BASE/v1/validate" -H 'content-type: application/json' -d "$BODY" | json '["code"]')"
[ "$CODE" = VALID ] || { echo "validation answers $CODE, expected VALID" >&2; exit 1; }

cat >"$WORK/validate.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$BODY'
LUA

echo "driving POST /v1/validate: $THREADS threads, $CONNECTIONS connections, $DURATION ($PROFILE build, $(nproc) cores)"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/validate.lua" "$BASE/v1/validate" \
  | tee "$WORK/wrk.txt"

RPS="$(awk '/^Requests\/sec/ {print $2}' "$WORK/wrk.txt")"
P50="$(awk '$1 == "50%" {print $2}' "$WORK/wrk.txt")"
P99="$(awk '$1 == "99%" {print $2}' "$WORK/wrk.txt")"
ERRORS="$(awk '/Non-2xx/ {print $NF}' "$WORK/wrk.txt")"
echo
echo "validate: ${RPS} req/s, p50 ${P50}, p99 ${P99}, non-2xx ${ERRORS:-0}"
