#!/usr/bin/python3
"""roaming.py - the multi-POP part of `make bench`: a user's IMAP/POP3
workload at the home POP and roaming through another POP, on loopback.

Starts two popnode processes, pop1 (the users' home) and pop2 (the front),
joined by the internal link (HTTP/2 over mutual TLS, docs/link.md) with
certificates from deploy/link-certs in a temporary directory.  Users are
created at pop1 with `--home pop1`; the script waits until directory sync
has brought them to pop2.  The mailboxes are filled at pop1 over LMTP (not
timed).  Then each workload runs with tests/bench/loadgen.c, same user,
same mailbox, once against pop1's port (direct) and once against pop2's
port (roaming: pop2 authenticates the login and tunnels the session to
pop1 over the link):

  1. POP3 RETR MB/s on a mailbox of 200 x 100 KB (loadgen pop3);
  2. IMAP FETCH BODY[] MB/s on the same mailbox (loadgen imap-body);
  3. IMAP SELECT + FETCH 1:* (UID FLAGS ENVELOPE) runs/s on a
     10,000-message mailbox of 2-4 KB messages (loadgen imap-fetch);
  4. per-command latency: one connection, NOOP back to back, p50/p99
     (loadgen imap-noop);
  5. the link's RTT (HTTP/2 PING) from pop2's /status ("link.peers");
  6. 1,000 concurrent roaming IMAP sessions (logged in, INBOX selected,
     idle) over the one link, spread over 50 users: how many came up, how
     many still answered NOOP, and the memory each costs at pop2 (front)
     and pop1 (home).

Every roaming cell is checked to have really gone through the link (pop2's
roaming counters and pop1's tunnel counters in /status moved) and every
direct cell not to have.  Prints a table (workload, direct, roaming,
roaming/direct, goal, met?) and writes it as JSON to
build/bench/roaming.json.  A missed goal does not fail the run; a cell
that could not be measured does (exit status 1).

    /usr/bin/python3 tests/bench/roaming.py --popnode bin/popnode --popctl bin/popctl
        [--seconds 4] [--warmup 1] [--rounds 3] [--imap-messages 10000]
        [--sessions 1000] [--roam-users 50] [--json PATH] [--keep]
"""

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True	# keep tests/bench free of __pycache__
sys.path.insert(0, HERE)
import bench  # noqa: E402  (tests/bench/bench.py: loadgen, LMTP fill, corpus, memory)
import dovecot  # noqa: E402  (free_port)

LINK_CERTS = os.path.join(ROOT, "deploy", "link-certs")
HOME, FRONT = "pop1", "pop2"
POP_USER = bench.POP_USER		# the 200 x 100 KB mailbox
IMAP_USER = bench.IMAP_USER		# the 10,000-message mailbox
NOOP_USER = "benchnoop"		# logs in and sends NOOPs
ROAM_PREFIX = "benchroam"		# the users of the concurrent sessions
PASSWORD = bench.PASSWORD
PASSWORD_HASH = bench.PASSWORD_HASH
THROUGHPUT_GOAL = 0.90		# roaming / direct
LATENCY_GOAL_MS = 0.3		# roaming - direct, per command
RTT_SAMPLES = 5


def log(msg):
    sys.stderr.write("roaming: %s\n" % msg)
    sys.stderr.flush()


# ---- a POP and a two-POP cluster -----------------------------------------

