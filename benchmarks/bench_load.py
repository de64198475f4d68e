"""Load test of the console: gunicorn on loopback, wrk with signed-in users.

Seeds the demo into a fresh PostgreSQL database, starts gunicorn with
production-like settings on 127.0.0.1, signs in four demo users, then runs
wrk for LOAD_SECONDS (default 60) with LOAD_CONNECTIONS (default 8)
connections spread over the users and the console's pages. Prints requests
per second, p50/p95/p99 latency and the error count (non-2xx answers and
socket errors). Only loopback is contacted.

    .venv/bin/python -m benchmarks load
"""
from __future__ import annotations

import http.cookiejar
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from benchmarks._support import database_url, recreate_database

ROOT = Path(__file__).resolve().parents[1]
PORT = int(os.environ.get("LOAD_PORT", "8765"))
SECONDS = int(os.environ.get("LOAD_SECONDS", "60"))
CONNECTIONS = int(os.environ.get("LOAD_CONNECTIONS", "8"))
WORKERS = int(os.environ.get("LOAD_WORKERS", "4"))
DB_NAME = "aurora_bench_load"
USERS = ["owner@acme.example", "accountant@acme.example", "viewer@acme.example", "owner@xingchen.example"]
MAY_EXPORT = {"owner@acme.example", "accountant@acme.example", "owner@xingchen.example"}  # viewers may not
PASSWORD = "demo-pass-123"

LUA = r"""
local requests_ = {%(pairs)s}
local n = 0
request = function()
  n = n + 1
  local r = requests_[(n %% #requests_) + 1]
  return wrk.format("GET", r[2], {["Cookie"] = r[1]})
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%%d duration_us=%%d p50_us=%%d p95_us=%%d p99_us=%%d "
    .. "non2xx=%%d connect=%%d read=%%d write=%%d timeout=%%d status=%%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, summary.errors.status))
end
"""


def env() -> dict:
    return {
        **os.environ,
        "DATABASE_URL": database_url(DB_NAME),
        "DEBUG": "0",
        "SECRET_KEY": "load-test-only-" + "x" * 40,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "STATIC_MANIFEST": "0",
        "LOG_LEVEL": "WARNING",
        "LOGIN_FAILURE_LIMIT": "1000",
    }


def manage(*args: str) -> str:
    out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env(), check=True,
                         capture_output=True, text=True)
    return out.stdout


def sign_in(email: str) -> str:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"http://127.0.0.1:{PORT}/accounts/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    data = urllib.parse.urlencode({"username": email, "password": PASSWORD,
                                   "csrfmiddlewaretoken": token}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{PORT}/accounts/login/", data=data,
                                     headers={"Referer": f"http://127.0.0.1:{PORT}/accounts/login/"})
    opener.open(request, timeout=10).read()
    cookies = {c.name: c.value for c in jar}
    if "sessionid" not in cookies:
        raise RuntimeError(f"sign-in failed for {email}")
    return f"sessionid={cookies['sessionid']}; csrftoken={cookies.get('csrftoken', '')}"


def wait_ready() -> None:
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=2).read()
            return
        except Exception:  # noqa: BLE001
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


def main() -> None:
    if not shutil.which("wrk"):
        print("wrk is not installed (apt-get install wrk)")
        return
    print(f"seeding demo into {DB_NAME} …", flush=True)
    recreate_database(database_url(DB_NAME))
    manage("migrate", "--no-input", "-v0")
    manage("seed_demo")
    periods = re.findall(r"\d{4}-\d{2}", manage("shell", "-c",
                                               "from invoices.models import Bill;"
                                               "print(sorted(set(Bill.objects.values_list('period', flat=True))))"))
    pages = ["/billing/", "/help/billing/"] + [f"/billing/?period={p}" for p in periods[-3:]]
    export = f"/billing/export.csv?period={periods[-1]}"
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "aurora_billing.wsgi", "--bind", f"127.0.0.1:{PORT}",
         "--workers", str(WORKERS), "--log-level", "warning"],
        cwd=ROOT, env=env(),
    )
    try:
        wait_ready()
        pairs = []
        for user in USERS:
            cookie = sign_in(user)
            pairs += [(cookie, path) for path in pages + ([export] if user in MAY_EXPORT else [])]
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(LUA % {"pairs": ", ".join(f'{{"{c}", "{p}"}}' for c, p in pairs)})
        print(f"wrk: {SECONDS}s, {CONNECTIONS} connections, {len(USERS)} signed-in users, "
              f"{len(pages) + 1} pages, gunicorn {WORKERS} workers", flush=True)
        out = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--timeout", "10s",
                              "-s", script.name, f"http://127.0.0.1:{PORT}/"],
                             capture_output=True, text=True, check=True).stdout
        os.unlink(script.name)
    finally:
        server.terminate()
        server.wait(timeout=30)
    values = dict(re.findall(r"(\w+)=(\d+)", out.split("RESULT", 1)[1]))
    requests = int(values["requests"])
    duration = int(values["duration_us"]) / 1e6
    errors = sum(int(values[k]) for k in ("non2xx", "connect", "read", "write", "timeout"))
    print()
    print("| metric | value |")
    print("|---|---|")
    print(f"| duration | {duration:.1f} s |")
    print(f"| requests | {requests} |")
    print(f"| requests/s | {requests / duration:.1f} |")
    print(f"| p50 latency | {int(values['p50_us']) / 1000:.1f} ms |")
    print(f"| p95 latency | {int(values['p95_us']) / 1000:.1f} ms |")
    print(f"| p99 latency | {int(values['p99_us']) / 1000:.1f} ms |")
    print(f"| errors (non-2xx, socket, timeouts) | {errors} |")


if __name__ == "__main__":
    main()
