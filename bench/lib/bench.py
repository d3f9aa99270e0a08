#!/usr/bin/env python3
"""Helpers for bench/run (python3 standard library only).

Subcommands:
  free-port                                  print a free TCP port on 127.0.0.1
  token BASE                                 sign in as the bench super admin; print the access token
  client BASE                                print the super admin client's id:secret, base64
  wait-health BASE PID SECONDS               wait until BASE/healthcheck answers ok (fails if PID exits)
  seed BASE OUT COUNT VERSIONS CONCURRENCY   create COUNT Patients with VERSIONS versions each; ids to OUT
  count-versions BASE IDS                    print the versions beyond the first, summed over the pool
  requests-of WRK_OUT...                     print the 2xx requests counted in wrk outputs
  pg-url ADMIN_URL DB                        print ADMIN_URL with its database replaced by DB (loopback only)
  mark-crash OUT BACKEND SCENARIO MESSAGE    append a row for a scenario the server crashed in
  record OUT BACKEND SCENARIO WRK_OUT PEAK_KB  parse a wrk output's BENCH_RESULT line, append a JSON row
  table ROWS                                 print the Markdown table of the rows
  problems ROWS                              print one line per row with non-2xx, socket errors or a crash
"""

import base64
import hashlib
import http.client
import json
import os
import secrets
import sys
import threading
import time
import urllib.parse


def fail(msg):
    print(f"bench: {msg}", file=sys.stderr)
    sys.exit(1)


def split_base(base):
    u = urllib.parse.urlsplit(base)
    if u.hostname not in ("127.0.0.1", "localhost", "::1") and not (u.hostname or "").startswith("127."):
        fail(f"refusing a non-loopback address: {base}")
    return u.hostname, u.port, u.path.rstrip("/")


# The super admin every benchmark server is started with (see server_env()).
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "bench-admin-password"

# Headers that authenticate a request; filled by sign_in().
AUTH = {}


