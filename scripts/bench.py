#!/usr/bin/env python3
"""Side-by-side proxy benchmark: the upstream directly, nginx as a reverse proxy doing the same
path rewrite and header injection (1 worker and `auto`), and a Gatehouse data plane with a real
API key, access check and request logging on.

Run through `./scripts/bench` (which builds the release binaries and provides PostgreSQL).
Targets are interleaved per round (A B C D, A B C D, ...) so drift on a shared machine hits all
of them alike; ratios are computed within each round, then the median is reported.

Everything listens on 127.0.0.1, every load run is bounded by --duration, and every process this
script starts is stopped by its PID when it ends.
"""

import argparse
import itertools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
# BENCH_PORT_BASE moves all six ports, so that two runs on one machine do not collide.
PORTS = dict(zip(["upstream", "nginx-1", "nginx-auto", "control", "gatehouse", "gatehouse-nolog"],
                 itertools.count(int(os.environ.get("BENCH_PORT_BASE", "18181")))))
SECRET = "bench-upstream-secret"

TARGETS = ["direct", "nginx-1", "nginx-auto", "gatehouse", "gatehouse-nolog"]

# name -> (method, upstream path, connections)
SCENARIOS = {
    "get-1k-c32": ("GET", "/1k", 32),
    "get-1k-c256": ("GET", "/1k", 256),
    "post-1k-c32": ("POST", "/post", 32),
    "get-1m-c32": ("GET", "/1m", 32),
    "sse-100-c32": ("GET", "/sse", 32),
}

WRK_SCRIPT = """
local method, body, key = os.getenv("BENCH_METHOD"), os.getenv("BENCH_BODY"), os.getenv("BENCH_KEY")
wrk.method = method
if method == "POST" then
  wrk.body = string.rep("x", 1024)
  wrk.headers["Content-Type"] = "application/octet-stream"
end
if key ~= nil and key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end
done = function(summary, latency, requests)
  io.write(string.format("BENCH %d %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"""


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class Processes:
    """Every process started, stopped by PID at exit."""

    def __init__(self):
        self.started = []

    def start(self, name, argv, env=None, cpus=None, log_path=None):
        if cpus is not None:
            argv = ["taskset", "-c", cpus] + argv
        out = open(log_path, "wb") if log_path else subprocess.DEVNULL
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append((name, proc))
        return proc

    def stop_all(self):
        for name, proc in reversed(self.started):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        for name, proc in reversed(self.started):
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_http(url, deadline=30, headers=None):
    end = time.time() + deadline
    while time.time() < end:
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.1)
    raise SystemExit(f"bench: {url} did not answer 200 within {deadline}s")


def api(method, path, key, body=None):
    url = f"http://127.0.0.1:{PORTS['control']}/api/v1{path}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def nginx_conf(workdir, name, port, workers, upstream_only=False):
    """nginx as the upstream (fixed bodies) or as the reverse proxy under test."""
    prefix = os.path.join(workdir, name)
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    if upstream_only:
        http_body = f"""
        server {{
            listen 127.0.0.1:{port} reuseport backlog=4096;
            keepalive_requests 1000000;
            root {workdir}/www;
            location = /sse {{ default_type text/event-stream; }}
            # Static files refuse POST: answer 1 KiB, discarding the body.
            location = /post {{ default_type application/octet-stream; return 200 "{"x" * 1024}"; }}
        }}"""
    else:
        http_body = f"""
        upstream up {{ server 127.0.0.1:{PORTS['upstream']}; keepalive 512; }}
        server {{
            listen 127.0.0.1:{port} reuseport backlog=4096;
            keepalive_requests 1000000;
            location /proxy-api/bench/up/ {{
                proxy_pass http://up/;
                proxy_http_version 1.1;
                proxy_set_header Connection "";
                proxy_set_header Authorization "";
                proxy_set_header X-Upstream-Key "{SECRET}";
                proxy_buffering off;
                proxy_request_buffering off;
            }}
        }}"""
    conf = f"""
    worker_processes {workers};
    pid {prefix}/nginx.pid;
    error_log {prefix}/logs/error.log warn;
    daemon off;
    events {{ worker_connections 4096; }}
    http {{
        access_log off;
        client_body_temp_path {prefix}/body;
        proxy_temp_path {prefix}/proxy;
        fastcgi_temp_path {prefix}/fastcgi;
        uwsgi_temp_path {prefix}/uwsgi;
        scgi_temp_path {prefix}/scgi;
        {http_body}
    }}
    """
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


def process_tree(pid):
    """`pid` and its children (nginx workers)."""
    pids = [pid]
    try:
        children = open(f"/proc/{pid}/task/{pid}/children").read().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    return pids


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except OSError:
            pass
    return total


