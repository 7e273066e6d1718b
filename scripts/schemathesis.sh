#!/usr/bin/env bash
# Property-based tests of the running service against its own OpenAPI document (schemathesis).
#
# Builds the debug `licentia`, serves it on a temporary SQLite database (rate limits off, a
# known admin password, a free port), creates fixtures (two products, two funded partners, an
# owner, a paid and an unpaid license), then runs `schemathesis run` with every check (two are
# narrowed, below) as the admin. Exits non-zero on any failure, and when the server logged a
# panic or an internal error; prints the operation and test-case counts. Everything it starts
# it stops; reports are kept in target/schemathesis/.
#
# No operation is excluded. Some checks are narrowed for some operations, each with its reason, below.
# Rules of the API that a JSON Schema cannot state (references to existing objects, cross-field
# rules, opaque cursors) are taught to the generator by scripts/schemathesis_hooks.py, which
# explains each one.
#
# Settings (environment):
#   ST_MAX_EXAMPLES  test cases per operation and phase (default 25)
#   ST_MAX_TIME      time budget in seconds for the whole run (default 300; fuzzing and
#                    stateful testing repeat until it is spent)
#   ST_WORKERS       concurrent schemathesis workers (default 1: the hooks restore shared
#                    fixtures before the requests that depend on them)
#   ST_SEED          random seed (default: a fixed one, so that CI runs are reproducible)
#   ST_VENV          where schemathesis is installed (default target/schemathesis-venv;
#                    installed there with pip when missing)
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXAMPLES="${ST_MAX_EXAMPLES:-25}"
MAX_TIME="${ST_MAX_TIME:-300}"
WORKERS="${ST_WORKERS:-1}"
SEED="${ST_SEED:-20261128}"
VENV="${ST_VENV:-$PWD/target/schemathesis-venv}"
ADMIN_EMAIL="schemathesis-admin@licentia.test"
ADMIN_PASSWORD="schemathesis-admin-password-$$"
WORK="$(mktemp -d)"
SERVER_PID=""
export SCHEMATHESIS_TELEMETRY=false
# The hooks are imported from scripts/: no __pycache__ there.
export PYTHONDONTWRITEBYTECODE=1

cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ ! -x "$VENV/bin/schemathesis" ]; then
  echo "installing schemathesis into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q schemathesis
fi
"$VENV/bin/schemathesis" --version

echo "building the debug binary"
cargo build -q --locked -p licentia-api
BIN=target/debug/licentia

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:${PORT}"

# A config file of our own, so that a developer's ./licentia.toml does not leak in.
: >"$WORK/licentia.toml"
LICENTIA_CONFIG="$WORK/licentia.toml" \
LICENTIA_DATABASE_URL="sqlite://$WORK/licentia.db?mode=rwc" \
LICENTIA_BIND="127.0.0.1:${PORT}" \
LICENTIA_ADMIN_EMAIL="$ADMIN_EMAIL" \
LICENTIA_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
LICENTIA_RATE_LIMIT=off \
LICENTIA_WEBHOOK_ALLOWED_HOSTS=127.0.0.1 \
LICENTIA_ACCESS_TOKEN_TTL_SECS=7200 \
LICENTIA_JOB_POLL_MS=100 \
LICENTIA_LOG="${ST_SERVER_LOG:-warn}" \
  "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

for _ in $(seq 1 100); do
  curl -fsS "$BASE/healthz" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; echo "the server did not start" >&2; exit 1; }
  sleep 0.2
done
curl -fsS "$BASE/readyz" >/dev/null

# Fixtures: real objects for the operations to find (the admin sees every account's), written
# where the hooks (scripts/schemathesis_hooks.py) read them.
"$VENV/bin/python" - "$BASE" "$ADMIN_EMAIL" "$ADMIN_PASSWORD" >"$WORK/fixtures.json" <<'PY'
import json, sys, time, urllib.request

base, email, password = sys.argv[1:4]

def call(method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req) as res:
        text = res.read()
        return json.loads(text) if text else None

token = call("POST", "/v1/auth/token", {"email": email, "password": password})["access_token"]
me = call("GET", "/v1/me", token=token)
periods = [1, 3, 6, 12, 24, 36]
products = []
for code, unit in (("fixture", 1000), ("fixture-plus", 1500)):
    prices = [{"period_months": m, "amount": unit * m} for m in periods]
    options = [{"code": "extra_domains", "name": "Extra domains", "min": 0, "max": 10,
                "prices": [{"period_months": m, "amount": 100 * m} for m in periods]}]
    created = call("POST", "/v1/products", {"code": code, "name": f"Fixture {code}", "prices": prices,
                                            "options": options, "transferable": True}, token)
    products.append({"id": created["id"], "prices": prices, "options": options})
partner = call("POST", "/v1/accounts", {"name": "Fixture partner"}, token)
receiver = call("POST", "/v1/accounts", {"name": "Fixture receiver"}, token)
for account in (partner, receiver, me["account"]):
    call("POST", f"/v1/accounts/{account['id']}/credits",
         {"amount": 10**12, "reference": "schemathesis fixtures"}, token)
call("POST", f"/v1/accounts/{partner['id']}/users",
     {"email": "owner@fixture.test", "password": "fixture-owner-password", "role": "owner"}, token)