class Pop:
    """One popnode process with its config, store, log and control socket
    under dir; ports were chosen by the cluster."""

    def __init__(self, node_id, root, binary, popctl, ports, certs, max_sessions):
        self.id = node_id
        self.dir = os.path.join(root, node_id)
        os.makedirs(self.dir)
        self.binary, self.popctl_bin = binary, popctl
        self.sock = os.path.join(self.dir, "control.sock")
        self.lmtp_port, self.pop3_port, self.imap_port, self.http_port, self.link_port = ports
        self.certs = certs
        self.max_sessions = max_sessions
        self.peers = []			# (id, link port)
        self.proc = None
        self.logf = None
        self.log_path = os.path.join(self.dir, "popnode.log")
        self.log_mark = 0

    def write_config(self):
        lines = [
            "# written by tests/bench/roaming.py",
            "node_id %s" % self.id,
            "data_dir %s" % os.path.join(self.dir, "data"),
            "log stderr",
            "log_level warn",
            "control_socket %s" % self.sock,
            "domain *",
            "listen lmtp 127.0.0.1:%d" % self.lmtp_port,
            "listen pop3 127.0.0.1:%d no-starttls plaintext-auth" % self.pop3_port,
            "listen imap 127.0.0.1:%d no-starttls plaintext-auth" % self.imap_port,
            "listen http 127.0.0.1:%d" % self.http_port,
            "max_sessions %d" % self.max_sessions,
            "max_sessions_per_ip %d" % self.max_sessions,
            "max_message_size 10M",
            "default_quota 0",
            "map_size 4G",
            "link_listen 127.0.0.1:%d" % self.link_port,
            "link_ca %s" % os.path.join(self.certs, "ca.pem"),
            "link_cert %s" % os.path.join(self.certs, self.id + ".pem"),
            "link_key %s" % os.path.join(self.certs, self.id + ".key"),
        ]
        lines += ["peer %s 127.0.0.1:%d" % p for p in self.peers]
        conf = os.path.join(self.dir, "popnode.conf")
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        return conf

    def start(self):
        conf = self.write_config()
        self.logf = open(self.log_path, "w")
        self.proc = subprocess.Popen([self.binary, "-c", conf], stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_ready(self, deadline):
        if not bench.wait_port(self.imap_port, deadline, self.proc):
            raise RuntimeError("%s did not listen:\n%s" % (self.id, self.log_tail()))
        while True:
            r = self.popctl(["status"])
            if r.returncode == 0:
                return
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("%s: popctl status failed: %s\n%s"
                                   % (self.id, r.stdout.strip(), self.log_tail()))
            time.sleep(0.1)

    def popctl(self, args, stdin=None):
        return subprocess.run([self.popctl_bin, "-s", self.sock] + args, input=stdin,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=30)

    def status(self):
        """/status as a dict."""
        url = "http://127.0.0.1:%d/status" % self.http_port
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read().decode("utf-8"))

    def counters(self):
        """The roaming counters of /status: {"front": {...}, "home": {...}}."""
        st = self.status()
        if "roaming" not in st:
            raise RuntimeError("%s: /status has no \"roaming\" object" % self.id)
        return st["roaming"]

    def link_peer(self, peer_id):
        """This POP's view of peer_id: /status link.peers, else popctl
        peers --json; None if neither has it."""
        try:
            st = self.status()
            peers = (st.get("link") or {}).get("peers")
            if isinstance(peers, list):
                for p in peers:
                    if p.get("id") == peer_id:
                        return p
        except (OSError, ValueError):
            pass
        r = self.popctl(["peers", "--json"])
        if r.returncode == 0:
            try:
                doc = json.loads(r.stdout)
            except ValueError:
                return None
            peers = doc if isinstance(doc, list) else (
                doc.get("peers") or (doc.get("link") or {}).get("peers") or [])
            for p in peers:
                if isinstance(p, dict) and p.get("id") == peer_id:
                    return p
        return None

    def user_names(self):
        r = self.popctl(["user", "list"])
        if r.returncode != 0:
            raise RuntimeError("%s: popctl user list failed: %s" % (self.id, r.stdout.strip()))
        return {l.split()[0] for l in r.stdout.splitlines() if l.strip()}

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def mark_log(self):
        """Start log_problems here (the dial that races the peer's start
        is logged before, as a warning, and is not a problem)."""
        try:
            self.log_mark = os.path.getsize(self.log_path)
        except OSError:
            self.log_mark = 0

    def log_problems(self):
        """Log lines at level warn or error since mark_log."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_mark)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return []
        return [l for l in text.splitlines() if " level=warn " in l or " level=error " in l]

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(35)
            except subprocess.TimeoutExpired:
                log("%s did not exit on SIGTERM; killing it" % self.id)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if self.proc.returncode not in (0, -signal.SIGKILL, None):
            log("%s exited with status %s" % (self.id, self.proc.returncode))
        self.proc = None
        if self.logf is not None:
            self.logf.close()
            self.logf = None


class Cluster:
    """pop1 and pop2, each the other's peer, in one temporary directory."""

    def __init__(self, binary, popctl, parent_dir, max_sessions):
        for p in (binary, popctl):
            if not os.access(p, os.X_OK):
                raise RuntimeError("%s not found or not executable (make all)" % p)
        self.tmp = tempfile.mkdtemp(prefix="bench-roaming-", dir=parent_dir)
        self.pops = {}
        self.binary = os.path.abspath(binary)
        self.popctl = os.path.abspath(popctl)
        self.max_sessions = max_sessions

    def start(self, timeout=30.0):
        certs = os.path.join(self.tmp, "certs")
        for args in (["ca", certs], ["node", certs, HOME], ["node", certs, FRONT]):
            r = subprocess.run(["sh", LINK_CERTS] + args, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
            if r.returncode != 0:
                raise RuntimeError("deploy/link-certs %s failed: %s"
                                   % (" ".join(args[:1] + args[2:]), r.stdout.strip()))
        ports = set()
        while len(ports) < 10:
            ports.add(dovecot.free_port())
        ports = sorted(ports)
        for k, pid in enumerate((HOME, FRONT)):
            self.pops[pid] = Pop(pid, self.tmp, self.binary, self.popctl,
                                 ports[5 * k:5 * k + 5], certs, self.max_sessions)
        self.home, self.front = self.pops[HOME], self.pops[FRONT]
        self.home.peers = [(FRONT, self.front.link_port)]
        self.front.peers = [(HOME, self.home.link_port)]
        deadline = time.monotonic() + timeout
        self.started = time.monotonic()
        for p in (self.home, self.front):
            p.start()
        for p in (self.home, self.front):
            p.wait_ready(deadline)

    def wait_link(self, timeout=20.0):
        """Until each POP sees the other up with a measured RTT; seconds
        since the processes were started."""
        t0 = self.started
        while True:
            views = [(p, p.link_peer(q.id)) for p, q in ((self.front, self.home),
                                                         (self.home, self.front))]
            if all(v is not None and v.get("state") == "up" and v.get("rtt_ms") is not None
                   for _, v in views):
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise RuntimeError("the link did not come up within %.0f s: %s" % (
                    timeout, "; ".join("%s sees %s" % (p.id, v) for p, v in views)))
            for p in (self.home, self.front):
                if not p.alive():
                    raise RuntimeError("%s exited:\n%s" % (p.id, p.log_tail()))
            time.sleep(0.1)

    def add_users(self, names, timeout=30.0):
        """Create names at pop1 (home pop1); seconds until pop2 had them all."""
        for name in names:
            r = self.home.popctl(["user", "add", name, "--home", HOME, "--hash-stdin"],
                                 stdin=PASSWORD_HASH + "\n")
            if r.returncode != 0:
                raise RuntimeError("popctl user add %s failed: %s" % (name, r.stdout.strip()))
        t0 = time.monotonic()
        want = set(names)
        while True:
            missing = want - self.front.user_names()
            if not missing:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise RuntimeError("directory sync: %d of %d users still missing at %s after "
                                   "%.0f s (e.g. %s)" % (len(missing), len(want), FRONT,
                                                         timeout, sorted(missing)[0]))
            time.sleep(0.05)

    def cleanup(self, keep=False):
        for p in self.pops.values():
            p.stop()
        if keep:
            log("kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# ---- measurements --------------------------------------------------------

class Results:
    def __init__(self):
        self.vals = {}		# key -> {"direct": v, "roaming": v}
        self.raw = {}
        self.errors = []
        self.notes = []

    def set(self, key, where, v):
        self.vals.setdefault(key, {})[where] = v

    def get(self, key, where):
        return self.vals.get(key, {}).get(where)


def tunnel_delta(cluster, before):
    """How many roaming sessions pop2 opened and pop1 served since before."""
    now = {p.id: p.counters() for p in (cluster.home, cluster.front)}
    return (now[FRONT]["front"]["total"] - before[FRONT]["front"]["total"],
            now[HOME]["home"]["served_total"] - before[HOME]["home"]["served_total"],
            now[FRONT]["front"]["failed"] - before[FRONT]["front"]["failed"])


def cpu_seconds(pid):
    """User + system CPU seconds of a process (all its threads)."""
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    fields = stat[stat.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


def cpu_snapshot(cluster):
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {HOME: cpu_seconds(cluster.home.pid), FRONT: cpu_seconds(cluster.front.pid),
            "loadgen": ru.ru_utime + ru.ru_stime, "wall": time.monotonic()}


def cpu_delta(before, after):
    """CPU seconds each used between two snapshots, and the wall time."""
    return {k: round(after[k] - before[k], 3) for k in before}


def counters(cluster):
    return {p.id: p.counters() for p in (cluster.home, cluster.front)}


def measure_pair(cluster, loadgen, args, res, key, mode, user, value_of, describe,
                 extra=()):
    """Run one loadgen mode direct (pop1) and roaming (pop2), alternating
    the order over the rounds; keep the median round of each."""
    limit = args.seconds + args.warmup + 180
    sides = (("direct", cluster.home), ("roaming", cluster.front))
    runs = {"direct": [], "roaming": []}
    failed_sides = set()
    for k in range(args.rounds):
        for where, pop in (sides if k % 2 == 0 else sides[::-1]):
            if where in failed_sides:
                continue
            port = pop.pop3_port if mode == "pop3" else pop.imap_port
            try:
                os.sync()	# no writeback left over from the previous cell
                before = counters(cluster)
                cpu0 = cpu_snapshot(cluster)
                r = bench.run_loadgen(loadgen, [mode, "127.0.0.1", port, user, PASSWORD,
                                                args.seconds, args.warmup] + list(extra),
                                      limit)
                r["cpu_s"] = cpu_delta(cpu0, cpu_snapshot(cluster))
                r["tunnels_opened"], r["tunnels_served"], r["tunnels_failed"] = \
                    tunnel_delta(cluster, before)
            except (RuntimeError, OSError, ValueError, KeyError,
                    subprocess.SubprocessError) as e:
                res.errors.append("%s %s: %s" % (key, where, e))
                log("%s %s: FAILED: %s" % (key, where, e))
                failed_sides.add(where)
                continue
            runs[where].append(r)
    for where, _ in sides:
        if not runs[where]:
            continue
        done = sorted(runs[where], key=lambda x: x["rate"])
        r = dict(done[len(done) // 2])
        if len(done) > 1:
            r["rounds"] = [x["rate"] for x in runs[where]]
        opened = sum(x["tunnels_opened"] for x in done)
        served = sum(x["tunnels_served"] for x in done)
        failed = sum(x["tunnels_failed"] for x in done)
        res.raw.setdefault(key, {})[where] = r
        if where == "direct" and (opened or served):
            res.errors.append("%s direct: %d sessions went through the link" % (key, served))
        if where == "roaming" and (opened == 0 or served != opened or failed):
            res.errors.append("%s roaming: pop2 opened %d tunnels, %d failed, pop1 served %d"
                              % (key, opened, failed, served))
        if r["errors"]:
            res.notes.append("%s %s: %d errors (%d ok), first: %s"
                             % (key, where, r["errors"], r["count"], r["first_error"]))
        for k, v in value_of(r).items():
            res.set(k, where, v)
        c = r["cpu_s"]
        log("%s %s: %s; CPU s over %.1f s: pop1 %.2f, pop2 %.2f, loadgen %.2f"
            % (key, where, describe(r), c["wall"], c[HOME], c[FRONT], c["loadgen"]))


def fill_and_rtt(cluster, loadgen, args, res):
    fill_mailboxes(cluster, args, res)
    # PINGs go every second: the median of a few answers on an idle link.
    samples = []
    for k in range(RTT_SAMPLES):
        if k:
            time.sleep(1.05)
        v = link_rtt(cluster, res, "idle")
        if v is not None and v.get("rtt_ms") is not None:
            samples.append(float(v["rtt_ms"]))
    res.raw["link"]["idle_rtt_samples_ms"] = samples
    if samples:
        samples.sort()
        res.set("link_rtt_ms", "roaming", samples[len(samples) // 2])
        log("link RTT %s->%s on an idle link: %s ms (median %.3f ms; EWMA %s ms)"
            % (FRONT, HOME, ", ".join("%.3f" % x for x in samples), samples[len(samples) // 2],
               res.raw["link"]["idle"]["%s->%s" % (FRONT, HOME)].get("rtt_avg_ms")))
    else:
        res.notes.append("link RTT: n/a (neither /status link.peers nor popctl "
                         "peers --json has it)")


def bench_pop3(cluster, loadgen, args, res):
    measure_pair(cluster, loadgen, args, res, "pop3", "pop3", POP_USER,
                 lambda r: {"pop3_mbps": r["mbps"]},
                 lambda r: "%.1f MB/s (%d messages, %d sessions, %d tunnels, %d errors)"
                 % (r["mbps"], r["count"], r["sessions"], r["tunnels_opened"], r["errors"]))


def bench_imap_body(cluster, loadgen, args, res):
    measure_pair(cluster, loadgen, args, res, "imap_body", "imap-body", POP_USER,
                 lambda r: {"imap_body_mbps": r["mbps"]},
                 lambda r: "%.1f MB/s (%d messages, %d sessions, %d tunnels, %d errors)"
                 % (r["mbps"], r["count"], r["sessions"], r["tunnels_opened"], r["errors"]))


def bench_imap_fetch(cluster, loadgen, args, res):
    measure_pair(cluster, loadgen, args, res, "imap_fetch", "imap-fetch", IMAP_USER,
                 lambda r: {"imap_fetch_rate": r["rate"], "imap_fetch_ms": r["ms_per_run"]},
                 lambda r: "%.2f runs/s, %.1f ms/run of %d messages (p50 %.1f ms, p99 %.1f ms, "
                 "%d errors)" % (r["rate"], r["ms_per_run"], r["exists"], r["p50_ms"],
                                 r["p99_ms"], r["errors"]))


def bench_noop(cluster, loadgen, args, res):
    measure_pair(cluster, loadgen, args, res, "imap_noop", "imap-noop", NOOP_USER,
                 lambda r: {"noop_p50_ms": r["p50_ms"], "noop_p99_ms": r["p99_ms"],
                            "noop_mean_ms": r["ms_per_run"], "noop_rate": r["rate"]},
                 lambda r: "%.0f NOOP/s, mean %.3f ms, p50 %.3f ms, p99 %.3f ms (%d errors)"
                 % (r["rate"], r["ms_per_run"], r["p50_ms"], r["p99_ms"], r["errors"]))


def link_rtt(cluster, res, label):
    """pop2's view of pop1 on the link (and pop1's of pop2), into res.raw."""
    views = {}
    for p, q in ((cluster.front, cluster.home), (cluster.home, cluster.front)):
        v = p.link_peer(q.id)
        views["%s->%s" % (p.id, q.id)] = None if v is None else {
            k: v.get(k) for k in ("state", "rtt_ms", "rtt_avg_ms", "streams_active",
                                  "bytes_in", "bytes_out", "failures")}
    res.raw.setdefault("link", {})[label] = views
    return views["%s->%s" % (FRONT, HOME)]


def bench_idle(cluster, loadgen, args, res):
    """args.sessions roaming IMAP sessions held open at once through pop2."""
    n = args.sessions
    time.sleep(0.5)
    base = {p.id: bench.memory_of(p.pid) for p in (cluster.home, cluster.front)}
    before = counters(cluster)
    stderr = tempfile.TemporaryFile()
    proc = subprocess.Popen([loadgen, "imap-idle", "127.0.0.1", str(cluster.front.imap_port),
                             ROAM_PREFIX, PASSWORD, str(n), "600", str(args.roam_users)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
    held = {}
    try:
        t0 = time.monotonic()
        line = bench.read_line_until(proc, t0 + 300)
        if line is None or not line.startswith("READY "):
            raise RuntimeError("imap-idle: no READY line (%r)" % line)
        opened, failed = (int(x) for x in line.split()[1:3])
        setup = time.monotonic() - t0
        time.sleep(1.0)	# let the last logins finish their bookkeeping
        after = {p.id: bench.memory_of(p.pid) for p in (cluster.home, cluster.front)}
        now = counters(cluster)
        held = {"front_active": now[FRONT]["front"]["active"],
                "home_served_active": now[HOME]["home"]["served_active"]}
        rtt = link_rtt(cluster, res, "with_sessions")
        if rtt is not None and rtt.get("streams_active") is not None:
            res.set("idle_streams", "roaming", rtt["streams_active"])
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.seek(0)
        err_text = stderr.read().decode("utf-8", "replace").strip()
        stderr.close()
    r = None
    for l in out.decode("utf-8", "replace").splitlines():
        if l.startswith("{"):
            r = json.loads(l)
    if proc.returncode != 0 or r is None:
        raise RuntimeError("loadgen imap-idle failed (rc %s): %s" % (proc.returncode,
                                                                   err_text[-600:]))
    opened_t, served_t, failed_t = tunnel_delta(cluster, before)
    r.update({"memory_before": base, "memory_after": after, "setup_s_measured": setup,
              "held": held, "tunnels_opened": opened_t, "tunnels_served": served_t,
              "tunnels_failed": failed_t})
    res.raw["idle"] = r
    res.set("idle_up", "roaming", opened)
    res.set("idle_alive", "roaming", r["alive"])
    if opened:
        for pid, key in ((FRONT, "idle_front_kb"), (HOME, "idle_home_kb")):
            res.set(key, "roaming", (after[pid]["rss_kb"] - base[pid]["rss_kb"]) / float(opened))
            res.set(key.replace("_kb", "_anon_kb"), "roaming",
                    (after[pid]["anon_kb"] - base[pid]["anon_kb"]) / float(opened))
    if held.get("front_active") != opened or held.get("home_served_active") != opened:
        res.errors.append("idle: %d sessions up, but pop2 had %s roaming sessions active and "
                          "pop1 served %s" % (opened, held.get("front_active"),
                                              held.get("home_served_active")))
    if failed or r["lost"]:
        res.notes.append("idle: %d of %d sessions failed to come up, %d lost while held; "
                         "first error: %s" % (failed, n, r["lost"], r["first_error"]))
    if opened < n or r["alive"] < opened:
        res.errors.append("idle: %d of %d sessions came up, %d answered NOOP"
                          % (opened, n, r["alive"]))
    log("idle: %d of %d roaming sessions up in %.1f s (%.0f logins/s), %d answered NOOP, "
        "%d lost; pop2 %s active, pop1 %s served, %s streams on pop2's link connection; per "
        "session RSS pop2 %.1f KB, pop1 %.1f KB; link RTT then %s ms"
        % (opened, n, setup, r["logins_per_s"], r["alive"], r["lost"], held.get("front_active"),
           held.get("home_served_active"), res.get("idle_streams", "roaming"),
           res.get("idle_front_kb", "roaming") or 0, res.get("idle_home_kb", "roaming") or 0,
           rtt.get("rtt_ms") if rtt else "n/a"))


def popnode_version(binary):
    out = []
    tree = os.path.dirname(os.path.dirname(binary))
    for cmd in ([binary, "--version"], ["git", "-C", tree, "rev-parse", "--short", "HEAD"]):
        try:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               universal_newlines=True, timeout=10)
            if r.returncode == 0 and r.stdout.strip():
                out.append(r.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    return " git ".join(out) or "unknown"


# ---- fills ---------------------------------------------------------------

def fill_roam(cluster, args, res):
    """The small INBOXes of the concurrent sessions' users (before the
    sessions: only these deliveries have passed through pop1's heap)."""
    t0 = time.monotonic()
    msgs = bench.imap_corpus(min(args.roam_messages, args.imap_messages), 1)
    roam = ["%s%d" % (ROAM_PREFIX, i) for i in range(1, args.roam_users + 1)]
    jobs = []
    for k in range(args.roam_messages):
        for j in range(0, len(roam), 100):	# popnode's default max_recipients
            jobs.append((roam[j:j + 100], msgs[k % len(msgs)]))
    bench.lmtp_fill(cluster.home.lmtp_port, jobs)
    log("filled at %s: %d messages to each of %d %s* users in %.1f s"
        % (HOME, args.roam_messages, len(roam), ROAM_PREFIX, time.monotonic() - t0))


def fill_mailboxes(cluster, args, res):
    """The 100 KB mailbox (POP3, BODY[]) and the IMAP corpus mailbox."""
    t0 = time.monotonic()
    bench.lmtp_fill(cluster.home.lmtp_port,
                    [([POP_USER], bench.make_message(i, args.pop3_size))
                     for i in range(args.pop3_messages)])
    t1 = time.monotonic()
    hits = max(1, args.imap_messages // 100)
    corpus = bench.imap_corpus(args.imap_messages, hits)
    t2 = time.monotonic()
    bench.lmtp_fill(cluster.home.lmtp_port, [([IMAP_USER], m) for m in corpus])
    t3 = time.monotonic()
    log("filled at %s: %s %d x %d bytes in %.1f s; %s %d messages in %.1f s (corpus built in "
        "%.1f s)" % (HOME, POP_USER, args.pop3_messages, args.pop3_size, t1 - t0, IMAP_USER,
                     len(corpus), t3 - t2, t2 - t1))


# ---- the table -----------------------------------------------------------

def rows_spec(args):
    """(key, label, kind, digits): kind "throughput" (higher is better, goal
    ratio), "latency" (lower is better, goal difference), "info" (no goal),
    "count" (roaming only, goal: all of args.sessions)."""
    return [
        ("pop3_mbps", "POP3 RETR %dx%d KB (MB/s)" % (args.pop3_messages, args.pop3_size // 1024),
         "throughput", 1),
        ("imap_body_mbps", "IMAP FETCH BODY[] %dx%d KB (MB/s)"
         % (args.pop3_messages, args.pop3_size // 1024), "throughput", 1),
        ("imap_fetch_rate", "IMAP SELECT+FETCH %d ENVELOPE (runs/s)" % args.imap_messages,
         "throughput", 2),
        ("imap_fetch_ms", "  same, ms per run", "info", 1),
        ("noop_p50_ms", "IMAP NOOP latency p50 (ms)", "latency", 3),
        ("noop_p99_ms", "IMAP NOOP latency p99 (ms)", "latency", 3),
        ("noop_rate", "IMAP NOOP, one connection (ops/s)", "info", 0),
        ("link_rtt_ms", "link RTT pop2->pop1, HTTP/2 PING (ms)", "info", 3),
        ("idle_up", "%d roaming IMAP sessions: logged in" % args.sessions, "count", 0),
        ("idle_alive", "  still answering NOOP", "count", 0),
        ("idle_streams", "  streams open on pop2's link connection", "info", 0),
        ("idle_front_kb", "  RSS per session at pop2, front (KB)", "info", 1),
        ("idle_home_kb", "  RSS per session at pop1, home (KB)", "info", 1),
        ("idle_front_anon_kb", "  RssAnon per session at pop2 (KB)", "info", 1),
        ("idle_home_anon_kb", "  RssAnon per session at pop1 (KB)", "info", 1),
    ]


def num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def evaluate(kind, d, r, sessions):
    """(ratio, goal text, met text) for one row."""
    ratio = r / d if num(d) and num(r) and d > 0 else None
    if kind == "throughput":
        met = None if ratio is None else ratio >= THROUGHPUT_GOAL
        return ratio, ">= %.2f" % THROUGHPUT_GOAL, (
            "n/a" if met is None else "met" if met else "MISSED")
    if kind == "latency":
        if not (num(d) and num(r)):
            return ratio, "+< %.1f ms" % LATENCY_GOAL_MS, "n/a"
        diff = r - d
        return ratio, "+< %.1f ms" % LATENCY_GOAL_MS, "%s (%+.3f ms)" % (
            "met" if diff < LATENCY_GOAL_MS else "MISSED", diff)
    if kind == "count":
        if not num(r):
            return None, "all %d" % sessions, "n/a"
        return None, "all %d" % sessions, "met" if r >= sessions else "MISSED"
    return ratio, "", ""


def fmt(v, digits):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    return "%.*f" % (digits, v)


def render(rows, res, args):
    cells, table = [], []
    for key, label, kind, digits in rows:
        d, r = res.get(key, "direct"), res.get(key, "roaming")
        ratio, goal, met = evaluate(kind, d, r, args.sessions)
        dtext = fmt(d, digits) if d is not None or kind in ("throughput", "latency") else "-"
        cells.append((label, dtext, fmt(r, digits), "-" if ratio is None else "%.2f" % ratio,
                      goal, met))
        table.append({"key": key, "workload": label, "kind": kind, "direct": d, "roaming": r,
                      "ratio": None if ratio is None else round(ratio, 4),
                      "goal": goal or None, "met": met or None})
    head = ("workload", "direct", "roaming", "roam/dir", "goal", "met?")
    w = [max(len(c[i]) for c in cells + [head]) for i in range(6)]

    def line(c):
        return ("%-*s  %*s  %*s  %*s  %-*s  %s" % (w[0], c[0], w[1], c[1], w[2], c[2], w[3], c[3],
                                                  w[4], c[4], c[5])).rstrip()
    lines = [line(head), "-" * len(line(head)) if not cells
             else "-" * max(len(line(c)) for c in cells + [head])]
    lines += [line(c) for c in cells]
    return "\n".join(lines), table


# ---- main ----------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--popnode", default=os.path.join(ROOT, "bin", "popnode"))
    ap.add_argument("--popctl", default=os.path.join(ROOT, "bin", "popctl"))
    ap.add_argument("--seconds", type=float, default=4.0, help="measured time per cell")
    ap.add_argument("--warmup", type=float, default=1.0, help="unmeasured time before each cell")
    ap.add_argument("--rounds", type=int, default=3,
                    help="runs per cell, direct and roaming alternating; the median is "
                         "reported")
    ap.add_argument("--pop3-messages", type=int, default=200)
    ap.add_argument("--pop3-size", type=int, default=102400)
    ap.add_argument("--imap-messages", type=int, default=10000,
                    help="messages in the IMAP SELECT+FETCH mailbox")
    ap.add_argument("--sessions", type=int, default=1000,
                    help="concurrent roaming IMAP sessions")
    ap.add_argument("--roam-users", type=int, default=50,
                    help="users the concurrent sessions log in as, in turn")
    ap.add_argument("--roam-messages", type=int, default=20,
                    help="messages in each of those users' INBOX")
    ap.add_argument("--json", default=os.path.join(ROOT, "build", "bench", "roaming.json"))
    ap.add_argument("--tmpdir", default=None, help="parent of the temporary directory")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    args = ap.parse_args()
    if (args.seconds <= 0 or args.warmup < 0 or args.rounds < 1 or args.pop3_messages < 1
            or args.pop3_size < 1024 or args.imap_messages < 1 or args.sessions < 1
            or args.roam_users < 1 or args.roam_messages < 1):
        ap.error("bad --seconds/--warmup/--rounds/--pop3-*/--imap-messages/--sessions/--roam-*")
    nofile = bench.raise_nofile(2 * args.sessions + 4096)
    if nofile < args.sessions + 1024:
        ap.error("RLIMIT_NOFILE %d is too low for %d sessions (ulimit -n)"
                 % (nofile, args.sessions))

    # SIGTERM/SIGHUP unwind like Ctrl-C so that both POPs are stopped.
    def on_signal(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    loadgen = bench.build_loadgen(args.cc)
    load_before = bench.loadavg()
    res = Results()
    started = time.monotonic()
    cluster = None
    version = "unknown"
    try:
        cluster = Cluster(args.popnode, args.popctl, args.tmpdir,
                          max_sessions=2 * args.sessions + 1000)
        log("starting %s and %s in %s" % (HOME, FRONT, cluster.tmp))
        try:
            cluster.start()
            res.raw["link_up_s"] = round(cluster.wait_link(), 3)
            names = ([POP_USER, IMAP_USER, NOOP_USER] +
                     ["%s%d" % (ROAM_PREFIX, i) for i in range(1, args.roam_users + 1)])
            sync = cluster.add_users(names)
            res.raw["dir_sync_s"] = round(sync, 3)
            log("link up %.2f s after the POPs were started; %d users created at %s were at %s %.2f s after the "
                "last one" % (res.raw["link_up_s"], len(names), HOME, FRONT, sync))
            fill_roam(cluster, args, res)
            version = popnode_version(cluster.binary)
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            res.errors.append("setup: %s" % e)
            log("setup FAILED: %s" % e)
            for p in cluster.pops.values():
                tail = p.log_tail()
                if tail:
                    sys.stderr.write("--- %s log ---\n%s" % (p.id, tail))
        if not res.errors:
            for p in cluster.pops.values():
                p.mark_log()
            # The concurrent sessions first, on heaps that the other cells and
            # the big fills have not yet filled with freed memory that new
            # sessions would reuse.
            for what, fn in (("idle", bench_idle), ("fill", fill_and_rtt), ("pop3", bench_pop3),
                             ("imap body", bench_imap_body), ("imap fetch", bench_imap_fetch),
                             ("imap noop", bench_noop)):
                if not all(p.alive() for p in cluster.pops.values()):
                    res.errors.append("%s: skipped, a POP has exited" % what)
                    continue
                try:
                    fn(cluster, loadgen, args, res)
                except (RuntimeError, OSError, ValueError, KeyError,
                        subprocess.SubprocessError) as e:
                    res.errors.append("%s: %s" % (what, e))
                    log("%s: FAILED: %s" % (what, e))
                    if what == "fill":
                        break	# nothing to measure on empty mailboxes
            for p in cluster.pops.values():
                if not p.alive():
                    res.errors.append("%s exited during the run:\n%s" % (p.id, p.log_tail()))
                problems = p.log_problems()
                if problems:
                    res.notes.append("%s logged %d warnings/errors, first: %s"
                                     % (p.id, len(problems), problems[0][:300]))
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if cluster is not None:
            cluster.cleanup(args.keep)

    rows = rows_spec(args)
    text, table = render(rows, res, args)
    print()
    print("Roaming through another POP: pop2 tunnels to pop1 over the link (HTTP/2, mutual "
          "TLS), loopback, %g s per cell after %g s warm-up, %d CPUs"
          % (args.seconds, args.warmup, os.cpu_count() or 0))
    print("  popnode: %s; load average before: %s" % (version, load_before))
    print()
    print(text)
    print()
    print("direct = the client at pop1, the users' home; roaming = the same client, user and "
          "mailbox at pop2.")
    print("roam/dir above 1 is better for MB/s, runs/s and ops/s, below 1 for ms.  Goals: "
          "throughput at least %.2f of direct; roaming adds under %.1f ms per command."
          % (THROUGHPUT_GOAL, LATENCY_GOAL_MS))
    print("Memory per session: (RSS with the sessions open - before) / sessions, at each POP.")
    for n in res.notes:
        print("note: " + n)
    for e in res.errors:
        print("error: " + e)
    print("(%.0f s in all)" % (time.monotonic() - started))

    out = {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": platform.node(), "kernel": platform.release(),
            "cpus": os.cpu_count(), "seconds": args.seconds, "warmup": args.warmup,
            "rounds": args.rounds, "pop3_messages": args.pop3_messages,
            "pop3_size": args.pop3_size, "imap_messages": args.imap_messages,
            "sessions": args.sessions, "roam_users": args.roam_users,
            "roam_messages": args.roam_messages, "version": version,
            "throughput_goal_ratio": THROUGHPUT_GOAL, "latency_goal_ms": LATENCY_GOAL_MS,
            "nofile_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            "loadavg_before": load_before, "loadavg_after": bench.loadavg(),
        },
        "rows": table,
        "raw": res.raw,
        "notes": res.notes,
        "errors": res.errors,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json + ".tmp", "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    os.replace(args.json + ".tmp", args.json)
    shown = os.path.relpath(args.json)
    print("results: %s" % (os.path.abspath(args.json) if shown.startswith("..") else shown))
    return 1 if res.errors else 0


if __name__ == "__main__":
    sys.exit(main())
