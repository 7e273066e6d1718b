"""Smoke flow with the generated Python client (target/sdk/python), run by scripts/sdk.sh.

The same flow as scripts/sdk/ts/smoke.ts and scripts/sdk/rust-smoke: log in as the admin,
create a product, a partner with an owner, credit it; preview and order a license paid from
the balance; list licenses with filters; preview and renew (the new valid_until is the
preview's); disable and enable; preview and offer a transfer to a second partner, who accepts
it with the secret; validate the license with its registration key and verify the Ed25519
signature of the answer (over the RFC 8785 canonical JSON of the answer without `signature`)
with the key from GET /v1/signing-key. Every call goes through the generated client and every
step asserts the objects it gets back; any unexpected status or value fails the run.
"""

import base64
import json
import sys
import time
import uuid

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from licentia_client import AuthenticatedClient, Client
from licentia_client.api.accounts import create_account
from licentia_client.api.auth import create_token
from licentia_client.api.billing import create_credit
from licentia_client.api.licensed_software import get_signing_key, validate_license
from licentia_client.api.licenses import (
    create_license,
    disable_license,
    enable_license,
    get_license,
    list_licenses,
    preview_create_license,
    preview_renew_license,
    renew_license,
)
from licentia_client.api.products import create_product
from licentia_client.api.transfers import accept_transfer, create_transfer, preview_create_transfer
from licentia_client.api.users import create_user
from licentia_client.models import (
    AcceptTransfer,
    BalancePayment,
    CreateAccount,
    CreateCredit,
    CreateLicense,
    CreateProduct,
    CreateRenewal,
    CreateTransfer,
    CreateUser,
    LicenseStatus,
    OrderStatus,
    PeriodMonths,
    PriceDto,
    Role,
    SuspensionReason,
    TokenRequest,
    TransferStatus,
    ValidateRequest,
)

BASE, ADMIN_EMAIL, ADMIN_PASSWORD = sys.argv[1:4]
RUN = uuid.uuid4().hex[:8]
steps = []


def ok(step, response, expected):
    """The parsed body of `response`, after checking its status."""
    if response.status_code != expected:
        raise SystemExit(f"{step}: expected {expected}, got {response.status_code}: {response.content!r}")
    steps.append(step)
    print(f"  ok  {step} ({response.status_code})")
    return response.parsed


def check(what, actual, expected):
    if actual != expected:
        raise SystemExit(f"{what}: expected {expected!r}, got {actual!r}")


def login(email, password):
    anonymous = Client(base_url=BASE, raise_on_unexpected_status=True)
    token = ok(f"log in as {email}", create_token.sync_detailed(
        client=anonymous, body=TokenRequest(email=email, password=password)), 200)
    check("token type", token.token_type, "Bearer")
    return AuthenticatedClient(base_url=BASE, token=token.access_token, raise_on_unexpected_status=True)


def partner_with_owner(admin, name):
    account = ok(f"create partner {name}", create_account.sync_detailed(
        client=admin, body=CreateAccount(name=name)), 201)
    check("partner name", account.name, name)
    email = f"owner-{name.lower().replace(' ', '-')}-{RUN}@sdk.test"
    password = f"owner-password-{RUN}"
    user = ok(f"create owner of {name}", create_user.sync_detailed(
        account.id, client=admin, body=CreateUser(email=email, password=password, role=Role.OWNER)), 201)
    check("owner role", user.role, Role.OWNER)
    return account, login(email, password)


def wait_active(client, license_id):
    for _ in range(100):
        current = get_license.sync_detailed(license_id, client=client).parsed
        if current.status == LicenseStatus.ACTIVE:
            return current
        time.sleep(0.1)
    raise SystemExit(f"license {license_id} did not become active (status {current.status})")