def postgres_pids():
    """Every PostgreSQL server process on this machine."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if open(f"/proc/{entry}/comm").read().strip() == "postgres":
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def postgres_ticks():
    """CPU ticks of each PostgreSQL server process, by PID: what request logging costs the
    database, which shares the machine's cores with the proxy."""
    return {pid: cpu_ticks([pid]) for pid in postgres_pids()}


def pinned_cpus():
    """(server CPU, load CPU) for --pinned: the load generator and the database go to the CPU
    that takes the block device's interrupts, so that PostgreSQL's disk writes (WAL, writeback)
    land beside it and not on the servers' core, as where the database has a machine of its
    own."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("bench: --pinned needs two CPUs")
    load = disk_interrupt_cpu()
    load = load if load in cpus else cpus[0]
    server = next(c for c in cpus if c != load)
    return str(server), str(load)


def disk_interrupt_cpu():
    """The CPU that has handled most block-device interrupts (virtio-blk, NVMe, SCSI, ATA), or
    None when /proc/interrupts names none."""
    try:
        lines = open("/proc/interrupts").read().splitlines()
    except OSError:
        return None
    count = len(lines[0].split())
    totals = [0] * count
    for line in lines[1:]:
        if re.search(r"virtio\d+-req|nvme\d+q|ahci|scsi|ata_", line):
            for cpu, n in enumerate(line.split()[1:1 + count]):
                totals[cpu] += int(n) if n.isdigit() else 0
    return max(range(count), key=totals.__getitem__) if any(totals) else None


def set_unbound_workqueues(mask):
    """Sets the CPUs of the kernel's unbound workqueues (writeback among them) to hex `mask`;
    returns the mask before, or None where that cannot be changed."""
    path = "/sys/devices/virtual/workqueue/cpumask"
    try:
        before = open(path).read().strip()
        with open(path, "w") as f:
            f.write(mask)
        return before
    except OSError:
        return None


def place_postgres(cpus):
    """Moves every PostgreSQL server process to `cpus` under SCHED_IDLE, which yields the CPU
    at once to any other task that wakes (backends forked later inherit the postmaster's
    affinity and policy); `None` puts them back on every CPU under the normal policy."""
    policy = os.SCHED_IDLE if cpus else os.SCHED_OTHER
    cpus = cpus or set(range(os.cpu_count()))
    for pid in postgres_pids():
        try:
            os.sched_setaffinity(pid, cpus)
            os.sched_setscheduler(pid, policy, os.sched_param(0))
        except OSError:
            pass


def request_log_counts(port):
    """(written, dropped) request-log records of the data plane on `port`, from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    count = lambda name: int(float(re.search(rf"^{name} (\S+)$", text, re.M).group(1)))
    return count("gatehouse_request_log_written_total"), count("gatehouse_request_log_dropped_total")


def peak_rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            m = re.search(r"VmHWM:\s+(\d+) kB", open(f"/proc/{pid}/status").read())
            total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total


