#!/usr/bin/env python3
"""Figures for counts, reports and CSV exports at scale (CONTRACT §11), on the data set of
scripts/bench.py: how long `GET /v1/licenses/count`, `GET /v1/reports/licenses` and
`GET /v1/reports/revenue` take at 1M licenses, as the largest partner and as the provider's admin,
and how long the CSV export of every license takes, with the server's RSS before, at its peak and
after (the export streams: the peak must not grow with the rows).

Usage: scripts/bench_features.py   (BENCH_LICENSES, BENCH_KEEP_DB, BENCH_PG_URL as for bench.py)
Settings: FEATURES_REPEAT (timed requests per figure, default 7: the first is reported as cold,
the median of the rest as warm), BENCH_JSON (write the figures as JSON).
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402 (next to this script)

REPEAT = int(os.environ.get("FEATURES_REPEAT", "7"))


def timed(path, headers):
    started = time.monotonic()
    req = urllib.request.Request(bench.BASE + path, headers=headers)
    size = 0
    with urllib.request.urlopen(req, timeout=600) as res:
        status = res.status
        while True:
            chunk = res.read(1 << 16)
            if not chunk:
                break
            size += len(chunk)
    return (time.monotonic() - started) * 1000, status, size


def figure(name, path, headers):
    runs = [timed(path, headers) for _ in range(REPEAT)]
    statuses = {r[1] for r in runs}
    warm = statistics.median(r[0] for r in runs[1:]) if len(runs) > 1 else runs[0][0]
    row = dict(name=name, path=path, cold_ms=round(runs[0][0], 1), warm_ms=round(warm, 1),
               max_ms=round(max(r[0] for r in runs), 1), statuses=sorted(statuses))
    bench.log(f"{name}: cold {row['cold_ms']} ms, warm {row['warm_ms']} ms (statuses {row['statuses']})")
    return row


def login(email, password):
    req = urllib.request.Request(bench.BASE + "/v1/auth/token", method="POST",
                                 data=json.dumps({"email": email, "password": password}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as res:
        return json.load(res)["access_token"]


def export(server, name, path, headers):
    """Streams a CSV export to nowhere, sampling the server's RSS every 100 ms."""
    before = server.rss_kib()
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.wait(0.1):
            peak[0] = max(peak[0], server.rss_kib())

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    req = urllib.request.Request(bench.BASE + path, headers=dict(headers, Accept="text/csv"))
    rows = size = 0
    with urllib.request.urlopen(req, timeout=1800) as res:
        status = res.status
        while True:
            chunk = res.read(1 << 16)
            if not chunk:
                break
            size += len(chunk)
            rows += chunk.count(b"\n")
    seconds = time.monotonic() - started
    done.set()
    sampler.join()
    after = server.rss_kib()
    row = dict(name=name, path=path, status=status, rows=rows - 1, mib=round(size / 2**20, 1),
               seconds=round(seconds, 1), rss_before_mib=round(before / 1024, 1),
               rss_peak_mib=round(peak[0] / 1024, 1), rss_after_mib=round(after / 1024, 1))
    bench.log(f"{name}: {row['rows']:,} rows, {row['mib']} MiB in {row['seconds']} s; RSS "
              f"{row['rss_before_mib']} → peak {row['rss_peak_mib']} → {row['rss_after_mib']} MiB")
    return row


def main():
    bench.need_tools()
    bench.log("building the release binary")
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "licentia-api"],
                   cwd=bench.ROOT, check=True)
    work = tempfile.mkdtemp(prefix="licentia-features-")
    server = None
    try:
        manifest, _ = bench.seed(work)
        server = bench.Server(work)
        bench.wait_for_idle_jobs()
        big = manifest["accounts"][0]
        partner = {"X-API-Key": big["api_key"]}
        admin = {"Authorization": "Bearer " + login("bench-admin@licentia.test", "bench-admin-password")}
        day = 86_400
        stamp = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
        now = time.time()
        # The longest period the report takes (400 days), ending tomorrow.
        revenue = "/v1/reports/revenue?" + urllib.parse.urlencode(
            {"from": stamp(now - 399 * day), "to": stamp(now + day)})
        rows = [
            figure("count, partner", "/v1/licenses/count", partner),
            figure("count, partner, status", "/v1/licenses/count?status=active", partner),
            figure("count, partner, name", "/v1/licenses/count?name=shop", partner),
            figure("count, admin", "/v1/licenses/count", admin),
            figure("count, admin, status", "/v1/licenses/count?status=suspended", admin),
            figure("report licenses, partner", "/v1/reports/licenses?expiring_within_days=30", partner),
            figure("report licenses, admin", "/v1/reports/licenses?expiring_within_days=30", admin),
            figure("report revenue, partner", revenue, partner),
            figure("report revenue, admin", revenue, admin),
        ]
        exports = [
            export(server, "CSV, partner's licenses", "/v1/licenses", partner),
            export(server, "CSV, every license (admin)", "/v1/licenses", admin),
        ]
        print()
        print(f"{'figure':<28} {'cold ms':>8} {'warm ms':>8} {'max ms':>8}")
        for r in rows:
            print(f"{r['name']:<28} {r['cold_ms']:>8} {r['warm_ms']:>8} {r['max_ms']:>8}")
        for e in exports:
            print(f"{e['name']:<28} {e['rows']:,} rows, {e['mib']} MiB in {e['seconds']} s; RSS "
                  f"{e['rss_before_mib']} → {e['rss_peak_mib']} → {e['rss_after_mib']} MiB")
        if os.environ.get("BENCH_JSON"):
            with open(os.environ["BENCH_JSON"], "w") as f:
                json.dump(dict(licenses=manifest["licenses"], figures=rows, exports=exports), f, indent=2)
    finally:
        if server:
            server.stop()
        if not bench.KEEP_DB:
            bench.psql(f'DROP DATABASE IF EXISTS "{bench.DB}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
