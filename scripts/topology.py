#!/usr/bin/env python3
"""Scale-out proof on one machine (CONTRACT §10): a PostgreSQL primary with a streaming replica,
nginx in front of three `licentia serve` processes and one `licentia worker`, a bounded mixed load
through nginx, and faults during it:

  1. one serve process killed with SIGKILL (and started again),
  2. a rolling restart of every serve process (SIGTERM, one at a time),
  3. the primary stopped for a few seconds, then started again.

Assertions (exit 1 on any violation):
  - no request through nginx fails, except 503s from routes that need the primary while it is down
    (and connection errors / 502s that the client retries with the same Idempotency-Key, and a
    write's 503 from a process stopping during the rolling restart, retried the same way);
  - validations never fail while the primary or the replica is up (they read from the replica);
  - every write retried with its Idempotency-Key has exactly one effect (one license per key);
  - the ledger invariant (balance = Σ ledger, ≥ -credit_limit) holds for every account;
  - /readyz reports `degraded` while the primary is down and `ok` again after.

Needs: the debug binary (target/debug/licentia; built by .ci/run before the tests), PostgreSQL 15
server binaries (/usr/lib/postgresql/15/bin) and nginx (installed from Debian's packages when
missing). Everything runs in a temporary folder on free ports and is removed at the end.
Settings: TOPOLOGY_SECONDS (load duration, default 60), TOPOLOGY_KEEP=1 keeps the folder.
"""
import base64
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "debug", "licentia")
PG_BIN = "/usr/lib/postgresql/15/bin"
SECONDS = int(os.environ.get("TOPOLOGY_SECONDS", "60"))
ADMIN_EMAIL = "topology-admin@licentia.test"
ADMIN_PASSWORD = "topology-admin-password"
USER_PASSWORD = "topology-user-password"
PROCS = []


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def as_postgres(args, **kw):
    """PostgreSQL refuses to run as root: its tools run as the postgres user when we are root."""
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--"] + args
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


