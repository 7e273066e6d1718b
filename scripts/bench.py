#!/usr/bin/env python3
"""Benchmark of Licentia's hot paths on PostgreSQL at scale, side by side with pgbench.

Builds the release binary, loads a data set with `licentia seed` (default: 1,000 partner
accounts, 1,000,000 licenses) into a fresh PostgreSQL database, starts the server on it and,
for every scenario, drives the server with wrk and then PostgreSQL with pgbench running the same
SQL statements the request runs, with the same number of connections. Prints one table: rps,
p50/p99 and errors of both, their ratio, and the server's peak RSS. Not a test: the figures depend
on the machine; the ratios are what compares across runs.

Usage: scripts/bench.py            (or: BENCH_LICENSES=100000 scripts/bench.py)
Settings (environment):
  BENCH_PG_URL       PostgreSQL server (default postgres://postgres@127.0.0.1:5432/postgres)
  BENCH_LICENSES     licenses to seed (default 1000000); BENCH_ACCOUNTS (default 1000)
  BENCH_DURATION     seconds per run (default 15); BENCH_WARMUP seconds before each (default 3)
  BENCH_CONNECTIONS  concurrent connections of wrk and of pgbench (default 64)
  BENCH_LIST_CONNECTIONS  the same for the list scenarios (default 8)
  BENCH_THREADS      wrk and pgbench threads (default 2)
  BENCH_DB_POOL      the server's database pool (default 16)
  BENCH_ONLY         comma-separated scenario names to run (default: all)
  BENCH_KEEP_DB      1 keeps the seeded database (and reuses it when it exists) between runs
  BENCH_JSON         also write the results as JSON to this file
  BENCH_BIN          measure this binary instead of building target/release/licentia (e.g. an
                     earlier commit's build, for a before/after comparison on one data set); it
                     is started with --no-migrate, so seed the data set with the newer build
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
LICENSES = int(os.environ.get("BENCH_LICENSES", "1000000"))
ACCOUNTS = int(os.environ.get("BENCH_ACCOUNTS", "1000"))
DURATION = int(os.environ.get("BENCH_DURATION", "15"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "3"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
# A filtered page costs PostgreSQL a few milliseconds of CPU (it walks the partner's licenses
# in id order until 50 match): on 2 cores that bounds the rate to several hundred pages a
# second, and by Little's law a p99 within 30 ms to about ten requests in flight. Lists run at
# this concurrency (pgbench too); validate, get and renew at BENCH_CONNECTIONS.
LIST_CONNECTIONS = int(os.environ.get("BENCH_LIST_CONNECTIONS", "8"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
POOL = int(os.environ.get("BENCH_DB_POOL", "16"))
ONLY = [s for s in os.environ.get("BENCH_ONLY", "").split(",") if s]
KEEP_DB = os.environ.get("BENCH_KEEP_DB") == "1"
PORT = int(os.environ.get("BENCH_PORT", "18090"))
BASE = f"http://127.0.0.1:{PORT}"
BUILT = os.path.join(ROOT, "target", "release", "licentia")
BIN = os.environ.get("BENCH_BIN") or BUILT
DB = f"licentia_bench_{LICENSES}"

# Filters of the list scenarios: each matches well over 10,050 of the largest partner's
# licenses at 1M (about 10 % by name, 5.6 % by address, 10 % by status).
NAME = "shop"
CIDR = "10.16.0.0/12"
STATUS = "suspended"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def db_url(name):
    u = urllib.parse.urlsplit(PG_URL)
    return urllib.parse.urlunsplit(u._replace(path="/" + name))


def psql(sql, db=None):
    return subprocess.run(
        ["psql", db_url(db) if db else PG_URL, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql],
        check=True, capture_output=True, text=True,
    ).stdout.strip()


def need_tools():
    if shutil.which("wrk") is None:
        log("installing wrk (apt-get)")
        subprocess.run("apt-get update -qq && apt-get install -y -qq wrk >/dev/null",
                       shell=True, check=True)
    for tool in ("psql", "pgbench", "wrk", "cargo"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is required")


# ---------------------------------------------------------------- the data set

def seed(work):
    manifest_path = os.path.join(ROOT, "target", "bench", f"manifest-{LICENSES}.json")
    exists = psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB}'") == "1"
    if exists and KEEP_DB and os.path.exists(manifest_path):
        log(f"reusing database {DB}")
        return json.load(open(manifest_path)), None
    if exists:
        psql(f'DROP DATABASE "{DB}" WITH (FORCE)')
    psql(f'CREATE DATABASE "{DB}"')
    os.makedirs(os.path.dirname(manifest_path), exist_ok=True)
    log(f"seeding {LICENSES:,} licenses over {ACCOUNTS:,} accounts")
    started = time.monotonic()
    subprocess.run(
        [BUILT, "seed", "--licenses", str(LICENSES), "--accounts", str(ACCOUNTS),
         "--manifest", manifest_path],
        env=server_env(), check=True, stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(work, "seed.log"), "w"),
    )
    seconds = time.monotonic() - started
    size = psql(f"SELECT pg_size_pretty(pg_database_size('{DB}'))")
    log(f"seeded in {seconds:.0f} s; database size {size}")
    return json.load(open(manifest_path)), seconds


def server_env():
    env = dict(os.environ)
    env.update({
        "LICENTIA_DATABASE_URL": db_url(DB),
        "LICENTIA_BIND": f"127.0.0.1:{PORT}",
        "LICENTIA_ENCRYPTION_KEY": "YmVuY2gtb25seS1rZXktMzItYnl0ZXMtbG9uZy4uLi4=",
        "LICENTIA_ADMIN_EMAIL": "bench-admin@licentia.test",
        "LICENTIA_ADMIN_PASSWORD": "bench-admin-password",
        "LICENTIA_RATE_LIMIT": "off",
        "LICENTIA_LOG": "warn",
        "LICENTIA_DB_MAX_CONNECTIONS": str(POOL),
    })
    return env


# ---------------------------------------------------------------- the server

class Server:
    def __init__(self, work):
        self.log = open(os.path.join(work, "server.log"), "w")
        args = [BIN, "serve"] + (["--no-migrate"] if os.environ.get("BENCH_BIN") else [])
        self.proc = subprocess.Popen(args, env=server_env(), stdout=self.log,
                                     stderr=subprocess.STDOUT)
        for _ in range(300):
            if self.proc.poll() is not None:
                sys.exit(f"the server stopped; see {self.log.name}")
            try:
                urllib.request.urlopen(BASE + "/readyz", timeout=1)
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        sys.exit("the server did not become ready")

    def rss_kib(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def http(method, path, key, body=None):
    req = urllib.request.Request(BASE + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("X-API-Key", key)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as res:
        return json.load(res)


def deep_cursor(key, query, depth=10_000):
    """The cursor `depth` rows into the list, walked with the largest pages."""
    cursor, seen, last = None, 0, None
    while seen < depth:
        q = dict(query, limit=str(min(200, depth - seen)))
        if cursor:
            q["cursor"] = cursor
        page = http("GET", "/v1/licenses?" + urllib.parse.urlencode(q), key)
        seen += len(page["items"])
        last = page["items"][-1]["id"] if page["items"] else last
        cursor = page.get("next_cursor")
        if not cursor:
            log(f"the list {query} has fewer than {depth:,} rows: no deep page at this size")
            return None
    return cursor, last


# ---------------------------------------------------------------- load generators

LUA_COMMON = r"""
local N = %(licenses)d
local A = %(accounts)d
local BASE_MS = %(base_ms)d
local STEP_MS = %(step_ms)d
local keys = {%(keys)s}
local function hex16(v) return string.format("%%04x", v %% 65536) end
local function license_id(n)
  local ms = BASE_MS + n * STEP_MS
  local a = math.floor(ms / 4294967296)
  local b = math.floor(ms / 65536) %% 65536
  local c = ms %% 65536
  local n2 = math.floor(n / 4294967296)
  local n1 = math.floor(n / 65536) %% 65536
  return hex16(a) .. hex16(b) .. "-" .. hex16(c) .. "-7000-8000-" .. hex16(n2) .. hex16(n1) .. hex16(n)