def run_wrk(url, method, connections, duration, key, lua, cpus):
    env = dict(os.environ, BENCH_METHOD=method, BENCH_KEY=key or "")
    threads = min(connections, 2)
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--timeout", "10s", "-s", lua, url]
    if cpus is not None:
        argv = ["taskset", "-c", cpus] + argv
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration + 60).stdout
    m = re.search(r"^BENCH (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$", out, re.M)
    if not m:
        raise SystemExit(f"bench: unexpected wrk output:\n{out}")
    requests, duration_us, errors, non2xx, p50, p99, p999 = map(int, m.groups())
    return {"requests": requests, "rps": requests / (duration_us / 1e6), "errors": errors, "non2xx": non2xx,
            "p50_ms": p50 / 1000, "p99_ms": p99 / 1000, "p999_ms": p999 / 1000}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per load run")
    parser.add_argument("--pinned", action="store_true",
                        help="load generator, PostgreSQL (SCHED_IDLE) and disk interrupts on one CPU, proxies and upstream on another")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset")
    parser.add_argument("--bin-dir", default=os.path.join(ROOT, "target", "release"))
    parser.add_argument("--out", help="also write the markdown table to this file")
    args = parser.parse_args()
    # A database of its own: whatever else lives in DATABASE_URL (sealed with other keys, say)
    # must not change what is measured.
    base_url = os.environ["DATABASE_URL"]
    bench_db = f"gatehouse_bench_{os.getpid()}"
    subprocess.run(["psql", base_url, "-qc", f"create database {bench_db}"], check=True)
    database_url = urllib.parse.urlunparse(urllib.parse.urlparse(base_url)._replace(path="/" + bench_db))
    for tool in ["nginx", "wrk", "taskset"]:
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"bench: {tool} is required (./scripts/bench installs nginx and wrk)")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    server_cpus, load_cpus = pinned_cpus() if args.pinned else (None, None)
    args.placement = (f"pinned (wrk, PostgreSQL under SCHED_IDLE, disk interrupts and kernel writeback on "
                      f"CPU {load_cpus}; servers on CPU {server_cpus})" if args.pinned else "unpinned")

    workdir = tempfile.mkdtemp(prefix="gatehouse-bench-")
    # nginx workers run as an unprivileged user when started as root: let them read the files.
    os.chmod(workdir, 0o755)
    os.makedirs(os.path.join(workdir, "www"))
    with open(os.path.join(workdir, "www", "1k"), "wb") as f:
        f.write(b"x" * 1024)
    with open(os.path.join(workdir, "www", "1m"), "wb") as f:
        f.write(os.urandom(1024 * 1024))
    with open(os.path.join(workdir, "www", "sse"), "w") as f:
        f.write("".join(f"id: {i}\ndata: {{\"n\": {i}, \"text\": \"event number {i}\"}}\n\n" for i in range(100)))
    lua = os.path.join(workdir, "bench.lua")
    with open(lua, "w") as f:
        f.write(WRK_SCRIPT)

    procs = Processes()
    workqueues = None
    try:
        procs.start("upstream", [nginx, "-c", nginx_conf(workdir, "upstream", PORTS["upstream"], 1, True)],
                    cpus=server_cpus)
        nginx1 = procs.start("nginx-1", [nginx, "-c", nginx_conf(workdir, "nginx-1", PORTS["nginx-1"], 1)],
                             cpus=server_cpus)
        nginxa = procs.start("nginx-auto", [nginx, "-c", nginx_conf(workdir, "nginx-auto", PORTS["nginx-auto"], "auto")],
                             cpus=server_cpus)
        keys = "bench:" + "ab" * 32
        # One request-serving thread: the CPU budget of nginx-1's single worker.
        env = dict(os.environ, DATABASE_URL=database_url, GATEHOUSE_ENCRYPTION_KEYS=keys, RUST_LOG="warn",
                   WORKER_THREADS="1")
        procs.start("control-plane", [os.path.join(args.bin_dir, "control-plane"), "--listen",
                                      f"127.0.0.1:{PORTS['control']}"], env=env,
                    log_path=os.path.join(workdir, "control-plane.log"))
        wait_http(f"http://127.0.0.1:{PORTS['control']}/healthz")
        key = subprocess.run([os.path.join(args.bin_dir, "control-plane"), "create-admin", "--email",
                              "bench@gatehouse.local"], env=env, capture_output=True, text=True,
                             check=True).stdout.strip()
        try:
            api("DELETE", "/provider-accounts/bench", key)
        except Exception:
            pass
        api("POST", "/provider-accounts", key, {"name": "bench"})
        api("POST", "/provider-accounts/bench/integrations", key, {
            "name": "up", "base_url": f"http://127.0.0.1:{PORTS['upstream']}",
            "header_auth": {"type": "header", "headers": {"X-Upstream-Key": SECRET}}})
        gatehouse = procs.start("gatehouse", [os.path.join(args.bin_dir, "data-plane"), "--listen",
                                              f"127.0.0.1:{PORTS['gatehouse']}"], env=env, cpus=server_cpus,
                                log_path=os.path.join(workdir, "data-plane.log"))
        # The same data plane with request logging off: what logging costs, in the same run.
        nolog = procs.start("gatehouse-nolog", [os.path.join(args.bin_dir, "data-plane"), "--listen",
                                                f"127.0.0.1:{PORTS['gatehouse-nolog']}"],
                            env=dict(env, REQUEST_LOG_QUEUE="0"), cpus=server_cpus,
                            log_path=os.path.join(workdir, "data-plane-nolog.log"))
        for port in [PORTS["upstream"], PORTS["nginx-1"], PORTS["nginx-auto"]]:
            prefix = "" if port == PORTS["upstream"] else "/proxy-api/bench/up"
            wait_http(f"http://127.0.0.1:{port}{prefix}/1k")
        for target in ["gatehouse", "gatehouse-nolog"]:
            wait_http(f"http://127.0.0.1:{PORTS[target]}/proxy-api/bench/up/1k",
                      headers={"Authorization": f"Bearer {key}"})

        targets = {
            "direct": (PORTS["upstream"], "", None, None),
            "nginx-1": (PORTS["nginx-1"], "/proxy-api/bench/up", None, nginx1.pid),
            "nginx-auto": (PORTS["nginx-auto"], "/proxy-api/bench/up", None, nginxa.pid),
            "gatehouse": (PORTS["gatehouse"], "/proxy-api/bench/up", key, gatehouse.pid),
            "gatehouse-nolog": (PORTS["gatehouse-nolog"], "/proxy-api/bench/up", key, nolog.pid),
        }
        if args.pinned:
            # The database off the proxy's core, and never ahead of the load generator for the
            # CPU they share, as where it has a machine of its own: what request logging costs
            # the proxy itself, apart from what it costs PostgreSQL.
            place_postgres({int(load_cpus)})
            workqueues = set_unbound_workqueues(f"{1 << int(load_cpus):x}")
        logged_before = request_log_counts(PORTS["gatehouse"])
        results = {}  # (scenario, target) -> list of per-round dicts
        for round_no in range(args.rounds):
            for scenario in args.scenarios.split(","):
                method, path, connections = SCENARIOS[scenario]
                for target, (port, prefix, target_key, pid) in targets.items():
                    pids = process_tree(pid) if pid else []
                    before, db_before = cpu_ticks(pids), postgres_ticks()
                    r = run_wrk(f"http://127.0.0.1:{port}{prefix}{path}", method, connections, args.duration,
                                target_key, lua, load_cpus)
                    ticks = cpu_ticks(pids) - before
                    db_ticks = sum(t - db_before.get(p, 0) for p, t in postgres_ticks().items())
                    r["cpu_us_per_req"] = (ticks / CLK_TCK * 1e6 / r["requests"]) if pids and r["requests"] else None
                    r["db_cpu_us_per_req"] = db_ticks / CLK_TCK * 1e6 / r["requests"] if r["requests"] else 0.0
                    r["peak_rss_mib"] = peak_rss_kib(pids) / 1024 if pids else None
                    results.setdefault((scenario, target), []).append(r)
                    log(f"round {round_no + 1} {scenario:12} {target:10} {r['rps']:10.0f} req/s "
                        f"p99 {r['p99_ms']:.2f} ms errors {r['errors'] + r['non2xx']}")
        time.sleep(1)  # the writer sends every 100 ms
        written, dropped = (after - before for after, before in
                            zip(request_log_counts(PORTS["gatehouse"]), logged_before))
        served = sum(r["requests"] for (_, target), runs in results.items() if target == "gatehouse"
                     for r in runs)
        table = report(results, args) + (f"\nRequest-log records of the gatehouse target: {written} written, "
                                         f"{dropped} dropped, for {served} requests served.\n")
        print(table)
        if args.out:
            with open(args.out, "w") as f:
                f.write(table)
    finally:
        if args.pinned:
            place_postgres(None)
            if workqueues:
                set_unbound_workqueues(workqueues)
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
        subprocess.run(["psql", base_url, "-qc", f"drop database if exists {bench_db}"], check=False)