def server_env():
    """What a benchmark server is started with, besides where it listens and stores: a known
    super admin, and no per-address rate limit (the load comes from one address)."""
    return {"OXMED_ADMIN_EMAIL": ADMIN_EMAIL, "OXMED_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "OXMED_RATE_LIMIT": "0", "OXMED_AUTH_RATE_LIMIT": "0"}


def sign_in(base):
    """Signs in as the super admin (password, then the code grant with PKCE S256); returns the
    access token and sets AUTH."""
    host, port, _ = split_base(base)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    conn = http.client.HTTPConnection(host, port, timeout=60)
    try:
        conn.request("POST", "/auth/login", json.dumps({
            "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
            "codeChallenge": challenge, "codeChallengeMethod": "S256"}),
            {"Content-Type": "application/json"})
        r = conn.getresponse()
        login = json.loads(r.read() or b"{}")
        if r.status != 200 or "code" not in login:
            fail(f"sign-in failed: HTTP {r.status} {login}")
        form = urllib.parse.urlencode({"grant_type": "authorization_code", "code": login["code"],
                                       "code_verifier": verifier})
        conn.request("POST", "/oauth2/token", form, {"Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        tokens = json.loads(r.read() or b"{}")
        if r.status != 200 or "access_token" not in tokens:
            fail(f"token request failed: HTTP {r.status} {tokens}")
    finally:
        conn.close()
    AUTH["Authorization"] = "Bearer " + tokens["access_token"]
    return tokens["access_token"]


def token(base):
    print(sign_in(base))


def client(base):
    """Prints `id:secret` of the super admin's ClientApplication, base64 (an HTTP Basic value),
    for the client-credentials scenario."""
    host, port, _ = split_base(base)
    sign_in(base)
    conn = http.client.HTTPConnection(host, port, timeout=60)
    try:
        conn.request("GET", "/fhir/R4/ClientApplication?name:exact=Super%20Admin%20Client", headers=AUTH)
        r = conn.getresponse()
        bundle = json.loads(r.read() or b"{}")
    finally:
        conn.close()
    entries = bundle.get("entry") or []
    if r.status != 200 or not entries:
        fail(f"cannot read the super admin client: HTTP {r.status}")
    c = entries[0]["resource"]
    print(base64.b64encode(f"{c['id']}:{c['secret']}".encode()).decode())


def free_port():
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by the shell) still answers kill 0.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_health(base, pid, seconds):
    host, port, _ = split_base(base)
    deadline = time.monotonic() + float(seconds)
    last = "no answer"
    while time.monotonic() < deadline:
        if not pid_alive(int(pid)):
            fail(f"the server (pid {pid}) exited before it answered /healthcheck")
        try:
            c = http.client.HTTPConnection(host, port, timeout=2)
            c.request("GET", "/healthcheck")
            r = c.getresponse()
            body = r.read()
            c.close()
            if r.status == 200 and json.loads(body).get("ok") is True:
                return
            last = f"HTTP {r.status}: {body[:200]!r}"
        except (OSError, ValueError) as e:
            last = str(e)
        time.sleep(0.1)
    fail(f"the server did not become healthy within {seconds} s at {base}/healthcheck (last: {last})")


def patient(n, pid=None):
    families = ["Chalmers", "Nguyen", "Garcia", "Okafor", "Schmidt", "Tanaka", "Rossi", "Kowalski"]
    givens = ["Peter", "Amina", "Lucia", "Kenji", "Sofia", "Jonas", "Priya", "Mateo"]
    p = {
        "resourceType": "Patient",
        "identifier": [{"system": "http://hospital.example.org/mrn", "value": f"SEED-{n}"}],
        "active": True,
        "name": [{"use": "official", "family": families[n % 8], "given": [givens[(n // 8) % 8]]}],
        "telecom": [{"system": "phone", "value": f"+1 555 {n:07d}", "use": "home"}],
        "gender": "female" if n % 2 == 0 else "male",
        "birthDate": f"{1930 + n % 90:04d}-{1 + n % 12:02d}-{1 + n % 28:02d}",
        "address": [{"use": "home", "line": [f"{1 + n % 900} Erewhon St"], "city": "Riverside",
                     "postalCode": str(3000 + n % 999), "country": "AU"}],
    }
    if pid is not None:
        p["id"] = pid
    return p


def seed(base, out, count, versions, concurrency):
    host, port, prefix = split_base(base)
    count, versions, concurrency = int(count), int(versions), int(concurrency)
    if count < 1 or versions < 1:
        fail("seed: COUNT and VERSIONS must be at least 1")
    ids = [None] * count
    errors = []
    sign_in(base)
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json", **AUTH}
    next_index = [0]
    lock = threading.Lock()

    def send(conn, method, path, body, expect):
        conn.request(method, prefix + path, json.dumps(body), headers)
        r = conn.getresponse()
        data = r.read()
        if r.status not in expect:
            raise RuntimeError(f"{method} {path} -> HTTP {r.status}: {data[:500].decode(errors='replace')}")
        return json.loads(data)

    def worker():
        conn = http.client.HTTPConnection(host, port, timeout=60)
        try:
            while True:
                with lock:
                    if errors or next_index[0] >= count:
                        return
                    i = next_index[0]
                    next_index[0] += 1
                created = send(conn, "POST", "/Patient", patient(i), (201,))
                pid = created.get("id")
                if not pid:
                    raise RuntimeError(f"create answered without an id: {created}")
                for v in range(1, versions):
                    send(conn, "PUT", f"/Patient/{pid}", patient(i * 1000 + v, pid), (200,))
                ids[i] = pid
        except Exception as e:  # noqa: BLE001 - reported to the caller
            with lock:
                errors.append(str(e))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(max(1, concurrency))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        fail(f"seeding failed: {errors[0]}")
    with open(out, "w") as f:
        f.write("\n".join(ids) + "\n")


def count_versions(base, ids_file):
    """Prints the number of versions beyond the first, summed over the pool's Patients."""
    host, port, prefix = split_base(base)
    with open(ids_file) as f:
        ids = [line.strip() for line in f if line.strip()]
    sign_in(base)
    conn = http.client.HTTPConnection(host, port, timeout=60)
    extra = 0
    for pid in ids:
        path = f"{prefix}/Patient/{pid}/_history?_count=1000"
        while path:
            conn.request("GET", path, headers={"Accept": "application/fhir+json", **AUTH})
            r = conn.getresponse()
            data = r.read()
            if r.status != 200:
                fail(f"GET {path} -> HTTP {r.status}: {data[:300]!r}")
            bundle = json.loads(data)
            extra += len(bundle.get("entry", []))
            path = next((urllib.parse.urlsplit(l["url"])._replace(scheme="", netloc="").geturl()
                         for l in bundle.get("link", []) if l.get("relation") == "next"), None)
        extra -= 1
    conn.close()
    print(extra)


def requests_of(*wrk_outs):
    """Prints the successful (2xx) requests counted in the BENCH_RESULT lines of the files."""
    total = 0
    for path in wrk_outs:
        try:
            with open(path, errors="replace") as f:
                for line in f:
                    if line.startswith("BENCH_RESULT "):
                        r = json.loads(line[len("BENCH_RESULT "):])
                        total += r["requests"] - r["non2xx"]
        except OSError:
            pass
    print(total)


def record(out, backend, scenario, wrk_out, peak_kb):
    row = {"backend": backend, "scenario": scenario, "peak_rss_anon_kb": None, "crashed": False}
    if peak_kb not in ("", "-"):
        row["peak_rss_anon_kb"] = int(peak_kb)
    result = None
    try:
        with open(wrk_out, errors="replace") as f:
            for line in f:
                if line.startswith("BENCH_RESULT "):
                    result = json.loads(line[len("BENCH_RESULT "):])
    except OSError:
        pass
    if result is None:
        row["error"] = f"no BENCH_RESULT line in {os.path.basename(wrk_out)} (wrk failed?)"
    else:
        row.update(result)
        secs = result["duration_us"] / 1e6
        row["rps"] = result["requests"] / secs if secs > 0 else 0.0
        counts = {}
        for pair in filter(None, result["non2xx_statuses"].split(",")):
            status, n = pair.split(":")
            counts[status] = counts.get(status, 0) + int(n)
        row["non2xx_statuses"] = ",".join(f"{k}:{v}" for k, v in sorted(counts.items()))
        row["socket_errors"] = sum(result[k] for k in ("errors_connect", "errors_read", "errors_write", "errors_timeout"))
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")


def pg_url(admin, db):
    u = urllib.parse.urlsplit(admin)
    if u.scheme not in ("postgres", "postgresql"):
        fail(f"not a postgres:// URL: {admin}")
    host = u.hostname or ""
    if host and host not in ("localhost", "::1") and not host.startswith("127.") and not host.startswith("/"):
        fail(f"refusing a non-loopback PostgreSQL host: {host}")
    print(urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + db, u.query, "")))


def mark_crash(out, backend, scenario, message):
    with open(out, "a") as f:
        f.write(json.dumps({"backend": backend, "scenario": scenario, "crashed": True, "error": message}) + "\n")


def load(rows_file):
    if not os.path.exists(rows_file):
        return []
    with open(rows_file) as f:
        return [json.loads(line) for line in f if line.strip()]


def table(rows_file):
    print("| backend | scenario | req/s | p50 ms | p99 ms | non-2xx | socket errors | peak RssAnon MB |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in load(rows_file):
        mem = f"{r['peak_rss_anon_kb'] / 1024:.1f}" if r.get("peak_rss_anon_kb") is not None else "?"
        if "rps" not in r:
            what = "FAILED"
            if r.get("crashed"):
                what = "not run (server crashed)" if r.get("error", "").startswith("not run") else "SERVER CRASHED"
            print(f"| {r['backend']} | {r['scenario']} | **{what}** | | | | | {mem} |")
            continue
        bad = f"**{r['non2xx']} (!)**" if r["non2xx"] else "0"
        sock = f"**{r['socket_errors']} (!)**" if r["socket_errors"] else "0"
        print(f"| {r['backend']} | {r['scenario']} | {r['rps']:.0f} | {r['p50_us'] / 1000:.2f} | "
              f"{r['p99_us'] / 1000:.2f} | {bad} | {sock} | {mem} |")


def problems(rows_file):
    for r in load(rows_file):
        where = f"{r['backend']}/{r['scenario']}"
        if "rps" not in r:
            print(f"{where}: {r.get('error', 'failed')}")
            continue
        if r["non2xx"]:
            print(f"{where}: {r['non2xx']} non-2xx responses (status:count {r['non2xx_statuses']}); "
                  f"first: {r['first_error']}")
        if r["socket_errors"]:
            print(f"{where}: socket errors: connect {r['errors_connect']}, read {r['errors_read']}, "
                  f"write {r['errors_write']}, timeout {r['errors_timeout']}")


def main(argv):
    cmds = {
        "free-port": (free_port, 0),
        "token": (token, 1),
        "client": (client, 1),
        "wait-health": (wait_health, 3),
        "seed": (seed, 5),
        "count-versions": (count_versions, 2),
        "record": (record, 5),
        "mark-crash": (mark_crash, 4),
        "pg-url": (pg_url, 2),
        "table": (table, 1),
        "problems": (problems, 1),
    }
    if len(argv) >= 2 and argv[1] == "requests-of":
        return requests_of(*argv[2:])
    if len(argv) < 2 or argv[1] not in cmds or len(argv) - 2 != cmds[argv[1]][1]:
        fail("usage: bench.py " + " | ".join(cmds) + " (see the module docstring)")
    fn, _ = cmds[argv[1]]
    fn(*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