end
local function account_index(n)
  if A == 1 or n %% 5 == 0 then return 0 end
  local m = math.floor(n / 5)
  local big = math.min(A, 10) - 1
  if big > 0 and (m %% 100 < 34 or A <= 10) then return 1 + m %% big end
  return 10 + (m * 4 + n %% 5) %% (A - 10)
end
local function active(n)
  local s = (n * 7919) %% 100
  return s < 72 or s >= 90
end
local thread_no = 0
function setup(thread)
  thread_no = thread_no + 1
  thread:set("seed", thread_no)
end
function init(args)
  math.randomseed(os.time() * 1000 + seed)
end
"""


def lua(manifest, body):
    keys = ",".join(json.dumps(a["api_key"]) for a in manifest["accounts"])
    return LUA_COMMON % dict(licenses=manifest["licenses"], accounts=len(manifest["accounts"]),
                             base_ms=manifest["base_ms"], step_ms=manifest["step_ms"],
                             keys=keys) + body


def parse_latency(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(work, name, script, url, server, connections):
    path = os.path.join(work, f"{name}.lua")
    with open(path, "w") as f:
        f.write(script)
    args = ["wrk", f"-t{THREADS}", f"-c{connections}", "--latency", "-s", path, url]
    if WARMUP:
        subprocess.run(args[:3] + [f"-d{WARMUP}s"] + args[3:], check=True,
                       stdout=subprocess.DEVNULL)
    peak = [server.rss_kib()]
    done = threading.Event()

    def sample():
        while not done.wait(0.2):
            peak[0] = max(peak[0], server.rss_kib())

    sampler = threading.Thread(target=sample)
    sampler.start()
    out = subprocess.run(args[:3] + [f"-d{DURATION}s"] + args[3:], check=True,
                         capture_output=True, text=True).stdout
    done.set()
    sampler.join()
    with open(os.path.join(work, f"{name}.wrk.txt"), "w") as f:
        f.write(out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = parse_latency(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = parse_latency(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return dict(rps=rps, p50=p50, p99=p99, requests=total, errors=errors, rss_mib=peak[0] / 1024)


def run_pgbench(work, name, sql, variables, connections):
    path = os.path.join(work, f"{name}.pgbench.sql")
    with open(path, "w") as f:
        f.write(sql)
    base = ["pgbench", "-n", "-M", "prepared", "-c", str(connections), "-j", str(THREADS),
            "-f", path]
    for k, v in variables.items():
        base += ["-D", f"{k}={v}"]
    if WARMUP:
        subprocess.run(base + ["-T", str(WARMUP), db_url(DB)], check=True, capture_output=True)
    prefix = os.path.join(work, f"{name}-pgbench-log")
    out = subprocess.run(base + ["-T", str(DURATION), "-l", "--log-prefix", prefix, db_url(DB)],
                         check=True, capture_output=True, text=True, cwd=work).stdout
    with open(os.path.join(work, f"{name}.pgbench.txt"), "w") as f:
        f.write(out)
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", out)
    latencies = []
    for entry in os.listdir(work):
        if entry.startswith(os.path.basename(prefix) + "."):
            with open(os.path.join(work, entry)) as f:
                latencies += [int(line.split()[2]) / 1000.0 for line in f if line.strip()]
            os.remove(os.path.join(work, entry))
    latencies.sort()
    pct = lambda p: latencies[min(len(latencies) - 1, int(len(latencies) * p))] if latencies else 0.0
    return dict(rps=tps, p50=pct(0.50), p99=pct(0.99), requests=len(latencies),
                errors=int(failed.group(1)) if failed else 0)


# ---------------------------------------------------------------- scenarios
#
# Each scenario: the wrk request and the statements the server runs for it, as pgbench runs
# them (prepared, the same parameters). The uuid of license :n is computed in SQL the way the
# load generator computes it (see `licentia seed`).

KEY_OF_N = "encode(sha256(convert_to('seedkey-' || lpad(:n::text, 10, '0'), 'UTF8')), 'hex')"

def scenarios(manifest, cursors):
    big = manifest["accounts"][0]
    big_key = big["api_key"]
    n_max = manifest["licenses"] - 1
    common = dict(base_ms=manifest["base_ms"], step_ms=manifest["step_ms"])
    auth_vars = dict(key_hash=sha256_hex(big_key))
    out = []

    out.append(dict(
        name="validate", title="POST /v1/validate",
        lua=r"""
