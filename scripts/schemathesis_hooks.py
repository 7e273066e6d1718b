"""Schemathesis hooks for scripts/schemathesis.sh.

The OpenAPI document states every rule a JSON Schema can state (formats, patterns, lengths,
enums, bounds). A few rules of the API cannot be stated that way: they relate a value to the
database or to another field. Without help, schemathesis sends schema-valid requests that break
them and reports the API's correct 422 as "schema-valid request rejected". These hooks make such
values behave like a real client's, the way schemathesis recommends ("extend generators to match
runtime rules"). They never drop a request, never skip a check and never touch a value that makes
a negative case negative: each rule only replaces a value that is already valid with another valid
one, and the rules that need the database run for positive cases only.

Rules (the API's, which the document describes in words):
- Idempotency-Key: one fresh key per request. A key reused for another request is answered with
  the documented 422 `idempotency_key_reused`.
- cursor: opaque, signed and bound to the caller and the list; only the server's `next_cursor`
  values are valid, so made-up ones are dropped from positive cases.
- Integers are JSON integers: JSON Schema counts `72.0` as an integer, the API does not (THREATS
  #9: floats and `1e3` are refused). Whole floats are sent as integers.
- Registration keys are unique: a key chosen in an edit is a fresh one.
- References: `product_id`, `account_id`, `to_account_id` and `payment.order_id` must name an
  existing product, partner, other partner and unpaid order of the license's account; option
  codes must be the product's options, quantities within their bounds. They point at fixtures.
- Products: each period priced once, option codes unique, `min <= max`, and every option priced
  for exactly the product's periods.
- Users: `admin` is the provider account's role, `owner`/`operator`/`viewer` a partner's.
- API keys: `expires_at` must be in the future.
- Bulk operations: `params` carries `period_months` for `renew`, `auto_renew_months` for
  `set_auto_renew`, nothing for the other actions.
- Webhook endpoints: the URL's host must resolve to a public address (the SSRF guard, tested
  by the test suite); here every endpoint points at a closed port on 127.0.0.1, which the
  server started by the script allows.
- Fixtures stay usable: the fixture products are restored before a request that depends on
  them, and the admin user whose token drives the run is not deleted (such a request deletes a
  fresh admin user instead).
"""

import datetime
import json
import os
import re
import urllib.error
import urllib.request
import uuid

import schemathesis

FIXTURES = json.load(open(os.environ["ST_FIXTURES"]))
BASE = FIXTURES["base"]
TOKEN = FIXTURES["token"]
PERIODS = [1, 3, 6, 12, 24, 36]
PRINTABLE_KEY = re.compile(r"^[\x20-\x7E]{1,255}$")
REGISTRATION_KEY = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
UUID_TEXT = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
ISSUED_CURSORS = set()
# Webhook URLs must resolve to a public address; this machine has no DNS and deliveries must
# not leave it, so endpoints point at a closed local port the server is told to allow.
WEBHOOK_SINK = "http://127.0.0.1:9/licentia-events"
# Periods of products created during the run, from their responses.
PRODUCT_PERIODS = {p["id"]: PERIODS for p in FIXTURES["products"]}
FIXTURE_PRODUCTS = {p["id"] for p in FIXTURES["products"]}
# Whether a request since the last restore may have changed a fixture product.
FIXTURES_CHANGED = False


