// Smoke flow with the generated TypeScript client (openapi-generator `typescript-fetch`, written
// to target/sdk/typescript-fetch by scripts/sdk.sh), compiled with tsc and run with Node 20:
// `node target/sdk/ts-build/scripts/sdk/ts/smoke.js BASE ADMIN_EMAIL ADMIN_PASSWORD`.
//
// The same flow as scripts/sdk_smoke.py and scripts/sdk/rust-smoke: log in, product, partner,
// credit, preview and order, filtered list, preview and renew (the new valid_until is the
// preview's), disable/enable, preview and transfer, validate with an Ed25519 signature check
// over the RFC 8785 canonical JSON of the answer without `signature`. Every step asserts the
// objects it gets back; the first failure ends the run with a non-zero status.
import { createPublicKey, randomUUID, verify } from "node:crypto";

import {
  AccountsApi,
  AuthApi,
  BillingApi,
  Configuration,
  LicensedSoftwareApi,
  LicensesApi,
  LicenseStatus,
  OrderStatus,
  PeriodMonths,
  ProductsApi,
  ResponseError,
  Role,
  SuspensionReason,
  TransfersApi,
  TransferStatus,
  UsersApi,
} from "../../../target/sdk/typescript-fetch/src";
import type { CreateLicense, CreateRenewal, LicenseOut } from "../../../target/sdk/typescript-fetch/src";

const [base, adminEmail, adminPassword] = process.argv.slice(2);
const run = randomUUID().slice(0, 8);
let steps = 0;

function check<T>(what: string, actual: T, expected: T): void {
  const a = actual instanceof Date ? actual.toISOString() : JSON.stringify(actual);
  const e = expected instanceof Date ? expected.toISOString() : JSON.stringify(expected);
  if (a !== e) {
    throw new Error(`${what}: expected ${e}, got ${a}`);
  }
}

async function step<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    const value = await call();
    steps += 1;
    console.log(`  ok  ${what}`);
    return value;
  } catch (err) {
    if (err instanceof ResponseError) {
      throw new Error(`${what}: ${err.response.status} ${await err.response.text()}`);
    }
    throw err;
  }
}

function config(accessToken?: string): Configuration {
  return new Configuration({ basePath: base, accessToken });
}

async function login(email: string, password: string): Promise<Configuration> {
  const token = await step(`log in as ${email}`, () =>
    new AuthApi(config()).createToken({ tokenRequest: { email, password } }),
  );
  check("token type", token.tokenType, "Bearer");
  return config(token.accessToken);
}

async function partnerWithOwner(admin: Configuration, name: string): Promise<[string, Configuration]> {
  const account = await step(`create partner ${name}`, () =>
    new AccountsApi(admin).createAccount({ createAccount: { name } }),
  );
  check("partner name", account.name, name);
  const email = `owner-${name.toLowerCase().replace(/ /g, "-")}-${run}@sdk.test`;
  const password = `owner-password-${run}`;
  const user = await step(`create owner of ${name}`, () =>
    new UsersApi(admin).createUser({ id: account.id, createUser: { email, password, role: Role.Owner } }),
  );
  check("owner role", user.role, Role.Owner);
  return [account.id, await login(email, password)];
}

async function waitActive(client: Configuration, id: string): Promise<LicenseOut> {
  let current: LicenseOut | undefined;
  for (let i = 0; i < 100; i++) {
    current = await new LicensesApi(client).getLicense({ id });
    if (current.status === LicenseStatus.Active) {
      return current;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`license ${id} did not become active (status ${current?.status})`);
}

/** RFC 8785 (JCS) for what the answer holds: objects, strings, integers, booleans, null. */
function canonical(value: unknown): string {
  if (value === null || typeof value !== "object") {
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    return `[${value.map(canonical).join(",")}]`;
  }
  const object = value as Record<string, unknown>;
  const keys = Object.keys(object).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(object[k])}`).join(",")}}`;
}