class Postgres:
    def __init__(self, name, data, port):
        self.name, self.data, self.port = name, data, port

    def start(self):
        as_postgres([f"{PG_BIN}/pg_ctl", "-D", self.data, "-l", self.data + ".log", "-w", "-t", "60", "start"])

    def stop(self):
        as_postgres([f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"])

    def stop_quietly(self):
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass

    def url(self, db="licentia"):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"


def setup_postgres(work):
    primary = Postgres("primary", os.path.join(work, "primary"), free_port())
    replica = Postgres("replica", os.path.join(work, "replica"), free_port())
    as_postgres([f"{PG_BIN}/initdb", "-D", primary.data, "-U", "postgres", "--auth=trust", "-E", "UTF8"])
    with open(os.path.join(primary.data, "postgresql.conf"), "a") as f:
        f.write(f"port = {primary.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{work}'\n"
                "wal_level = replica\nmax_wal_senders = 5\nmax_connections = 100\nfsync = off\n"
                "synchronous_commit = off\nfull_page_writes = off\n")
    with open(os.path.join(primary.data, "pg_hba.conf"), "a") as f:
        f.write("host replication postgres 127.0.0.1/32 trust\n")
    primary.start()
    as_postgres([f"{PG_BIN}/psql", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres", "-c",
                 "CREATE DATABASE licentia"])
    as_postgres([f"{PG_BIN}/pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                 "-D", replica.data, "-R", "-X", "stream"])
    with open(os.path.join(replica.data, "postgresql.conf"), "a") as f:
        f.write(f"port = {replica.port}\nhot_standby = on\n")
    replica.start()
    return primary, replica


def ensure_wrk():
    """wrk for the throughput figures (Debian's package); None when it cannot be installed."""
    if not shutil.which("wrk"):
        log("installing wrk from Debian's packages")
        for attempt in (1, 2):
            if attempt == 2:  # the package lists may be missing or stale
                subprocess.run(["apt-get", "update", "-qq"], check=False,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"],
                           check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if shutil.which("wrk"):
                break
    return shutil.which("wrk")


def ensure_nginx():
    if shutil.which("nginx"):
        return shutil.which("nginx")
    log("installing nginx from Debian's packages")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "nginx-light"], check=False)
    if not shutil.which("nginx"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "nginx"], check=True)
    return shutil.which("nginx") or "/usr/sbin/nginx"


class Service:
    """One licentia process (serve or worker)."""

    def __init__(self, work, env, kind, port=None):
        self.work, self.env, self.kind, self.port = work, env, kind, port
        self.proc = None
        self.log_path = os.path.join(work, f"{kind}-{port or 'w'}.log")

    def start(self):
        env = dict(self.env)
        if self.port:
            env["LICENTIA_BIND"] = f"127.0.0.1:{self.port}"
        args = [BIN, self.kind] + (["--no-migrate"] if self.kind == "serve" else [])
        self.proc = subprocess.Popen(args, env=env, stdout=open(self.log_path, "a"), stderr=subprocess.STDOUT)
        PROCS.append(self.proc)
        if self.port:
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1).read()
                    return
                except Exception:
                    time.sleep(0.1)
            raise RuntimeError(f"{self.kind} on {self.port} did not start")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def write_nginx(work, nginx_port, ports):
    # max_fails=0: a process is never taken out of rotation on nginx's own judgement. A refused
    # connection costs microseconds on this host and moves the request to the next process
    # (proxy_next_upstream error); marking a process down for fail_timeout instead can mark all
    # three down during a rolling restart, and nginx then answers 502 "no live upstreams".
    servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=0;" for p in ports)
    conf = f"""
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {work}/nginx-body;
  proxy_temp_path {work}/nginx-proxy;
  upstream licentia {{
{servers}
    keepalive 32;
  }}
  server {{
    listen 127.0.0.1:{nginx_port};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_connect_timeout 2s;
    proxy_read_timeout 30s;
    # Reads of the licensed software change nothing: safe to try on another process.
    location ~ ^/v1/(validate|license-files)$ {{
      proxy_pass http://licentia;
      proxy_next_upstream error timeout http_502 non_idempotent;
      proxy_next_upstream_tries 3;
    }}
    # Everything else: retried by nginx only when the request was not sent; clients retry
    # writes with their Idempotency-Key.
    location / {{
      proxy_pass http://licentia;
      proxy_next_upstream error timeout;
      proxy_next_upstream_tries 3;
    }}
  }}
}}
"""
    path = os.path.join(work, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


class Client:
    def __init__(self, base):
        self.base = base

    def call(self, method, path, token=None, body=None, headers=None, timeout=15):
        req = urllib.request.Request(self.base + path, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, data=data, timeout=timeout) as res:
                raw = res.read()
                return res.status, (json.loads(raw) if raw else None), dict(res.headers)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw), dict(e.headers)
            except Exception:
                return e.code, None, dict(e.headers)
        except Exception as e:  # connection reset, refused, timeout
            return 0, {"error": str(e)}, {}


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.violations = []
        self.primary_down = threading.Event()
        # Set while the serve processes restart one by one (and a second after): a write may
        # then answer 503 from a process that is stopping (see docs/scaling.md); the client
        # retries it with its key like any other, and it must still have exactly one effect.
        self.restarting = threading.Event()
        self.events = []  # (time, op, status) of every answer that was not the final success
        self.retries = 0

    def add(self, op, status):
        with self.lock:
            self.counts.setdefault(op, {}).setdefault(status, 0)
            self.counts[op][status] += 1
            if status not in (200, 201, 409):
                self.events.append((time.time(), op, status))

    def retried(self):
        with self.lock:
            self.retries += 1

    def violation(self, msg):
        with self.lock:
            self.violations.append(msg)


def retrying_write(client, tally, op, method, path, token, body, key, deadline):
    """A write with an Idempotency-Key, retried with the same key until it settles. Returns the
    final (status, body)."""
    while True:
        down = tally.primary_down.is_set() or tally.restarting.is_set()
        status, data, _ = client.call(method, path, token, body, {"Idempotency-Key": key})
        tally.add(op, status)
        if status in (0, 502, 503, 504) or (status == 409 and data and data.get("code") == "request_in_progress"):
            tally.retried()
        if status in (0, 502, 504):
            time.sleep(0.2)  # a process went away mid-request: retry with the same key
        elif status == 503:
            if not (down or tally.primary_down.is_set() or tally.restarting.is_set()):
                tally.violation(f"{op}: 503 while the primary was up: {data}")
            time.sleep(0.3)
        elif status == 409 and data and data.get("code") == "request_in_progress":
            time.sleep(0.3)
        else:
            return status, data
        if time.time() > deadline:
            tally.violation(f"{op} with key {key} never settled (last {status} {data})")
            return status, data


def fault_figures(tally, faults, end_of_load):
    """Per fault: the answers other than success from its start to the next fault's start, by kind,
    and when the last of them came (the time to recover)."""
    out = []
    bounds = [f[1] for f in faults[1:]] + [end_of_load]
    for (name, start, end), until in zip(faults, bounds):
        window = [(t, op, st) for (t, op, st) in tally.events if start <= t < until]
        kinds = {}
        for _, op, st in window:
            kinds[f"{op} {st or 'connection error'}"] = kinds.get(f"{op} {st or 'connection error'}", 0) + 1
        last = max((t for t, _, _ in window), default=start)
        out.append({"fault": name, "failed_answers": len(window), "by_kind": kinds,
                    "recovered_after_s": round(last - start, 2), "fault_took_s": round(end - start, 2)})
    return out


WRK_SCRIPT = """
local keys = {%s}
local i = 0
request = function()
  i = i + 1
  local body = '{"registration_key":"' .. keys[(i %% #keys) + 1] .. '"}'
  return wrk.format("POST", "/v1/validate", {["Content-Type"] = "application/json"}, body)
end
"""


def run_wrk(wrk, url, script, seconds):
    out = subprocess.run([wrk, "-t2", "-c16", f"-d{seconds}s", "--latency", "-s", script, url],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    figures = {"rps": None, "p50_ms": None, "p99_ms": None, "non_2xx": 0}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            figures["rps"] = round(float(parts[1]))
        elif line.strip().startswith("Non-2xx"):
            figures["non_2xx"] = int(parts[-1])
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            v = parts[1]
            ms = float(v[:-2]) if v.endswith("ms") else float(v[:-2]) / 1000 if v.endswith("us") \
                else float(v[:-1]) * 1000
            figures["p50_ms" if parts[0] == "50%" else "p99_ms"] = round(ms, 2)
    return figures


def validate_throughput(work, client, keys, serves, env):
    """Validate throughput through nginx with the replica (reads there) and without it (the serve
    processes restarted without LICENTIA_READ_DATABASE_URL: every read on the primary)."""
    wrk = ensure_wrk()
    if not wrk:
        log("wrk is not available: no throughput figures")
        return {}
    script = os.path.join(work, "validate.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT % ", ".join(json.dumps(k) for k in keys))
    seconds = int(os.environ.get("TOPOLOGY_WRK_SECONDS", "8"))
    figures = {"one_replica": run_wrk(wrk, client.base, script, seconds)}
    log(f"validate through nginx, 1 replica: {figures['one_replica']}")
    no_replica = {k: v for k, v in env.items() if k != "LICENTIA_READ_DATABASE_URL"}
    for s_ in serves:
        s_.terminate()
        s_.env = no_replica
        s_.start()
    figures["no_replica"] = run_wrk(wrk, client.base, script, seconds)
    log(f"validate through nginx, 0 replicas: {figures['no_replica']}")
    return figures


def main():
    if not os.path.exists(BIN):
        print(f"{BIN} is missing: build it with `cargo build -p licentia-api`", file=sys.stderr)
        return 2
    if not os.path.exists(f"{PG_BIN}/initdb"):
        print(f"{PG_BIN}/initdb is missing: skipping the topology test")
        return 0
    nginx = ensure_nginx()
    work = tempfile.mkdtemp(prefix="licentia-topology-")
    os.chmod(work, 0o777)
    primary = replica = None
    nginx_proc = None
    started = time.time()
    try:
        log(f"work folder {work}")
        primary, replica = setup_postgres(work)
        log(f"primary on {primary.port}, replica on {replica.port}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("LICENTIA_")}
        env.update({
            "LICENTIA_CONFIG": os.path.join(work, "licentia.toml"),
            "LICENTIA_DATABASE_URL": primary.url(),
            "LICENTIA_READ_DATABASE_URL": replica.url(),
            "LICENTIA_READ_MAX_LAG_SECS": "5",
            "LICENTIA_ADMIN_EMAIL": ADMIN_EMAIL,
            "LICENTIA_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "LICENTIA_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
            "LICENTIA_JWT_SECRET": base64.b64encode(os.urandom(48)).decode(),
            "LICENTIA_RATE_LIMIT": "off",
            "LICENTIA_LOG": "warn",
            "LICENTIA_WORKERS": "2",
            "LICENTIA_JOB_POLL_MS": "200",
            "LICENTIA_DB_MAX_CONNECTIONS": "8",
            "LICENTIA_ACCESS_TOKEN_TTL_SECS": "3600",
            "LICENTIA_IDEMPOTENCY_STALE_SECS": "5",
        })
        open(env["LICENTIA_CONFIG"], "w").close()
        subprocess.run([BIN, "migrate"], env=env, check=True, capture_output=True)
        ports = [free_port() for _ in range(3)]
        serves = [Service(work, env, "serve", p) for p in ports]
        for s in serves:
            s.start()
        worker = Service(work, env, "worker")
        worker.start()
        nginx_port = free_port()
        conf = write_nginx(work, nginx_port, ports)
        nginx_proc = subprocess.Popen([nginx, "-c", conf, "-g", "daemon off;"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        PROCS.append(nginx_proc)
        client = Client(f"http://127.0.0.1:{nginx_port}")
        for _ in range(100):
            if client.call("GET", "/healthz")[0] == 200:
                break
            time.sleep(0.1)
        log(f"nginx on {nginx_port} in front of {ports}")

        # Fixtures: a product, three partners with funds and owners, licenses to validate.
        s, body, _ = client.call("POST", "/v1/auth/token", body={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        assert s == 200, body
        admin = body["access_token"]
        s, product, _ = client.call("POST", "/v1/products", admin, {
            "code": "topology", "name": "Topology", "prices": [{"period_months": 1, "amount": 100},
                                                             {"period_months": 12, "amount": 1000}],
            "options": [], "max_registrations": None, "transferable": True})
        assert s == 201, product
        partners = []
        for n in range(3):
            s, account, _ = client.call("POST", "/v1/accounts", admin, {"name": f"Topology {n}"})
            assert s == 201, account
            email = f"owner-{n}-{uuid.uuid4().hex[:8]}@topology.test"
            s, body, _ = client.call("POST", f"/v1/accounts/{account['id']}/users", admin,
                                     {"email": email, "password": USER_PASSWORD, "role": "owner"})
            assert s == 201, body
            s, body, _ = client.call("POST", f"/v1/accounts/{account['id']}/credits", admin,
                                     {"amount": 10_000_000, "reference": "topology"})
            assert s == 201, body
            s, body, _ = client.call("POST", "/v1/auth/token", body={"email": email, "password": USER_PASSWORD})
            assert s == 200, body
            partners.append({"id": account["id"], "token": body["access_token"], "licenses": [], "keys": []})
        for p in partners:
            for i in range(5):
                s, body, _ = client.call("POST", "/v1/licenses", p["token"], {
                    "product_id": product["id"], "name": f"seed {i}", "ip": "10.0.0.1", "period_months": 12,
                    "payment": {"method": "balance"}})
                assert s == 201, body
                p["licenses"].append(body["license"]["id"])
        # Registration keys (owner's view) once active.
        keys = []
        for p in partners:
            for lid in p["licenses"]:
                for _ in range(100):
                    s, lic, _ = client.call("GET", f"/v1/licenses/{lid}", p["token"])
                    if s == 200 and lic["status"] == "active":
                        break
                    time.sleep(0.1)
                keys.append(lic["registration_key"])
        time.sleep(1.5)  # the replica replays the fixtures

        tally = Tally()
        stop = threading.Event()
        order_keys = []  # (partner, key)
        order_lock = threading.Lock()
        end_of_load = time.time() + SECONDS

        def validator():
            while not stop.is_set():
                key = random.choice(keys)
                s, body, _ = client.call("POST", "/v1/validate", body={"registration_key": key})
                tally.add("validate", s)
                if s != 200 or body.get("code") != "VALID":
                    tally.violation(f"validate: {s} {body}")
                time.sleep(0.01)

        def writer(n):
            rnd = random.Random(n)
            while not stop.is_set():
                p = rnd.choice(partners)
                roll = rnd.random()
                if roll < 0.5:
                    key = f"order-{uuid.uuid4().hex}"
                    with order_lock:
                        order_keys.append((p["id"], p["token"], key))
                    s, body = retrying_write(client, tally, "order", "POST", "/v1/licenses", p["token"], {
                        "product_id": product["id"], "name": "load", "ip": "10.0.0.2", "period_months": 1,
                        "external_id": key, "payment": {"method": "balance"}}, key, end_of_load + 120)
                    if s != 201:
                        tally.violation(f"order {key}: {s} {body}")
                elif roll < 0.8:
                    lid = rnd.choice(p["licenses"])
                    key = f"renew-{uuid.uuid4().hex}"
                    s, body = retrying_write(client, tally, "renew", "POST", f"/v1/licenses/{lid}/renewals",
                                             p["token"], {"period_months": 1, "payment": {"method": "balance"}},
                                             key, end_of_load + 120)
                    if s not in (201, 409):
                        tally.violation(f"renew {key}: {s} {body}")
                else:
                    down = tally.primary_down.is_set()
                    s, body, _ = client.call("GET", "/v1/licenses?limit=20&sort=name", p["token"])
                    tally.add("list", s)
                    if s != 200 and not (s == 503 and (down or tally.primary_down.is_set())) and s not in (0, 502):
                        tally.violation(f"list: {s} {body}")
                time.sleep(0.05)

        threads = [threading.Thread(target=validator) for _ in range(4)] + \
                  [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()

        def readyz():
            s, body, _ = client.call("GET", "/readyz")
            return s, body

        t0 = time.time()
        faults = []  # (name, start, end of the fault's own actions)
        time.sleep(min(8, SECONDS / 6))
        log("fault 1: SIGKILL one serve process")
        f0 = time.time()
        serves[1].kill()
        time.sleep(2)
        serves[1].start()
        faults.append(("SIGKILL of one serve process (restarted 2 s later)", f0, time.time()))
        log("fault 2: rolling restart (SIGTERM, one at a time)")
        f0 = time.time()
        tally.restarting.set()
        for s_ in serves:
            s_.terminate()
            s_.start()
        faults.append(("rolling restart of the three serve processes", f0, time.time()))
        time.sleep(1)
        tally.restarting.clear()
        time.sleep(3)
        log("fault 3: the primary stops")
        f0 = time.time()
        tally.primary_down.set()
        primary.stop()
        time.sleep(3)
        s, body = readyz()
        log(f"readyz while the primary is down: {s} {body}")
        if s != 200 or body.get("status") != "degraded" or body.get("primary") is not False:
            tally.violation(f"readyz while the primary is down: {s} {body}")
        time.sleep(3)
        primary.start()
        faults.append(("primary stopped for 6 s", f0, time.time()))
        log("the primary is back")
        # Writes that were refused may still be retrying: let them settle before clearing.
        time.sleep(4)
        tally.primary_down.clear()
        s, body = readyz()
        if s != 200 or body.get("status") != "ok":
            tally.violation(f"readyz after the primary returned: {s} {body}")
        remaining = end_of_load - time.time()
        if remaining > 0:
            time.sleep(remaining)
        stop.set()
        for t in threads:
            t.join(timeout=180)
        log(f"load done in {time.time() - t0:.0f} s")

        # Exactly one license per order key; the ledger invariant per account.
        by_partner = {}
        for pid, token, key in order_keys:
            by_partner.setdefault((pid, token), []).append(key)
        duplicates = missing = 0
        for (pid, token), ks in by_partner.items():
            for key in ks:
                s, page, _ = client.call("GET", f"/v1/licenses?external_id={key}", token)
                n = len(page["items"]) if s == 200 else -1
                if n > 1:
                    duplicates += 1
                    tally.violation(f"key {key}: {n} licenses")
                elif n != 1:
                    missing += 1
                    tally.violation(f"key {key}: {n} licenses ({s})")
        for p in partners:
            s, account, _ = client.call("GET", f"/v1/accounts/{p['id']}", p["token"])
            total, cursor = 0, None
            while True:
                path = f"/v1/accounts/{p['id']}/ledger?limit=200" + (f"&cursor={cursor}" if cursor else "")
                s2, page, _ = client.call("GET", path, p["token"])
                total += sum(e["amount"] for e in page["items"])
                cursor = page.get("next_cursor")
                if not cursor:
                    break
            if account["balance"] != total or account["balance"] < -account["credit_limit"]:
                tally.violation(f"account {p['id']}: balance {account['balance']} vs Σ ledger {total}")
        log(f"outcomes: {json.dumps(tally.counts, sort_keys=True)}")
        figures = fault_figures(tally, faults, end_of_load)
        for f in figures:
            log(f"  {f['fault']}: {f['failed_answers']} answers other than success "
                f"({json.dumps(f['by_kind'], sort_keys=True)}); last at +{f['recovered_after_s']} s "
                f"after the fault began, its actions took {f['fault_took_s']} s")
        log(f"  {tally.retries} client retries with the same Idempotency-Key")
        throughput = {}
        if not tally.violations:
            throughput = validate_throughput(work, client, keys, serves, env)
        summary = {"counts": tally.counts, "faults": figures, "retries": tally.retries,
                   "order_keys": len(order_keys), "duplicates": duplicates, "missing": missing,
                   "violations": len(tally.violations), "validate_throughput": throughput}
        if os.environ.get("TOPOLOGY_JSON"):
            with open(os.environ["TOPOLOGY_JSON"], "w") as f:
                json.dump(summary, f, indent=2, sort_keys=True)
        log(f"{len(order_keys)} order keys, {duplicates} duplicates, {missing} missing; "
            f"{len(tally.violations)} violations; {time.time() - started:.0f} s in all")
        for v in tally.violations[:30]:
            log(f"  violation: {v}")
        if tally.violations:
            try:
                with open(os.path.join(work, "nginx-error.log")) as f:
                    tail = f.read().splitlines()[-20:]
                for line in tail:
                    log(f"  nginx: {line}")
            except OSError:
                pass
        return 1 if tally.violations else 0
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.kill()
                p.wait()
        for pg in (replica, primary):
            if pg:
                pg.stop_quietly()
        if os.environ.get("TOPOLOGY_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
