"""pgbench scripts for the list and renewal scenarios of scripts/bench.py.

Each is the sequence of statements the server runs for one request, in the same order, with
the same parameters bound (pgbench -M prepared), read off PostgreSQL's statement log of a real
request. Where pgbench cannot bind what the server computes (fresh UUIDv7 ids, a JSON snapshot
of the license), the statement computes it (gen_random_uuid(), a constant document of the same
size) or reads it back with RETURNING ... \\gset.
"""
import json
import subprocess

LICENSE_COLS = ", ".join(f'"licenses"."{c}"' for c in (
    "id", "account_id", "product_id", "name", "name_lower", "ip", "ip_key", "period_months",
    "valid_until", "status", "suspension_reason", "came_from_status", "came_from_reason",
    "resumes_to_status", "resumes_to_reason", "options", "auto_renew_months",
    "registration_key", "registration_key_hash", "registrations_count", "provisioning_error",
    "external_id", "metadata", "admin_password_enc", "version", "expiring_notice_for",
    "created_at", "updated_at", "deleted_at"))

PRODUCT_COLS = ", ".join(f'"products"."{c}"' for c in (
    "id", "code", "name", "prices", "options", "max_registrations", "transferable", "archived",
    "created_at", "updated_at"))

PRODUCT_PREFIXED = ", ".join(f'"products"."{c}" AS "p_{c}"' for c in (
    "id", "code", "name", "prices", "options", "max_registrations", "transferable", "archived",
    "created_at", "updated_at"))

ACCOUNT_PREFIXED = ", ".join(f'"accounts"."{c}" AS "a_{c}"' for c in (
    "id", "kind", "name", "currency", "balance", "credit_limit", "created_at", "updated_at"))

ACCOUNT_COLS = ", ".join(f'"accounts"."{c}"' for c in (
    "id", "kind", "name", "currency", "balance", "credit_limit", "created_at", "updated_at"))

ORDER_COLS = ", ".join(f'"orders"."{c}"' for c in (
    "id", "account_id", "status", "total", "currency", "created_at", "paid_at", "cancelled_at"))

ITEM_COLS = ", ".join(f'"order_items"."{c}"' for c in (
    "id", "order_id", "license_id", "kind", "period_months", "amount", "status", "payload",
    "created_at"))

WEBHOOK_COLS = ", ".join(f'"webhook_endpoints"."{c}"' for c in (
    "id", "account_id", "all_accounts", "url", "event_types", "secret_enc", "enabled",
    "created_at", "updated_at"))

AUTH = (f'SELECT "api_keys".*, {ACCOUNT_PREFIXED} FROM "api_keys" INNER JOIN "accounts" '
        f'ON "accounts"."id" = "api_keys"."account_id" '
        f'WHERE "api_keys"."key_hash" = :key_hash AND "api_keys"."revoked_at" IS NULL;\n')

UUID_OF_N = ("(lpad(to_hex((:base_ms::bigint + :n::bigint * :step_ms::bigint) >> 16), 8, '0') || '-' || "
             "lpad(to_hex((:base_ms::bigint + :n::bigint * :step_ms::bigint) & 65535), 4, '0') || "
             "'-7000-8000-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid")

# A license snapshot as events store it (before/after), about the size the server writes.
SNAPSHOT = json.dumps({
    "ip": "10.255.200.193", "name": "git-shop-5.example.org", "status": "active",
    "options": {}, "version": 1, "account_id": "01a223da-8c40-70f5-a5d0-f7497454f0a6",
    "product_id": "01a223da-8c38-7636-8887-77920f23d909",
    "valid_until": "2028-02-10T18:30:55.032618Z", "period_months": 12,
    "auto_renew_months": None, "suspension_reason": None})


def _product_ids(db_url):
    out = subprocess.run(["psql", db_url, "-qAtX", "-c", "SELECT id FROM products ORDER BY id"],
                         check=True, capture_output=True, text=True).stdout.split()
    return out


def list_sql(db_url, fname, depth, after_ids):
    """Authentication, then in one transaction planned for its parameters (see
    `Db::search`): one keyset page of 51 rows (50 and one to tell whether more follow)
    and the page's products."""
    if fname == "name":
        where = ('"licenses"."account_id" = :account AND "name_lower" LIKE :pattern '
                 "ESCAPE E'\\\\' AND \"licenses\".\"status\" <> :deleted")
    elif fname == "cidr":
        where = ('"licenses"."account_id" = :account AND "licenses"."ip_key" >= :ip_lo '
                 'AND "licenses"."ip_key" <= :ip_hi AND "licenses"."status" <> :deleted')
    else:
        where = '"licenses"."account_id" = :account AND "licenses"."status" IN (:status)'
    if depth == "deep":
        where += ' AND "licenses"."id" < :after'
    products = _product_ids(db_url)
    in_list = ", ".join(f":p{i}" for i in range(len(products)))
    sql = (AUTH
           + "BEGIN;\nSET LOCAL plan_cache_mode = force_custom_plan;\nSET LOCAL random_page_cost = 1.1;\n"
           + f'SELECT {LICENSE_COLS} FROM "licenses" WHERE {where} '
             f'ORDER BY "licenses"."id" DESC LIMIT :limit;\n'
           + f'SELECT {PRODUCT_COLS} FROM "products" WHERE "products"."id" IN ({in_list});\n'
           + "COMMIT;\n")
    variables = {f"p{i}": p for i, p in enumerate(products)}
    variables.update(limit=51, deleted="deleted", pattern="%shop%",
                     ip_lo="\\x00000000000000000000ffff0a100000",
                     ip_hi="\\x00000000000000000000ffff0a1fffff", status="suspended")
    if depth == "deep":
        variables["after"] = after_ids[fname]
    return sql, variables