async function main(): Promise<void> {
  const admin = await login(adminEmail, adminPassword);
  const periods = [PeriodMonths.M1, PeriodMonths.M3, PeriodMonths.M12];
  const product = await step("create product", () =>
    new ProductsApi(admin).createProduct({
      createProduct: {
        code: `sdk-ts-${run}`,
        name: "SDK smoke product",
        prices: periods.map((periodMonths) => ({ periodMonths, amount: 1000 * periodMonths })),
        transferable: true,
      },
    }),
  );
  check("product code", product.code, `sdk-ts-${run}`);

  const [partner, owner] = await partnerWithOwner(admin, "SDK partner");
  const credit = await step("credit partner", () =>
    new BillingApi(admin).createCredit({
      id: partner,
      idempotencyKey: `sdk-credit-${run}`,
      createCredit: { amount: 100_000, reference: "sdk smoke" },
    }),
  );
  check("credited amount", credit.amount, 100_000);

  const licenses = new LicensesApi(owner);
  const order: CreateLicense = {
    productId: product.id,
    name: `sdk-${run}`,
    ip: "192.0.2.30",
    periodMonths: PeriodMonths.M1,
    payment: { method: "balance" },
  };
  const preview = await step("preview the order", () => licenses.previewCreateLicense({ createLicense: order }));
  check("previewed amount", preview.amount, 1000);
  const created = await step("order license (balance)", () =>
    licenses.createLicense({ createLicense: order, idempotencyKey: `sdk-order-${run}` }),
  );
  const id = created.license.id;
  check("ordered license name", created.license.name, `sdk-${run}`);
  check("ordered license ip", created.license.ip, "192.0.2.30");
  check("order status", created.order?.status, OrderStatus.Paid);
  check("order total", created.order?.total, preview.amount);
  check("order's license", created.order?.items[0]?.licenseId, id);
  const before = await waitActive(owner, id);

  const page = await step("list licenses filtered by name and status", () =>
    licenses.listLicenses({ name: `sdk-${run}`, status: "active", limit: 10 }),
  );
  check("filtered list", page.items.map((l) => l.id), [id]);
  check("last page", page.nextCursor ?? null, null);

  const renewal: CreateRenewal = { periodMonths: PeriodMonths.M3, payment: { method: "balance" } };
  const quote = await step("preview the renewal", () => licenses.previewRenewLicense({ id, createRenewal: renewal }));
  check("renewal price", quote.amount, 3000);
  const renewed = await step("renew license (balance)", () =>
    licenses.renewLicense({ id, createRenewal: renewal, idempotencyKey: `sdk-renew-${run}` }),
  );
  check("renewed valid_until", renewed.license.validUntil, quote.validUntilAfter);
  check("renewed period", renewed.license.periodMonths, PeriodMonths.M3);
  if (!(renewed.license.validUntil! > before.validUntil!)) {
    throw new Error(`the renewal did not extend valid_until (${before.validUntil} -> ${renewed.license.validUntil})`);
  }
  check("renewed valid_until once active", (await waitActive(owner, id)).validUntil, quote.validUntilAfter);

  const disabled = await step("disable license", () => licenses.disableLicense({ id }));
  check("disabled status", disabled.status, LicenseStatus.Suspended);
  check("suspension reason", disabled.suspensionReason, SuspensionReason.Manual);
  await step("enable license", () => licenses.enableLicense({ id }));
  check("enabled license", (await waitActive(owner, id)).suspensionReason ?? null, null);

  const [receiver, receiverOwner] = await partnerWithOwner(admin, "SDK receiver");
  const transfers = new TransfersApi(owner);
  const seen = await step("preview the transfer", () =>
    transfers.previewCreateTransfer({ id, createTransfer: { toAccountId: receiver } }),
  );
  check("previewed receiver", seen.toAccountId, receiver);
  check("previewed license", seen.license.name, `sdk-${run}`);
  const offer = await step("offer transfer", () =>
    transfers.createTransfer({ id, createTransfer: { toAccountId: receiver } }),
  );
  check("offer status", offer.status, TransferStatus.Pending);
  const accepted = await step("accept transfer with the secret", () =>
    new TransfersApi(receiverOwner).acceptTransfer({ id: offer.id, acceptTransfer: { secret: offer.secret } }),
  );
  check("accepted transfer", accepted.transfer.status, TransferStatus.Accepted);
  check("new owner", accepted.license.accountId, receiver);
  const moved = await step("receiver sees the license", () => new LicensesApi(receiverOwner).getLicense({ id }));
  check("receiver's license", moved.accountId, receiver);

  const software = new LicensedSoftwareApi(config());
  const answer = await step("validate the license", () =>
    software.validateLicenseRaw({ validateRequest: { registrationKey: moved.registrationKey } }),
  );
  const raw = (await answer.raw.clone().json()) as Record<string, unknown>;
  const validation = await answer.value();
  check("validation", [validation.valid, validation.code], [true, "VALID"]);
  check("validated license", validation.license?.id, id);
  const key = await step("get the signing key", () => software.getSigningKey());
  check("signing key", [key.algorithm, key.keyId], ["Ed25519", validation.keyId]);
  const signature = Buffer.from(String(raw.signature), "base64");
  delete raw.signature;
  const publicKey = createPublicKey({
    key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(key.publicKey, "base64").toString("base64url") },
    format: "jwk",
  });
  if (!verify(null, Buffer.from(canonical(raw)), publicKey, signature)) {
    throw new Error("the validation answer's signature does not verify");
  }
  steps += 1;
  console.log("  ok  the validation answer's signature verifies");
  console.log(`SDK smoke flow (TypeScript) passed: ${steps} steps`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
