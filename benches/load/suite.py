#!/usr/bin/env python3
"""Side-by-side load benchmark: our load_balancer example vs nginx vs haproxy.

Run through ../run.sh (which installs the tools and builds the example). Environment:

    DURATION=10   seconds per measured run      ROUNDS=3    rounds (proxies alternate)
    WARMUP=2      seconds of warm-up per run    CONNS=50    wrk connections
    IDLE_CONNS=10000                            WORKLOADS=small,large,newconn,h2,idle
    PROXIES=ours,nginx,haproxy                  OUT=benches/results/latest.json
    OURS_BIN=<our binary>  OURS_BUILD=<how it was built, for the table>
    OURS_PLAIN_BIN=<a second build of ours, measured as "ours-plain" when PROXIES lists it>
    STEAL_MAX=2   steal time (% of the machine's CPU) above which a run is measured again
    STEAL_RETRIES=2   how many times at most

Layout (2 cores): each proxy is one process with one worker thread pinned to core 0; the
origin (nginx, one worker, static files) and the load generator share core 1. For every run
it reads the proxy's utime+stime from /proc/<pid>/stat before and after (all threads), resets
and reads the peak RSS (VmHWM), and parses wrk / h2load output. Figures are the medians over
the rounds; ratios are ours divided by the other proxy (below 1 is better for CPU, latency and
memory, above 1 is better for req/s). Below each table, the same ratios taken round by round
(median, range, and in how many rounds ours was ahead): the proxies of a round run back to
back, so these cancel the drift of a noisy machine's speed over the whole run.

On a virtual machine the hypervisor can take CPU away from both cores mid-run (steal time in
/proc/stat); such a run says more about the neighbours than about the proxy. Each run records
its steal share, a run above STEAL_MAX is measured again (up to STEAL_RETRIES times, keeping
the least disturbed), and the table notes how many stayed disturbed.
"""
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
DURATION = int(os.environ.get("DURATION", "10"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
WARMUP = int(os.environ.get("WARMUP", "2"))
CONNS = int(os.environ.get("CONNS", "50"))
NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
# haproxy refuses to start unless 2 * maxconn + 15 fds fit in its limit
HAPROXY_MAXCONN = max(1000, (NOFILE - 15) // 2)
IDLE_CONNS = int(os.environ.get("IDLE_CONNS", str(min(10000, (HAPROXY_MAXCONN - 60) // 100 * 100))))
# the longest wait, from the last idle connection set up, for the RSS to settle (settled_rss)
IDLE_SETTLE_MAX = float(os.environ.get("IDLE_SETTLE_MAX", "6"))
WORKLOADS = os.environ.get("WORKLOADS", "small,large,newconn,h2,idle").split(",")
PROXIES = os.environ.get("PROXIES", "ours,nginx,haproxy").split(",")
OUT = os.environ.get("OUT", os.path.join(ROOT, "benches", "results", "latest.json"))
PLAIN_BIN = os.environ.get("OURS_PLAIN_BIN",
                           os.path.join(ROOT, "target", "release", "examples", "load_balancer"))
BIN = os.environ.get("OURS_BIN", PLAIN_BIN)
BUILD = os.environ.get("OURS_BUILD", "release")
TICK = os.sysconf("SC_CLK_TCK")
STEAL_MAX = float(os.environ.get("STEAL_MAX", "2"))
STEAL_RETRIES = int(os.environ.get("STEAL_RETRIES", "2"))

DESCRIPTIONS = {
    "small": f"1 KiB GET, HTTP/1.1 keep-alive, {CONNS} connections (wrk)",
    "large": f"64 KiB GET, HTTP/1.1 keep-alive, {CONNS} connections (wrk)",
    "newconn": f"1 KiB GET, new connection per request, {CONNS} concurrent (wrk, Connection: close)",
    "h2": "1 KiB GET over h2c, 10 connections x 10 streams (h2load)",
    "idle": f"{IDLE_CONNS} idle keep-alive connections (memory per connection)",
}
PATHS = {"small": "/1k", "large": "/64k", "newconn": "/1k", "h2": "/1k", "idle": "/1k"}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def render(src, dst, values):
    with open(os.path.join(HERE, src)) as f:
        text = f.read()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    with open(dst, "w") as f:
        f.write(text)


def cpu_us(pid):
    """(user, system) CPU time of the process, all threads, in microseconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (3rd field of the file); utime/stime are the 14th/15th
    return int(fields[11]) * 1e6 / TICK, int(fields[12]) * 1e6 / TICK


def sleeps(pid):
    """Voluntary context switches of all the process's threads: how often it went to sleep
    waiting for an event (each one is a wake-up some other process or an interrupt pays for)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
        except FileNotFoundError:  # a thread that ended meanwhile
            pass
    return total


def cpu_ticks():
    """(all ticks, steal ticks) of the whole machine, from the first line of /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    # user nice system idle iowait irq softirq steal (guest time is already inside user)
    return sum(fields), fields[7]


def steal_pct(before, after):
    total = after[0] - before[0]
    return 100.0 * (after[1] - before[1]) / total if total > 0 else 0.0


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def reset_peak_rss(pid):
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def ms(value):
    for suffix, factor in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def parse_wrk(out):
    res = {"requests": 0, "rps": 0.0, "p50_ms": None, "p99_ms": None, "errors": 0, "non2xx": 0}
    for line in out.splitlines():
        parts = line.split()
        if "requests in" in line:
            res["requests"] = int(parts[0])
        elif line.startswith("Requests/sec:"):
            res["rps"] = float(parts[1])
        elif parts[:1] == ["50%"]:
            res["p50_ms"] = ms(parts[1])
        elif parts[:1] == ["99%"]:
            res["p99_ms"] = ms(parts[1])
        elif line.strip().startswith("Socket errors:"):
            res["errors"] = sum(int(p.strip(",")) for p in parts if p.strip(",").isdigit())
        elif line.strip().startswith("Non-2xx"):
            res["non2xx"] = int(parts[-1])
    return res


def parse_h2load(out):
    res = {"requests": 0, "rps": 0.0, "p50_ms": None, "p99_ms": None, "mean_ms": None,
           "errors": 0, "non2xx": 0}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("finished in"):
            res["rps"] = float(parts[3])
        elif line.startswith("requests:"):
            res["requests"] = int(parts[7])  # "N succeeded"
            res["errors"] = int(parts[9]) + int(parts[11])
        elif line.startswith("status codes:"):
            res["non2xx"] = sum(int(parts[i]) for i in (4, 6, 8))
        elif line.startswith("time for request:"):
            res["mean_ms"] = ms(parts[5])
    return res


def taskset(core, argv):
    return ["taskset", "-c", str(core)] + argv


def load_cmd(workload, port, seconds, latency=True):
    url = f"http://127.0.0.1:{port}{PATHS[workload]}"
    if workload == "h2":
        return taskset(1, ["h2load", "-c10", "-m10", "-t1", "-D", str(seconds), url])
    argv = ["wrk", "-t1", f"-c{CONNS}", f"-d{seconds}s"]
    if latency:
        argv.append("--latency")
    if workload == "newconn":
        argv += ["-H", "Connection: close"]
    return taskset(1, argv + [url])


class Proxy:
    def __init__(self, name, proc, h1_port, h2_port):
        self.name, self.proc, self.h1_port, self.h2_port = name, proc, h1_port, h2_port

    @property
    def pid(self):
        return self.proc.pid

    def port(self, workload):
        return self.h2_port if workload == "h2" else self.h1_port


def reuse_counters(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
        text = r.read().decode()
    values = dict(line.split() for line in text.splitlines() if line.strip())
    return int(values["reused"]), int(values["new"])


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])

    def version(argv):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "unknown"

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1048576, 1),
        "kernel": platform.release(),
        "nginx": version(["nginx", "-v"]),
        "haproxy": version(["haproxy", "-v"]),
        "wrk": version(["wrk", "-v"]),
        "h2load": version(["h2load", "--version"]),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main():
    work = tempfile.mkdtemp(prefix="pingora-bench.")
    os.makedirs(os.path.join(work, "www"))
    os.makedirs(os.path.join(work, "tmp"))
    with open(os.path.join(work, "www", "1k"), "wb") as f:
        f.write(b"a" * 1024)
    with open(os.path.join(work, "www", "64k"), "wb") as f:
        f.write(b"b" * 65536)
    # nginx workers run as an unprivileged user when started by root
    for d in (work, os.path.join(work, "www")):
        os.chmod(d, 0o755)
    for name in ("1k", "64k"):
        os.chmod(os.path.join(work, "www", name), 0o644)
    os.chmod(os.path.join(work, "tmp"), 0o1777)

    ports = {k: free_port() for k in ("ORIGIN", "OURS", "OURS_H2", "STATS", "OURS_PLAIN",
                                       "OURS_PLAIN_H2", "STATS_PLAIN", "NGINX", "NGINX_H2",
                                       "HAPROXY", "HAPROXY_H2")}
    values = {"DIR": work, "ORIGIN_PORT": ports["ORIGIN"], "NGINX_PORT": ports["NGINX"],
              "NGINX_H2_PORT": ports["NGINX_H2"], "HAPROXY_PORT": ports["HAPROXY"],
              "HAPROXY_H2_PORT": ports["HAPROXY_H2"], "HAPROXY_MAXCONN": HAPROXY_MAXCONN}
    render("origin.nginx.conf.in", os.path.join(work, "origin.conf"), values)
    render("proxy.nginx.conf.in", os.path.join(work, "proxy.conf"), values)
    render("proxy.haproxy.cfg.in", os.path.join(work, "haproxy.cfg"), values)

    procs = []
    devnull = subprocess.DEVNULL

    def spawn(argv, env=None, log_name=None):
        out = open(os.path.join(work, log_name), "w") if log_name else devnull
        p = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        procs.append(p)
        return p

    proxies = {}
    try:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        spawn(taskset(1, [nginx, "-e", os.path.join(work, "origin.error.log"), "-p", work, "-c",
                          os.path.join(work, "origin.conf")]))
        wait_port(ports["ORIGIN"])
        for name, binary, key in (("ours", BIN, "OURS"), ("ours-plain", PLAIN_BIN, "OURS_PLAIN")):
            if name not in PROXIES:
                continue
            stats = "STATS" if name == "ours" else "STATS_PLAIN"
            env = dict(os.environ, UPSTREAMS=f"127.0.0.1:{ports['ORIGIN']}",
                       LISTEN=f"127.0.0.1:{ports[key]}",
                       H2C_LISTEN=f"127.0.0.1:{ports[key + '_H2']}",
                       STATS_LISTEN=f"127.0.0.1:{ports[stats]}", UPSTREAM_HOST="localhost")
            env.pop("RUST_LOG", None)
            # a pid file and upgrade socket of its own, so two instances never share them
            with open(os.path.join(HERE, "conf.yaml")) as f:
                conf = f.read().replace("/tmp/pingora-bench", os.path.join(work, name))
            conf_path = os.path.join(work, f"{name}.yaml")
            with open(conf_path, "w") as f:
                f.write(conf)
            p = spawn(taskset(0, [binary, "-c", conf_path]), env, f"{name}.log")
            proxies[name] = Proxy(name, p, ports[key], ports[key + "_H2"])
        if "nginx" in PROXIES:
            p = spawn(taskset(0, [nginx, "-e", os.path.join(work, "proxy.error.log"), "-p", work,
                                  "-c", os.path.join(work, "proxy.conf")]))
            proxies["nginx"] = Proxy("nginx", p, ports["NGINX"], ports["NGINX_H2"])
        if "haproxy" in PROXIES:
            haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
            p = spawn(taskset(0, [haproxy, "-db", "-f", os.path.join(work, "haproxy.cfg")]),
                      log_name="haproxy.log")
            proxies["haproxy"] = Proxy("haproxy", p, ports["HAPROXY"], ports["HAPROXY_H2"])
        for px in proxies.values():
            try:
                wait_port(px.h1_port)
            except RuntimeError:
                logs = [n for n in os.listdir(work) if n.endswith(".log")]
                for name in logs:
                    with open(os.path.join(work, name)) as f:
                        log(f"--- {name}\n{f.read()[-2000:]}")
                raise RuntimeError(f"{px.name} did not start listening on {px.h1_port}")
            with urllib.request.urlopen(f"http://127.0.0.1:{px.h1_port}/1k", timeout=5) as r:
                if r.status != 200 or len(r.read()) != 1024:
                    raise RuntimeError(f"{px.name} does not proxy correctly")
        return run(work, proxies, ports)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


def h2_works(port):
    p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                        "--http2-prior-knowledge", "--max-time", "5",
                        f"http://127.0.0.1:{port}/1k"], capture_output=True, text=True)
    return p.stdout.strip() == "200 2"


def measure(px, workload, ports):
    """One measured run; again (up to STEAL_RETRIES times) while the hypervisor steals CPU,
    keeping the least disturbed."""
    best = None
    for attempt in range(STEAL_RETRIES + 1):
        res = measure_once(px, workload, ports)
        res["retries"] = attempt
        if best is None or res["steal_pct"] < best["steal_pct"]:
            best = res
        if res["steal_pct"] <= STEAL_MAX or attempt == STEAL_RETRIES:
            break
        log(f"  {px.name} {workload}: {res['steal_pct']:.1f}% steal, measuring again")
    return best


def measure_once(px, workload, ports):
    subprocess.run(load_cmd(workload, px.port(workload), WARMUP, latency=False),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    counters = reuse_counters(ports["STATS"]) if px.name == "ours" else None
    reset_peak_rss(px.pid)
    before, ticks, slept = cpu_us(px.pid), cpu_ticks(), sleeps(px.pid)
    p = subprocess.run(load_cmd(workload, px.port(workload), DURATION), capture_output=True,
                       text=True, check=False)
    after, steal = cpu_us(px.pid), steal_pct(ticks, cpu_ticks())
    slept = sleeps(px.pid) - slept
    res = parse_h2load(p.stdout) if workload == "h2" else parse_wrk(p.stdout)
    n = res["requests"]
    user, system = after[0] - before[0], after[1] - before[1]
    res["cpu_us_per_req"] = (user + system) / n if n else None
    res["user_us_per_req"] = user / n if n else None
    res["sys_us_per_req"] = system / n if n else None
    res["sleeps_per_kreq"] = 1000 * slept / n if n else None
    res["peak_rss_mib"] = status_kb(px.pid, "VmHWM") / 1024
    if counters is not None:
        reused, new = reuse_counters(ports["STATS"])
        res["upstream_reused"] = reused - counters[0]
        res["upstream_new"] = new - counters[1]
    res["steal_pct"] = steal
    return res


def measure_idle(px):
    base = status_kb(px.pid, "VmRSS")
    client = subprocess.Popen(
        taskset(1, [sys.executable, os.path.join(HERE, "idle_conns.py"), str(px.h1_port),
                    str(IDLE_CONNS), PATHS["idle"]]),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = client.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"idle client failed against {px.name}: {line!r}")
        ready = time.monotonic()
        held = settled_rss(px.pid)
        settled_after = time.monotonic() - ready
    finally:
        client.stdin.close()
        client.wait(timeout=60)
    time.sleep(1.0)
    return {"connections": IDLE_CONNS, "rss_before_mib": base / 1024,
            "rss_held_mib": held / 1024, "held_after_s": settled_after,
            "bytes_per_conn": (held - base) * 1024 / IDLE_CONNS}


def settled_rss(pid):
    """The RSS (KiB) of a proxy holding idle connections, once it has settled: the figure is
    memory per idle connection, not the memory of the requests that opened them, which a proxy
    may give back a moment later (ours parks a connection 0.5 s after its last request and
    returns freed memory to the system soon after). Read every 0.25 s from 1 s after the last
    connection was set up, until five readings in a row (1 s) differ by at most 1% of the RSS,
    for at most IDLE_SETTLE_MAX seconds; the same rule for every proxy."""
    time.sleep(1.0)
    readings = [status_kb(pid, "VmRSS")]
    deadline = time.monotonic() + IDLE_SETTLE_MAX - 1.0
    while time.monotonic() < deadline:
        window = readings[-5:]
        if len(window) == 5 and max(window) - min(window) <= 0.01 * window[-1]:
            break
        time.sleep(0.25)
        readings.append(status_kb(pid, "VmRSS"))
    return readings[-1]


def steal_note(steal):
    """The note for a run in which some measurements stayed disturbed by steal time."""
    return (f"{steal['disturbed']} of {steal['measured']} measured runs kept more than "
            f"{STEAL_MAX:g}% steal time after {STEAL_RETRIES} retries (worst "
            f"{steal['worst_pct']:.1f}%): the hypervisor took CPU from this machine, so their "
            "wall-clock figures are unreliable (column 'steal%' is the worst round of each row)")


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def run(work, proxies, ports):
    notes = []
    if IDLE_CONNS < 10000 and "idle" in WORKLOADS:
        notes.append(f"idle workload held {IDLE_CONNS} connections, not 10000: the open-file "
                     f"limit here is {NOFILE} and haproxy needs two fds per connection")
    workloads = list(WORKLOADS)
    if "h2" in workloads:
        broken = [n for n, px in proxies.items() if not h2_works(px.h2_port)]
        if broken:
            workloads.remove("h2")
            notes.append(f"h2 workload skipped: no working h2c listener in {', '.join(broken)}")
    runs = {w: {n: [] for n in proxies} for w in workloads}
    names = list(proxies)
    # workload by workload (idle last: allocators keep the memory it grew, which would inflate
    # the peak RSS of the runs after it), rounds within, the proxy order rotating every round
    # and each workload starting the rotation one proxy further (the first measurement of a
    # suite meets a cold origin: not always the same proxy's)
    ordered = [w for w in workloads if w != "idle"] + [w for w in workloads if w == "idle"]
    for wi, w in enumerate(ordered):
        for rnd in range(ROUNDS):
            first = (rnd + wi) % len(names)
            order = names[first:] + names[:first]
            for name in order:
                px = proxies[name]
                res = measure_idle(px) if w == "idle" else measure(px, w, ports)
                runs[w][name].append(res)
                log(f"round {rnd + 1} {w:8} {name:8} " + ", ".join(
                    f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in res.items()))
    medians = {}
    for w, by_proxy in runs.items():
        medians[w] = {}
        for name, rs in by_proxy.items():
            keys = rs[0].keys() if rs else []
            medians[w][name] = {k: median([r[k] for r in rs]) for k in keys}
            if rs and "steal_pct" in rs[0]:
                medians[w][name]["steal_pct_max"] = max(r["steal_pct"] for r in rs)
            if w == "idle" and rs:
                # later rounds reuse memory the allocator kept from the first: the largest
                # growth is the honest cost of holding the connections
                medians[w][name]["bytes_per_conn"] = max(r["bytes_per_conn"] for r in rs)
                medians[w][name]["held_after_s"] = max(r["held_after_s"] for r in rs)
    steals = [r["steal_pct"] for by_proxy in runs.values() for rs in by_proxy.values()
              for r in rs if "steal_pct" in r]
    disturbed = [v for v in steals if v > STEAL_MAX]
    steal = {"measured": len(steals), "disturbed": len(disturbed),
             "worst_pct": max(steals, default=None)}
    if disturbed:
        notes.append(steal_note(steal))
    ratios = {}
    for w, by_proxy in medians.items():
        if "ours" not in by_proxy:
            continue
        ratios[w] = {}
        for other in by_proxy:
            if other == "ours":
                continue
            ratios[w][f"ours/{other}"] = {
                k: (by_proxy["ours"][k] / by_proxy[other][k])
                for k in by_proxy["ours"]
                if isinstance(by_proxy["ours"].get(k), (int, float))
                and isinstance(by_proxy[other].get(k), (int, float)) and by_proxy[other][k]
                and k in ("rps", "p50_ms", "p99_ms", "mean_ms", "cpu_us_per_req",
                          "user_us_per_req", "sys_us_per_req", "sleeps_per_kreq",
                          "peak_rss_mib", "bytes_per_conn")
            }
    paired = paired_ratios(runs)
    reuse = None
    if "small" in runs and "ours" in runs["small"]:
        reused = sum(r.get("upstream_reused", 0) for r in runs["small"]["ours"])
        new = sum(r.get("upstream_new", 0) for r in runs["small"]["ours"])
        reuse = {"reused": reused, "new": new,
                 "share": reused / (reused + new) if reused + new else None}
    report = {
        "targets": check_targets(medians),
        "machine": machine(),
        "config": {"duration_s": DURATION, "rounds": ROUNDS, "warmup_s": WARMUP, "conns": CONNS,
                   "ours_build": BUILD, "steal_max_pct": STEAL_MAX,
                   "steal_retries": STEAL_RETRIES,
                   "idle_conns": IDLE_CONNS, "layout": "proxy on core 0; origin + load "
                   "generator on core 1; one worker thread per proxy"},
        "workloads": {w: DESCRIPTIONS[w] for w in workloads},
        "medians": medians,
        "ratios": ratios,
        "paired_ratios": paired,
        "upstream_reuse_small_get": reuse,
        "steal": steal,
        "runs": runs,
        "notes": notes,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(report, f, indent=2)
    print_table(report)
    print(f"\nJSON: {OUT}")
    return 0


PAIRED_KEYS = {"rps": True, "cpu_us_per_req": False, "p99_ms": False}


def paired_ratios(runs):
    """Ours divided by each other proxy round by round: the proxies of one round ran minutes
    apart at most, while the machine's speed drifts over a suite run, so the ratio within a
    round cancels most of the drift that the ratio of the medians keeps. For each key: the
    median and range of the per-round ratios, and in how many rounds ours was ahead (`True` in
    PAIRED_KEYS: higher is better)."""
    out = {}
    for w, by_proxy in runs.items():
        if w == "idle" or "ours" not in by_proxy:
            continue
        out[w] = {}
        for other, theirs in by_proxy.items():
            if other == "ours":
                continue
            figures = {}
            for key, higher_better in PAIRED_KEYS.items():
                rs = [a[key] / b[key] for a, b in zip(by_proxy["ours"], theirs)
                      if a.get(key) is not None and b.get(key)]
                if rs:
                    ahead = sum(1 for r in rs if (r > 1 if higher_better else r < 1))
                    figures[key] = {"median": statistics.median(rs), "min": min(rs),
                                    "max": max(rs), "ahead": ahead, "rounds": len(rs),
                                    "values": rs}
            out[w][f"ours/{other}"] = figures
    return out


def check_targets(medians):
    """Issue 6's targets, each as (description, met) from the medians of this run."""
    def get(w, proxy, key):
        return medians.get(w, {}).get(proxy, {}).get(key)

    checks = []

    def check(desc, w, key, others, ok):
        ours = get(w, "ours", key)
        vals = [get(w, o, key) for o in others]
        if ours is None or any(v is None for v in vals):
            return
        checks.append({"target": desc, "met": all(ok(ours, v) for v in vals)})

    for w in ("small", "h2"):
        check(f"{w}: CPU/request below nginx and haproxy", w, "cpu_us_per_req",
              ["nginx", "haproxy"], lambda a, b: a < b)
        check(f"{w}: req/s above nginx and haproxy", w, "rps", ["nginx", "haproxy"],
              lambda a, b: a > b)
    check("small: p99 at most nginx's", "small", "p99_ms", ["nginx"], lambda a, b: a <= b)
    check("large: CPU/request at most 1.1x nginx's", "large", "cpu_us_per_req", ["nginx"],
          lambda a, b: a <= 1.1 * b)
    check("large: p99 at most nginx's", "large", "p99_ms", ["nginx"], lambda a, b: a <= b)
    check("idle: memory per connection at most nginx's", "idle", "bytes_per_conn", ["nginx"],
          lambda a, b: a <= b)
    return checks


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def print_table(report):
    m = report["machine"]
    print(f"\n{m['cpu']}, {m['cores']} cores, kernel {m['kernel']}; {report['config']['layout']}")
    print(f"ours: {BUILD}; medians of {ROUNDS} rounds, {DURATION} s per run\n")
    for w, by_proxy in report["medians"].items():
        print(f"== {w}: {report['workloads'][w]}"
              + (" (largest growth over the rounds)" if w == "idle" else ""))
        if w == "idle":
            print(f"{'proxy':14} {'RSS before MiB':>15} {'RSS held MiB':>13} {'bytes/conn':>11} "
                  f"{'settled s':>10}")
            for name, r in by_proxy.items():
                print(f"{name:14} {fmt(r['rss_before_mib'], '15.1f')} "
                      f"{fmt(r['rss_held_mib'], '13.1f')} {fmt(r['bytes_per_conn'], '11.0f')} "
                      f"{fmt(r.get('held_after_s'), '10.1f')}")
            for label, rt in report["ratios"].get(w, {}).items():
                print(f"{label:14} {'':15} {'':13} {fmt(rt.get('bytes_per_conn'), '11.2f')}")
            print()
            continue
        lat = "mean ms" if w == "h2" else "p50 ms"
        lat_key = "mean_ms" if w == "h2" else "p50_ms"
        print(f"{'proxy':14} {'req/s':>10} {lat:>8} {'p99 ms':>8} {'CPU us/req':>11} "
              f"{'user':>6} {'sys':>6} {'sleeps/1k':>9} {'peak RSS MiB':>13} {'errors':>7} "
              f"{'steal%':>7}")
        for name, r in by_proxy.items():
            print(f"{name:14} {fmt(r['rps'], '10.0f')} {fmt(r[lat_key], '8.3f')} "
                  f"{fmt(r['p99_ms'], '8.3f')} {fmt(r['cpu_us_per_req'], '11.2f')} "
                  f"{fmt(r.get('user_us_per_req'), '6.2f')} {fmt(r.get('sys_us_per_req'), '6.2f')} "
                  f"{fmt(r.get('sleeps_per_kreq'), '9.1f')} {fmt(r['peak_rss_mib'], '13.1f')} "
                  f"{fmt(r['errors'] + r['non2xx'], '7.0f')} {fmt(r.get('steal_pct_max'), '7.1f')}")
        for label, rt in report["ratios"].get(w, {}).items():
            print(f"{label:14} {fmt(rt.get('rps'), '10.2f')} {fmt(rt.get(lat_key), '8.2f')} "
                  f"{fmt(rt.get('p99_ms'), '8.2f')} {fmt(rt.get('cpu_us_per_req'), '11.2f')} "
                  f"{fmt(rt.get('user_us_per_req'), '6.2f')} {fmt(rt.get('sys_us_per_req'), '6.2f')} "
                  f"{fmt(rt.get('sleeps_per_kreq'), '9.2f')} {fmt(rt.get('peak_rss_mib'), '13.2f')}")
        print_paired(report["paired_ratios"].get(w, {}))
        print()
    reuse = report["upstream_reuse_small_get"]
    if reuse:
        share = "-" if reuse["share"] is None else f"{100 * reuse['share']:.3f}%"
        print(f"upstream reuse (ours, small GET): {reuse['reused']} reused, {reuse['new']} new, "
              f"share {share}")
    for note in report["notes"]:
        print(f"note: {note}")
    if report["targets"]:
        print("\ntargets (issue 6):")
        for t in report["targets"]:
            print(f"  {'met    ' if t['met'] else 'NOT MET'}  {t['target']}")


def print_paired(by_other):
    """One line per other proxy: the per-round ratios (see paired_ratios)."""
    names = {"rps": "req/s", "cpu_us_per_req": "CPU", "p99_ms": "p99"}
    for label, figures in by_other.items():
        parts = [f"{names[k]} {f['median']:.2f} ({f['min']:.2f}-{f['max']:.2f}, ahead "
                 f"{f['ahead']}/{f['rounds']})" for k, f in figures.items()]
        if parts:
            print(f"{label + ' by round':22} " + "; ".join(parts))


if __name__ == "__main__":
    sys.exit(main())