function request()
  local n = math.random(0, N - 1)
  local body = '{"registration_key":"seedkey-' .. string.format("%010d", n) ..
    '","fingerprint":"machine-' .. n .. '-0"}'
  return wrk.format("POST", "/v1/validate", {["Content-Type"] = "application/json"}, body)
end
""", path="/v1/validate",
        sql=f"""\\set n random(0, {n_max})
SELECT "licenses".*, "registrations"."id" AS "registration_id" \
FROM "licenses" LEFT JOIN "registrations" ON "registrations"."license_id" = "licenses"."id" \
AND "registrations"."fingerprint" = ('machine-' || :n || '-0') \
WHERE "licenses"."registration_key_hash" = {KEY_OF_N};
""", vars=dict(common)))

    out.append(dict(
        name="get", title="GET /v1/licenses/{id}",
        lua=r"""
function request()
  local n = 5 * math.random(0, math.floor((N - 1) / 5))
  return wrk.format("GET", "/v1/licenses/" .. license_id(n), {["X-API-Key"] = keys[1]})
end
""", path="/v1/licenses",
        sql=f"""\\set n 5 * random(0, {n_max // 5})
{bench_sql.AUTH}SELECT "licenses".*, {bench_sql.PRODUCT_PREFIXED} FROM "licenses" INNER JOIN "products" \
ON "products"."id" = "licenses"."product_id" WHERE "licenses"."id" = {bench_sql.UUID_OF_N} \
AND "licenses"."account_id" = :account;
""", vars=dict(common, account=big["id"], **auth_vars)))

    for fname, query in (("name", {"name": NAME}), ("cidr", {"ip": CIDR}),
                         ("status", {"status": STATUS})):
        for depth in ("first", "deep"):
            if depth == "deep" and cursors[fname] is None:
                continue
            q = dict(query, limit="50")
            if depth == "deep":
                q["cursor"] = cursors[fname][0]
            path = "/v1/licenses?" + urllib.parse.urlencode(q)
            out.append(dict(
                name=f"list-{fname}-{depth}",
                title=f"GET /v1/licenses {fname} filter, {'first page' if depth == 'first' else 'after 10,000 rows'}",
                lua=f"""
function request()
  return wrk.format("GET", {json.dumps(path)}, {{["X-API-Key"] = keys[1]}})
end
""", path=path, sql=None, list=(fname, depth), vars=dict(common, **auth_vars)))

    out.append(dict(
        name="renew", title="POST /v1/licenses/{id}/renewals (balance, many accounts)",
        lua=r"""
function request()
  local n = math.random(0, N - 1)
  while not active(n) do n = math.random(0, N - 1) end
  local body = '{"period_months":1,"payment":{"method":"balance"}}'
  return wrk.format("POST", "/v1/licenses/" .. license_id(n) .. "/renewals",
    {["X-API-Key"] = keys[account_index(n) + 1], ["Content-Type"] = "application/json"}, body)
end
""", path="/v1/licenses", sql=None, renew=True, vars=dict(common)))
    return out


def wait_for_idle_jobs(limit=300):
    """Waits until the server's job queue has nothing due (the start-up sweeps over the seeded
    licenses), so that background work does not blur the measurement."""
    sql = ("SELECT count(*) FROM jobs WHERE (status = 'queued' AND run_at <= now()) "
           "OR status = 'running'")
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if psql(sql, DB) == "0":
            return
        time.sleep(1)
    log("the job queue is still busy; measuring anyway")


def sha256_hex(text):
    import hashlib
    return hashlib.sha256(text.encode()).hexdigest()


def main():
    need_tools()
    log("building the release binary")
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "licentia-api"], cwd=ROOT,
                   check=True)
    work = tempfile.mkdtemp(prefix="licentia-bench-")
    server = None
    try:
        manifest, seed_seconds = seed(work)
        server = Server(work)
        log(f"server up (pid {server.proc.pid}, pool {POOL}); RSS {server.rss_kib() / 1024:.1f} MiB")
        big_key = manifest["accounts"][0]["api_key"]
        cursors = {f: deep_cursor(big_key, q) for f, q in
                   (("name", {"name": NAME}), ("cidr", {"ip": CIDR}), ("status", {"status": STATUS}))}
        wait_for_idle_jobs()
        rows = []
        for sc in scenarios(manifest, cursors):
            if ONLY and sc["name"] not in ONLY:
                continue
            if sc.get("list"):
                sc["sql"], extra = bench_sql.list_sql(
                    db_url(DB), *sc["list"], {f: c[1] for f, c in cursors.items() if c})
                sc["vars"].update(extra, account=manifest["accounts"][0]["id"])
            if sc.get("renew"):
                sc["sql"], extra = bench_sql.renew_sql(manifest["licenses"] - 1)
                sc["vars"].update(extra)
            log(f"{sc['name']}: wrk")
            conns = LIST_CONNECTIONS if sc.get("list") else CONNECTIONS
            w = run_wrk(work, sc["name"], lua(manifest, sc["lua"]), BASE + sc["path"], server,
                        conns)
            log(f"{sc['name']}: pgbench")
            p = run_pgbench(work, sc["name"], sc["sql"], sc["vars"], conns)
            rows.append(dict(name=sc["name"], title=sc["title"], connections=conns,
                             server=w, pgbench=p,
                             ratio=w["rps"] / p["rps"] if p["rps"] else 0.0))
            log(f"{sc['name']}: {w['rps']:.0f} rps (p99 {w['p99']:.1f} ms) vs pgbench {p['rps']:.0f} tps")
        report(manifest, rows, seed_seconds, server)
    finally:
        if server:
            server.stop()
        if not KEEP_DB:
            psql(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


def report(manifest, rows, seed_seconds, server):
    cpus = os.cpu_count()
    print()
    print(f"Licentia benchmark: {manifest['licenses']:,} licenses, {len(manifest['accounts']):,} "
          f"accounts; {CONNECTIONS} connections ({LIST_CONNECTIONS} for lists), {THREADS} threads, {DURATION} s per run, "
          f"pool {POOL}, {cpus} cores" + (f"; seeded in {seed_seconds:.0f} s" if seed_seconds else ""))
    header = (f"{'scenario':<18} {'conn':>4} {'rps':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
              f"{'RSS MiB':>7} | {'pgbench':>8} {'p50 ms':>7} {'p99 ms':>7} | {'ratio':>5}")
    print(header)
    print("-" * len(header))
    for r in rows:
        w, p = r["server"], r["pgbench"]
        print(f"{r['name']:<18} {r['connections']:>4} {w['rps']:>7.0f} {w['p50']:>7.2f} {w['p99']:>7.2f} "
              f"{w['errors']:>6} {w['rss_mib']:>7.1f} | {p['rps']:>8.0f} {p['p50']:>7.2f} "
              f"{p['p99']:>7.2f} | {r['ratio']:>5.2f}")
    by = {r["name"]: r for r in rows}
    for f in ("name", "cidr", "status"):
        a, b = by.get(f"list-{f}-first"), by.get(f"list-{f}-deep")
        if a and b:
            print(f"deep/first p99 ({f}): {b['server']['p99'] / a['server']['p99']:.2f}")
    print(f"peak server RSS: {max((r['server']['rss_mib'] for r in rows), default=0):.1f} MiB")
    out = os.environ.get("BENCH_JSON")
    if out:
        with open(out, "w") as f:
            json.dump(dict(licenses=manifest["licenses"], accounts=len(manifest["accounts"]),
                           connections=CONNECTIONS, list_connections=LIST_CONNECTIONS,
                           duration=DURATION, pool=POOL,
                           seed_seconds=seed_seconds, rows=rows), f, indent=2)


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_sql  # noqa: E402 (next to this script)

if __name__ == "__main__":
    main()