def report(results, args):
    med = statistics.median
    lines = [f"Rounds: {args.rounds} × {args.duration} s per target and scenario, "
             f"{args.placement}; medians across rounds; "
             "ratios computed within each round.", "",
             "| scenario | target | req/s | p50 ms | p99 ms | p99.9 ms | proxy CPU µs/req | PostgreSQL CPU µs/req | peak RSS MiB | req/s vs nginx-1 | req/s vs direct | errors |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    scenarios = args.scenarios.split(",")
    for scenario in scenarios:
        for target in TARGETS:
            runs = results[(scenario, target)]
            nginx_runs = results[(scenario, "nginx-1")]
            direct_runs = results[(scenario, "direct")]
            vs_nginx = med(r["rps"] / n["rps"] for r, n in zip(runs, nginx_runs))
            vs_direct = med(r["rps"] / d["rps"] for r, d in zip(runs, direct_runs))
            cpu = [r["cpu_us_per_req"] for r in runs if r["cpu_us_per_req"] is not None]
            rss = [r["peak_rss_mib"] for r in runs if r["peak_rss_mib"] is not None]
            db_cpu = med(r["db_cpu_us_per_req"] for r in runs)
            lines.append(
                f"| {scenario} | {target} | {med(r['rps'] for r in runs):.0f} | {med(r['p50_ms'] for r in runs):.2f} | "
                f"{med(r['p99_ms'] for r in runs):.2f} | {med(r['p999_ms'] for r in runs):.2f} | "
                + (f"{med(cpu):.1f} | {db_cpu:.1f} | {max(rss):.1f} | " if cpu else f"– | {db_cpu:.1f} | – | ")
                + f"{vs_nginx:.2f} | {vs_direct:.2f} | {sum(r['errors'] + r['non2xx'] for r in runs)} |")
    lines += ["", "Request logging's cost: gatehouse req/s ÷ gatehouse-nolog req/s, median of per-round ratios:", ""]
    for scenario in scenarios:
        ratio = med(a["rps"] / b["rps"] for a, b in zip(results[(scenario, "gatehouse")],
                                                          results[(scenario, "gatehouse-nolog")]))
        lines.append(f"- {scenario}: {ratio:.3f} (logging costs {(1 - ratio) * 100:.1f}% of throughput)")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # A SIGTERM must still stop every process started (the finally block in main).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