def renew_sql(n_max):
    """One renewal from balance: the statements of POST /v1/licenses/{id}/renewals.

    pgbench cannot map a license to its owner's API key, so the authentication statement is
    joined to the license to find the owner's key: one more primary-key join than the server's
    statement, which makes pgbench's side slightly slower, not faster.
    """
    # An active license: (n * 7919) % 100 is below 72 exactly when n % 100 = (79 * t) % 100
    # for some t < 72 (79 is 19's inverse modulo 100; see licentia seed's status_of).
    pick = (f"\\set k random(0, {n_max // 100 - 1})\n"
            "\\set t random(0, 71)\n"
            "\\set n 100 * :k + (79 * :t) % 100\n")
    lic = UUID_OF_N
    item_payload = json.dumps({"period_months": 1})
    sql = pick + f"""SELECT "api_keys"."key_hash", {ACCOUNT_PREFIXED} FROM "api_keys" INNER JOIN "accounts" ON "accounts"."id" = "api_keys"."account_id" INNER JOIN "licenses" ON "licenses"."account_id" = "accounts"."id" WHERE "licenses"."id" = {lic} AND "api_keys"."revoked_at" IS NULL \\gset
SELECT "licenses".*, {PRODUCT_PREFIXED} FROM "licenses" INNER JOIN "products" ON "products"."id" = "licenses"."product_id" WHERE "licenses"."id" = {lic} AND "licenses"."account_id" = :a_id;
BEGIN;
SELECT {LICENSE_COLS} FROM "licenses" WHERE "licenses"."id" = {lic} AND "licenses"."account_id" = :a_id LIMIT 1 FOR UPDATE;
INSERT INTO "orders" ("id", "account_id", "status", "total", "currency", "created_at", "paid_at", "cancelled_at") VALUES (gen_random_uuid(), :a_id, 'unpaid', 0, 'USD', now(), NULL, NULL) RETURNING "id" AS order_id \\gset
UPDATE "orders" SET "total" = "total" + :amount WHERE "orders"."id" = :order_id AND "orders"."status" = 'unpaid';
INSERT INTO "order_items" ("id", "order_id", "license_id", "kind", "period_months", "amount", "status", "payload", "created_at") VALUES (gen_random_uuid(), :order_id, {lic}, 'renewal', 1, :amount, 'pending', '{item_payload}', now());
SELECT {ORDER_COLS} FROM "orders" WHERE "orders"."id" = :order_id AND "orders"."account_id" = :a_id LIMIT 1 FOR UPDATE;
SELECT {ITEM_COLS} FROM "order_items" WHERE "order_items"."order_id" = :order_id ORDER BY "order_items"."id" ASC;
UPDATE "orders" SET "status" = 'paid', "paid_at" = now() WHERE "orders"."id" = :order_id AND "orders"."status" = 'unpaid';
UPDATE "order_items" SET "status" = 'fulfilled' WHERE "order_items"."order_id" = :order_id AND "order_items"."status" = 'pending';
SELECT {LICENSE_COLS} FROM "licenses" WHERE "licenses"."id" = {lic} LIMIT 1 FOR UPDATE;
UPDATE "accounts" SET "balance" = "balance" - :amount, "updated_at" = now() WHERE "accounts"."id" = :a_id AND "balance" + "credit_limit" >= :amount;
INSERT INTO "ledger_entries" ("id", "account_id", "amount", "kind", "reference", "order_id", "created_at") VALUES (gen_random_uuid(), :a_id, 0 - :amount, 'charge', 'order ' || :order_id, :order_id, now());
SELECT {ACCOUNT_COLS} FROM "accounts" WHERE "accounts"."id" = :a_id LIMIT 1;
SELECT {LICENSE_COLS} FROM "licenses" WHERE "licenses"."id" = {lic} LIMIT 1 FOR UPDATE;
UPDATE "licenses" SET "valid_until" = "valid_until" + interval '1 month', "period_months" = 1, "version" = "version" + 1, "updated_at" = now() WHERE "licenses"."id" = {lic};
INSERT INTO "events" ("id", "type", "account_id", "license_id", "actor_kind", "actor_id", "before", "after", "created_at") VALUES (gen_random_uuid(), 'license.renewed', :a_id, {lic}, 'api_key', NULL, '{SNAPSHOT}', '{SNAPSHOT}', now());
SELECT {WEBHOOK_COLS} FROM "webhook_endpoints" WHERE "webhook_endpoints"."enabled" = true AND ("webhook_endpoints"."account_id" = :a_id OR "webhook_endpoints"."all_accounts" = true);
INSERT INTO "events" ("id", "type", "account_id", "license_id", "actor_kind", "actor_id", "before", "after", "created_at") VALUES (gen_random_uuid(), 'order.paid', :a_id, NULL, 'api_key', NULL, NULL, '{{"total": 300}}', now());
SELECT {WEBHOOK_COLS} FROM "webhook_endpoints" WHERE "webhook_endpoints"."enabled" = true AND ("webhook_endpoints"."account_id" = :a_id OR "webhook_endpoints"."all_accounts" = true);
SELECT {ORDER_COLS} FROM "orders" WHERE "orders"."id" = :order_id LIMIT 1;
SELECT {ITEM_COLS} FROM "order_items" WHERE "order_items"."order_id" = :order_id ORDER BY "order_items"."id" ASC;
SELECT {LICENSE_COLS} FROM "licenses" WHERE "licenses"."id" = {lic} LIMIT 1;
COMMIT;
"""
    return sql, {"amount": 300}
