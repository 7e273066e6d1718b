"""Smoke flow with the generated Python client (target/sdk/python), run by scripts/sdk.sh.

Logs in as the admin, creates a product, two partners with owners, credits the first, orders a
license paid from the balance, lists licenses with a filter, renews, and transfers the license
to the second partner (offer by the first partner's owner, accept with the secret by the
second's). Every call goes through the generated client; any unexpected status fails the run.
"""

import sys
import time
import uuid

from licentia_client import AuthenticatedClient, Client
from licentia_client.api.accounts import create_account
from licentia_client.api.auth import create_token
from licentia_client.api.billing import create_credit
from licentia_client.api.licenses import create_license, get_license, list_licenses, renew_license
from licentia_client.api.products import create_product
from licentia_client.api.transfers import accept_transfer, create_transfer
from licentia_client.api.users import create_user
from licentia_client.models import (
    AcceptTransfer,
    CreateAccount,
    CreateCredit,
    CreateLicense,
    CreateProduct,
    CreateRenewal,
    CreateTransfer,
    CreateUser,
    TokenRequest,
)

BASE, ADMIN_EMAIL, ADMIN_PASSWORD = sys.argv[1:4]
RUN = uuid.uuid4().hex[:8]
steps = []


def ok(step, response, expected):
    """The parsed body of `response`, after checking its status."""
    if response.status_code != expected:
        raise SystemExit(f"{step}: expected {expected}, got {response.status_code}: {response.content!r}")
    steps.append(f"{step}: {response.status_code}")
    print(f"  ok  {step} ({response.status_code})")
    return response.parsed


def login(email, password):
    anonymous = Client(base_url=BASE, raise_on_unexpected_status=True)
    token = ok(f"log in as {email}", create_token.sync_detailed(
        client=anonymous, body=TokenRequest(email=email, password=password)), 200)
    return AuthenticatedClient(base_url=BASE, token=token.access_token, raise_on_unexpected_status=True)


def partner_with_owner(admin, name):
    account = ok(f"create partner {name}", create_account.sync_detailed(
        client=admin, body=CreateAccount(name=name)), 201)
    email = f"owner-{name.lower().replace(' ', '-')}-{RUN}@sdk.test"
    password = f"owner-password-{RUN}"
    ok(f"create owner of {name}", create_user.sync_detailed(
        account.id, client=admin, body=CreateUser(email=email, password=password, role="owner")), 201)
    return account, login(email, password)


def wait_active(client, license_id):
    for _ in range(100):
        current = get_license.sync_detailed(license_id, client=client).parsed
        if current.status == "active":
            return current
        time.sleep(0.1)
    raise SystemExit(f"license {license_id} did not become active (status {current.status})")


admin = login(ADMIN_EMAIL, ADMIN_PASSWORD)
periods = [1, 3, 6, 12, 24, 36]
product = ok("create product", create_product.sync_detailed(client=admin, body=CreateProduct.from_dict({
    "code": f"sdk-{RUN}", "name": "SDK smoke product", "transferable": True,
    "prices": [{"period_months": m, "amount": 1000 * m} for m in periods]})), 201)

partner, owner = partner_with_owner(admin, "SDK partner")
ok("credit partner", create_credit.sync_detailed(
    partner.id, client=admin, idempotency_key=f"sdk-credit-{RUN}",
    body=CreateCredit.from_dict({"amount": 100_000, "reference": "sdk smoke"})), 201)

created = ok("order license (balance)", create_license.sync_detailed(
    client=owner, idempotency_key=f"sdk-order-{RUN}", body=CreateLicense.from_dict({
        "product_id": str(product.id), "name": f"sdk-{RUN}", "ip": "192.0.2.20", "period_months": 1,
        "payment": {"method": "balance"}})), 201)
license_id = created.license_.id
before = wait_active(owner, license_id)
steps.append("license active")

page = ok("list licenses filtered by name and status", list_licenses.sync_detailed(
    client=owner, name=f"sdk-{RUN}", status="active", limit=10), 200)
if [item.id for item in page.items] != [license_id]:
    raise SystemExit(f"the filtered list should hold exactly the new license: {page.items}")

ok("renew license (balance)", renew_license.sync_detailed(
    license_id, client=owner, idempotency_key=f"sdk-renew-{RUN}",
    body=CreateRenewal.from_dict({"period_months": 3, "payment": {"method": "balance"}})), 201)
for _ in range(100):
    renewed = get_license.sync_detailed(license_id, client=owner).parsed
    if renewed.status == "active" and renewed.valid_until > before.valid_until:
        break
    time.sleep(0.1)
else:
    raise SystemExit(f"the renewal did not extend valid_until ({before.valid_until} -> {renewed.valid_until})")
steps.append("renewal applied")

receiver, receiver_owner = partner_with_owner(admin, "SDK receiver")
offer = ok("offer transfer", create_transfer.sync_detailed(
    license_id, client=owner, body=CreateTransfer(to_account_id=receiver.id)), 201)
ok("accept transfer with the secret", accept_transfer.sync_detailed(
    offer.id, client=receiver_owner, body=AcceptTransfer(secret=offer.secret)), 200)
moved = ok("receiver sees the license", get_license.sync_detailed(license_id, client=receiver_owner), 200)
if moved.account_id != receiver.id:
    raise SystemExit(f"the license should belong to the receiver: {moved.account_id}")

print(f"SDK smoke flow passed: {len(steps)} steps")