def canonical(value):
    """RFC 8785 (JCS) for what the answer holds: objects, strings, integers, booleans, null."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


admin = login(ADMIN_EMAIL, ADMIN_PASSWORD)
prices = [PriceDto(period_months=m, amount=1000 * m.value)
          for m in (PeriodMonths.M1, PeriodMonths.M3, PeriodMonths.M12)]
product = ok("create product", create_product.sync_detailed(client=admin, body=CreateProduct(
    code=f"sdk-py-{RUN}", name="SDK smoke product", prices=prices, transferable=True)), 201)
check("product code", product.code, f"sdk-py-{RUN}")

partner, owner = partner_with_owner(admin, "SDK partner")
credit = ok("credit partner", create_credit.sync_detailed(
    partner.id, client=admin, idempotency_key=f"sdk-credit-{RUN}",
    body=CreateCredit(amount=100_000, reference="sdk smoke")), 201)
check("credited amount", credit.amount, 100_000)

order = CreateLicense(product_id=product.id, name=f"sdk-{RUN}", ip="192.0.2.20",
                      period_months=PeriodMonths.M1, payment=BalancePayment())
preview = ok("preview the order", preview_create_license.sync_detailed(client=owner, body=order), 200)
check("previewed amount", preview.amount, 1000)
created = ok("order license (balance)", create_license.sync_detailed(
    client=owner, idempotency_key=f"sdk-order-{RUN}", body=order), 201)
license_id = created.license_.id
check("ordered license name", created.license_.name, f"sdk-{RUN}")
check("ordered license ip", created.license_.ip, "192.0.2.20")
check("order status", created.order.status, OrderStatus.PAID)
check("order total", created.order.total, preview.amount)
check("order's license", created.order.items[0].license_id, license_id)
before = wait_active(owner, license_id)
steps.append("license active")

page = ok("list licenses filtered by name and status", list_licenses.sync_detailed(
    client=owner, name=f"sdk-{RUN}", status="active", limit=10), 200)
check("filtered list", [item.id for item in page.items], [license_id])
check("last page", page.next_cursor, None)

renewal = CreateRenewal(period_months=PeriodMonths.M3, payment=BalancePayment())
quote = ok("preview the renewal", preview_renew_license.sync_detailed(license_id, client=owner, body=renewal), 200)
check("renewal price", quote.amount, 3000)
renewed = ok("renew license (balance)", renew_license.sync_detailed(
    license_id, client=owner, idempotency_key=f"sdk-renew-{RUN}", body=renewal), 201)
check("renewed valid_until", renewed.license_.valid_until, quote.valid_until_after)
check("renewed period", renewed.license_.period_months, PeriodMonths.M3)
if not renewed.license_.valid_until > before.valid_until:
    raise SystemExit(f"the renewal did not extend valid_until ({before.valid_until} -> {renewed.license_.valid_until})")
check("renewed valid_until once active", wait_active(owner, license_id).valid_until, quote.valid_until_after)

disabled = ok("disable license", disable_license.sync_detailed(license_id, client=owner), 200)
check("disabled status", disabled.status, LicenseStatus.SUSPENDED)
check("suspension reason", disabled.suspension_reason, SuspensionReason.MANUAL)
ok("enable license", enable_license.sync_detailed(license_id, client=owner), 200)
check("enabled license", wait_active(owner, license_id).suspension_reason, None)

receiver, receiver_owner = partner_with_owner(admin, "SDK receiver")
offer_body = CreateTransfer(to_account_id=receiver.id)
seen = ok("preview the transfer", preview_create_transfer.sync_detailed(license_id, client=owner, body=offer_body), 200)
check("previewed receiver", seen.to_account_id, receiver.id)
check("previewed license", seen.license_.name, f"sdk-{RUN}")
offer = ok("offer transfer", create_transfer.sync_detailed(license_id, client=owner, body=offer_body), 201)
check("offer status", offer.status, TransferStatus.PENDING)
accepted = ok("accept transfer with the secret", accept_transfer.sync_detailed(
    offer.id, client=receiver_owner, body=AcceptTransfer(secret=offer.secret)), 200)
check("accepted transfer", accepted.transfer.status, TransferStatus.ACCEPTED)
check("new owner", accepted.license_.account_id, receiver.id)
moved = ok("receiver sees the license", get_license.sync_detailed(license_id, client=receiver_owner), 200)
check("receiver's license", moved.account_id, receiver.id)

software = Client(base_url=BASE, raise_on_unexpected_status=True)
answer = validate_license.sync_detailed(client=software, body=ValidateRequest(registration_key=moved.registration_key))
validation = ok("validate the license", answer, 200)
check("validation", (validation.valid, validation.code), (True, "VALID"))
check("validated license", validation.license_.id, license_id)
key = ok("get the signing key", get_signing_key.sync_detailed(client=software), 200)
check("signing key", (key.algorithm, key.key_id), ("Ed25519", validation.key_id))
raw = json.loads(answer.content)
signature = base64.b64decode(raw.pop("signature"))
Ed25519PublicKey.from_public_bytes(base64.b64decode(key.public_key)).verify(signature, canonical(raw))
steps.append("signature verified")
print("  ok  the validation answer's signature verifies")

print(f"SDK smoke flow (Python) passed: {len(steps)} steps")