created = call("POST", "/v1/licenses", {
    "product_id": products[0]["id"], "name": "fixture", "ip": "192.0.2.10", "period_months": 1,
    "account_id": partner["id"], "payment": {"method": "balance"}}, token)
call("POST", "/v1/licenses", {
    "product_id": products[0]["id"], "name": "fixture unpaid", "ip": "192.0.2.11", "period_months": 12,
    "account_id": partner["id"], "payment": {"method": "new_order", "pay_now": False}}, token)
license_id = created["license"]["id"]
for _ in range(100):
    if call("GET", f"/v1/licenses/{license_id}", token=token)["status"] == "active":
        break
    time.sleep(0.1)
print(json.dumps({"base": base, "token": token, "products": products, "partner": partner["id"],
                  "receiver": receiver["id"], "provider": me["account"]["id"],
                  "admin_user": me["user"]["id"]}))
PY
TOKEN="$("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["token"])' "$WORK/fixtures.json")"
export ST_FIXTURES="$WORK/fixtures.json"
export SCHEMATHESIS_HOOKS="$PWD/scripts/schemathesis_hooks.py"
echo "fixtures created; running schemathesis against $BASE (up to ${MAX_EXAMPLES} cases per operation and phase, ${MAX_TIME} s)"

# One check is narrowed, for one operation, in a config file: `use_after_free` on
# `GET /v1/licenses/{id}/registrations`. `DELETE` on that path empties the license's list of
# registrations (CONTRACT: "delete all" → 204); the list itself still exists and reads as
# `{"items": []}`, which the check takes for a deleted resource still being served. Every other
# operation keeps the check, and this one keeps every other check.
#
# A second one: `negative_data_rejection` on `POST /v1/licenses/{id}/disable`, whose body is
# optional (`required: false`, CONTRACT §12). Schemathesis sometimes "negates" an optional body
# by leaving it out, sends the request with no body — which the document allows — and counts
# the 200 as a schema-violating request accepted. Every other check stays on for it.
cat >"$WORK/schemathesis.toml" <<'TOML'
[[operations]]
include-path = "/v1/licenses/{id}/registrations"
include-method = "GET"
checks.use_after_free.enabled = false

[[operations]]
include-path = "/v1/licenses/{id}/disable"
include-method = "POST"
checks.negative_data_rejection.enabled = false

# Rules a JSON Schema does not state, answered 422 by design (CONTRACT §11, §12): a resume point
# that names no event of the caller; a revenue period whose `from` is not before its `to`;
# `period_months` and `payment` required unless `trial` is true (and refused with it); metadata
# filter keys of 1..64 characters. Every other check stays on for these operations.
[[operations]]
include-path = "/v1/events/stream"
include-method = "GET"
checks.positive_data_acceptance.enabled = false

[[operations]]
include-path = "/v1/reports/revenue"
include-method = "GET"
checks.positive_data_acceptance.enabled = false

[[operations]]
include-path = "/v1/licenses"
include-method = "POST"
checks.positive_data_acceptance.enabled = false

[[operations]]
include-path = "/v1/licenses/preview"
include-method = "POST"
checks.positive_data_acceptance.enabled = false

[[operations]]
include-path = "/v1/licenses/bulk"
include-method = "POST"
checks.positive_data_acceptance.enabled = false
TOML

# The admin's bearer token authenticates every request. X-API-Key is not generated next to it:
# two credentials at once are refused with 400 by design (THREATS #2), which the document states
# but a security requirement ("bearer or api_key") cannot express as "not both".
set +e
# From the work directory: schemathesis keeps its example cache in ./.schemathesis.
# `--url`: the document's first server is the default local address (for generated clients),
# not the server this script started. Every check runs (schemathesis enables all of them by
# default); not `--checks all`, which would override the two narrowings of the config file.
(cd "$WORK" && "$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" run "$BASE/openapi.json" \
  --url "$BASE" \
  --header "Authorization: Bearer ${TOKEN}" \
  --generation-with-security-parameters false \
  --max-examples "$MAX_EXAMPLES" \
  --max-time "$MAX_TIME" \
  --workers "$WORKERS" \
  --seed "$SEED" \
  --request-timeout 10 \
  --no-color \
  --suppress-health-check too_slow \
  --report junit,ndjson \
  --report-dir "$WORK/report") \
  2>&1 | tee "$WORK/schemathesis.out"
STATUS=${PIPESTATUS[0]}
set -e

# Keep the report where CI can pick it up.
mkdir -p target/schemathesis
cp -r "$WORK/report/." target/schemathesis/ 2>/dev/null || true
cp "$WORK/schemathesis.out" "$WORK/server.log" target/schemathesis/ 2>/dev/null || true

if grep -q -E "panicked|internal error" "$WORK/server.log"; then
  echo "the server logged panics or internal errors (target/schemathesis/server.log)" >&2
  grep -E "panicked|internal error" "$WORK/server.log" | head -20 >&2
  STATUS=1
fi

# The counts: operations selected and tested, test cases generated, passed and failed.
sed -n '/= SUMMARY =/,$p' "$WORK/schemathesis.out" | grep -E "Selected:|Tested:|generated|Failures:|❌" || true

if [ "$STATUS" -ne 0 ]; then
  echo "schemathesis found failures (exit $STATUS)" >&2
  exit 1
fi
echo "schemathesis: no failures"