def api(method, path, body=None):
    req = urllib.request.Request(BASE + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Authorization", "Bearer " + TOKEN)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            text = res.read()
            return res.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as err:
        return err.code, None


def is_uuid(value):
    return isinstance(value, str) and bool(UUID_TEXT.match(value))


def positive(case):
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


def integers(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integers(v) for v in value]
    return value


def pick_product(generated):
    """One of the two fixture products, chosen by the generated id (deterministically)."""
    return FIXTURES["products"][int(generated[-1], 16) % 2]["id"]


def restore_products():
    """Puts the fixture products back as created, if a request may have changed them."""
    global FIXTURES_CHANGED
    if not FIXTURES_CHANGED:
        return
    FIXTURES_CHANGED = False
    for product in FIXTURES["products"]:
        PRODUCT_PERIODS[product["id"]] = PERIODS
        api("PATCH", f"/v1/products/{product['id']}", {
            "prices": product["prices"], "options": product["options"],
            "max_registrations": None, "transferable": True, "archived": False})


def license_account(license_id):
    status, body = api("GET", f"/v1/licenses/{license_id}")
    return body["account_id"] if status == 200 else None


def unpaid_order(account_id):
    """A new unpaid order of `account_id` (ordering a license with a new, unpaid order)."""
    status, body = api("POST", "/v1/licenses", {
        "product_id": FIXTURES["products"][0]["id"], "name": "order holder", "ip": "192.0.2.200",
        "period_months": 1, "account_id": account_id,
        "payment": {"method": "new_order", "pay_now": False}})
    return body["order"]["id"] if status == 201 else None


def fix_payment(body, account_id):
    payment = body.get("payment")
    if isinstance(payment, dict) and payment.get("method") == "existing_order" \
            and is_uuid(payment.get("order_id")) and account_id:
        order = unpaid_order(account_id)
        if order:
            payment["order_id"] = order


def fix_options(body):
    options = body.get("options")
    if isinstance(options, dict) and options and all(isinstance(v, int) and v >= 0 for v in options.values()):
        body["options"] = {"extra_domains": min(min(options.values()), 10)}


def fix_prices(prices, periods=None):
    """Each period once; with `periods`, exactly those periods (amounts reused)."""
    if not isinstance(prices, list) or not all(isinstance(p, dict) for p in prices) or not prices:
        return prices
    amounts = [p.get("amount") for p in prices if isinstance(p.get("amount"), int)] or [0]
    if periods is not None:
        return [{"period_months": m, "amount": amounts[i % len(amounts)]} for i, m in enumerate(periods)]
    seen, out = set(), []
    for p in prices:
        if p.get("period_months") not in seen:
            seen.add(p.get("period_months"))
            out.append(p)
    return out


def fix_product(body, current_periods):
    if not isinstance(body, dict):
        return
    if "prices" in body and isinstance(body["prices"], list):
        if body.get("options") is None and current_periods is not None:
            body["prices"] = fix_prices(body["prices"], current_periods)
        else:
            body["prices"] = fix_prices(body["prices"])
    periods = current_periods
    if isinstance(body.get("prices"), list) and all(isinstance(p, dict) for p in body["prices"]):
        periods = [p.get("period_months") for p in body["prices"]]
    options = body.get("options")
    if isinstance(options, list) and all(isinstance(o, dict) for o in options):
        codes = set()
        for i, option in enumerate(options):
            code = option.get("code")
            if isinstance(code, str) and code in codes:
                option["code"] = (f"o{i}-" + code)[:64]
            codes.add(option.get("code"))
            low, high = option.get("min"), option.get("max")
            if isinstance(low, int) and isinstance(high, int) and low > high:
                option["min"], option["max"] = high, low
            if periods is not None:
                option["prices"] = fix_prices(option.get("prices"), periods)


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers
    if headers is not None:
        key = headers.get("Idempotency-Key")
        if isinstance(key, str) and PRINTABLE_KEY.match(key):
            headers["Idempotency-Key"] = str(uuid.uuid4())
    if case.body is not None and not isinstance(case.body, (bytes, str)):
        case.body = integers(case.body)
    global FIXTURES_CHANGED
    if case.path.startswith("/v1/products/{id}") and case.method.upper() != "GET" \
            and (case.path_parameters or {}).get("id") in FIXTURE_PRODUCTS:
        FIXTURES_CHANGED = True
    if not positive(case):
        return
    if isinstance(case.query, dict) and "cursor" in case.query \
            and case.query["cursor"] not in ISSUED_CURSORS:
        del case.query["cursor"]
    body = case.body if isinstance(case.body, dict) else None
    path, method = case.path, case.method.upper()
    # A preview takes its operation's body and follows the same rules.
    if path.endswith("/preview"):
        path = path[: -len("/preview")]
        if path == "/v1/licenses/{id}/configuration":
            method = "PUT"
    params = case.path_parameters or {}

    if path == "/v1/licenses" and method == "POST" and body is not None:
        restore_products()
        if is_uuid(body.get("product_id")):
            body["product_id"] = pick_product(body["product_id"])
        if is_uuid(body.get("account_id")):
            body["account_id"] = FIXTURES["partner"]
        fix_options(body)
        fix_payment(body, body.get("account_id") or FIXTURES["provider"])
    elif path == "/v1/licenses/{id}" and method == "PATCH" and body is not None:
        restore_products()
        if is_uuid(body.get("product_id")):
            body["product_id"] = pick_product(body["product_id"])
        key = body.get("registration_key")
        if isinstance(key, str) and REGISTRATION_KEY.match(key) and key != "rotate":
            body["registration_key"] = "k" + uuid.uuid4().hex
    elif path in ("/v1/licenses/{id}/configuration", "/v1/licenses/{id}/renewals") and body is not None:
        restore_products()
        fix_options(body)
        fix_payment(body, license_account(params.get("id")))
    elif path == "/v1/licenses/{id}/renewal-quote":
        restore_products()
    elif path == "/v1/licenses/{id}/transfers" and body is not None:
        if is_uuid(body.get("to_account_id")):
            owner = license_account(params.get("id"))
            body["to_account_id"] = FIXTURES["receiver"] if owner == FIXTURES["partner"] else FIXTURES["partner"]
    elif path == "/v1/products" and method == "POST":
        fix_product(body, None)
    elif path == "/v1/products/{id}" and method == "PATCH":
        fix_product(body, PRODUCT_PERIODS.get(params.get("id")))
    elif path == "/v1/accounts/{id}/users" and method == "POST" and body is not None:
        if isinstance(body.get("role"), str):
            if params.get("id") == FIXTURES["provider"]:
                body["role"] = "admin"
            elif body["role"] == "admin":
                body["role"] = "viewer"
    elif path == "/v1/accounts/{id}/users/{user_id}" and method == "DELETE":
        if params.get("user_id") == FIXTURES["admin_user"]:
            status, user = api("POST", f"/v1/accounts/{FIXTURES['provider']}/users", {
                "email": f"spare-{uuid.uuid4().hex[:12]}@licentia.test",
                "password": "spare-admin-password", "role": "admin"})
            if status == 201:
                case.path_parameters["id"] = FIXTURES["provider"]
                case.path_parameters["user_id"] = user["id"]
    elif path.startswith("/v1/webhook-endpoints") and method in ("POST", "PATCH") and body is not None:
        if isinstance(body.get("url"), str):
            body["url"] = WEBHOOK_SINK
    elif path == "/v1/licenses/bulk" and body is not None:
        action = body.get("action")
        params = body.get("params") if isinstance(body.get("params"), dict) else {}
        if action == "renew":
            body["params"] = {"period_months": params.get("period_months") or 12}
        elif action == "set_auto_renew":
            body["params"] = {"auto_renew_months": params.get("auto_renew_months")}
        elif "params" in body:
            body["params"] = None
    elif path == "/v1/api-keys" and method == "POST" and body is not None:
        expires = body.get("expires_at")
        if isinstance(expires, str):
            try:
                at = datetime.datetime.fromisoformat(expires.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                at = None
            if at is not None and at.tzinfo is not None and at <= datetime.datetime.now(datetime.timezone.utc):
                body["expires_at"] = (datetime.datetime.now(datetime.timezone.utc)
                                      + datetime.timedelta(days=30)).isoformat().replace("+00:00", "Z")


@schemathesis.hook
def after_call(ctx, case, response):
    try:
        body = response.json()
    except Exception:
        return
    if not isinstance(body, dict):
        return
    if isinstance(body.get("next_cursor"), str):
        ISSUED_CURSORS.add(body["next_cursor"])
    if case.path.startswith("/v1/products") and isinstance(body.get("id"), str) \
            and isinstance(body.get("prices"), list):
        PRODUCT_PERIODS[body["id"]] = [p.get("period_months") for p in body["prices"]]
