#!/usr/bin/python3
"""bench.py - `make bench`: popnode and Dovecot side by side, on loopback.

Measures, for each server (docs/benchmarks.md explains the method):
  1. LMTP durable deliveries/s: 1 and 16 connections x 1 KB and 100 KB
     messages.  Each connection delivers to its own user (bench1..bench16),
     lock-step MAIL/RCPT/DATA, only 250 replies counted, fixed duration after
     a warm-up.  Load comes from tests/bench/loadgen.c (built here).
  2. POP3 RETR MB/s: one client, USER/PASS, RETR of every message in a
     mailbox of 200 x 100 KB, repeated for the duration.
  3. Memory of the server after the LMTP load: VmRSS and VmHWM from
     /proc/PID/status, and PSS from /proc/PID/smaps_rollup, summed over the
     server's process tree (Dovecot runs one process per LMTP connection).

Prints one table (popnode, dovecot, ratio popnode/dovecot) and writes it as
JSON to build/bench/results.json.  When Dovecot is not installed (or cannot
run here) its column says n/a; that never fails the run.  A popnode failure
does: the exit status is 1.

    /usr/bin/python3 tests/bench/bench.py --popnode bin/popnode --popctl bin/popctl
        [--seconds 5] [--warmup 1] [--rounds 1] [--only popnode|dovecot] [--keep]
"""

import argparse
import base64
import json
import os
import platform
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True  # keep tests/bench free of __pycache__
sys.path.insert(0, HERE)
import dovecot  # noqa: E402  (tests/bench/dovecot.py)

LOADGEN_SRC = os.path.join(HERE, "loadgen.c")
USER_PREFIX = "bench"
POP_USER = "benchpop"
PASSWORD = "bench-password-1"
SIZES = ((1024, "1 KB"), (102400, "100 KB"))
CONNS = (1, 16)


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


# ---- loadgen -------------------------------------------------------------

def build_loadgen(cc):
    out = os.path.join(ROOT, "build", "bench", "loadgen")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(LOADGEN_SRC):
        return out
    cmd = [cc, "-std=c11", "-D_GNU_SOURCE", "-O2", "-pthread", "-Wall", "-Wextra",
           "-o", out, LOADGEN_SRC]
    log(" ".join(cmd))
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    if r.stdout.strip():
        sys.stderr.write(r.stdout)
    if r.returncode != 0:
        raise SystemExit("bench: building loadgen failed")
    return out


def run_loadgen(loadgen, args, timeout):
    """Run loadgen; its JSON result, or raise RuntimeError with its stderr."""
    r = subprocess.run([loadgen] + [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout)
    res = None
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            res = json.loads(line)
    if r.returncode != 0 or res is None:
        raise RuntimeError("loadgen %s failed (rc %d): %s" % (
            args[0], r.returncode, (r.stderr.strip() or r.stdout.strip())[-600:]))
    return res


# ---- helpers -------------------------------------------------------------

def wait_port(port, deadline, proc):
    """Until 127.0.0.1:port accepts; False if proc died or time ran out."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def proc_tree(root):
    """root and every descendant PID (from /proc/*/stat)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        # comm may hold spaces and parentheses: split after the last ')'.
        fields = stat[stat.rfind(")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(d))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def memory_of(root):
    """Summed VmRSS, VmHWM, RssAnon, Pss (KiB) over root's process tree."""
    tot = {"rss_kb": 0, "hwm_kb": 0, "anon_kb": 0, "pss_kb": 0, "processes": 0}
    for pid in proc_tree(root):
        try:
            with open("/proc/%d/status" % pid) as f:
                status = dict(l.split(":", 1) for l in f if ":" in l)
            rss = int(status["VmRSS"].split()[0])
            hwm = int(status["VmHWM"].split()[0])
            anon = int(status["RssAnon"].split()[0])
        except (OSError, KeyError, ValueError):
            continue	# exited meanwhile, or a kernel thread
        pss = 0
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for l in f:
                    if l.startswith("Pss:"):
                        pss = int(l.split()[1])
        except (OSError, ValueError):
            pass
        tot["rss_kb"] += rss
        tot["hwm_kb"] += hwm
        tot["anon_kb"] += anon
        tot["pss_kb"] += pss
        tot["processes"] += 1
    return tot


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def fsync_probe(parent_dir, n=40):
    """Median and p90 ms of a 4 KiB write + fsync where the servers keep
    their data: the floor under every durable delivery."""
    d = tempfile.mkdtemp(prefix="bench-fsync-", dir=parent_dir)
    times = []
    try:
        fd = os.open(os.path.join(d, "probe"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            block = os.urandom(4096)
            for _ in range(n):
                t0 = time.monotonic()
                os.write(fd, block)
                os.fsync(fd)
                times.append((time.monotonic() - t0) * 1000.0)
        finally:
            os.close(fd)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.9)]


def make_message(i, size):
    """A unique RFC 5322 message of about `size` bytes (base64 body)."""
    head = ("From: bench <bench@bench.test>\r\nTo: %s@bench.test\r\n"
            "Subject: pop3 bench message %d\r\nMessage-ID: <pop3.%d.%s@bench.test>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
            % (POP_USER, i, i, os.urandom(6).hex()))
    # base64 lines: 57 input bytes -> 76 characters + CRLF = 78 bytes.
    raw = base64.encodebytes(os.urandom(max(0, (size - len(head)) * 57 // 78)))
    body = raw.replace(b"\n", b"\r\n")
    return head.encode() + body


def fill_mailbox(port, count, size):
    lm = smtplib.LMTP("127.0.0.1", port, timeout=30)
    try:
        lm.ehlo("bench.test")
        for i in range(count):
            refused = lm.sendmail("bench@bench.test", ["%s@bench.test" % POP_USER],
                                  make_message(i, size))
            if refused:
                raise RuntimeError("LMTP fill refused: %r" % refused)
    finally:
        try:
            lm.quit()
        except (smtplib.SMTPException, OSError):
            pass


# ---- servers -------------------------------------------------------------

class Popnode:
    name = "popnode"

    def __init__(self, binary, popctl, parent_dir):
        for p in (binary, popctl):
            if not os.access(p, os.X_OK):
                raise RuntimeError("%s not found or not executable (make all)" % p)
        self.binary, self.popctl = os.path.abspath(binary), os.path.abspath(popctl)
        self.tmp = tempfile.mkdtemp(prefix="bench-popnode-", dir=parent_dir)
        self.sock = os.path.join(self.tmp, "control.sock")
        ports = set()
        while len(ports) < 3:
            ports.add(dovecot.free_port())
        self.lmtp_port, self.pop3_port, self.http_port = sorted(ports)
        self.proc = None
        self.logf = None

    def _popctl(self, args, stdin=None):
        return subprocess.run([self.popctl, "-s", self.sock] + args, input=stdin,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=30)

    def start(self, timeout=30.0):
        t = self.tmp
        data = os.path.join(t, "data")
        os.makedirs(data)
        cert, key = os.path.join(t, "cert.pem"), os.path.join(t, "key.pem")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                            "-subj", "/CN=bench.test", "-keyout", key, "-out", cert],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
        if r.returncode != 0:
            raise RuntimeError("openssl req failed: " + r.stdout)
        conf = os.path.join(t, "popnode.conf")
        with open(conf, "w") as f:
            f.write("# written by tests/bench/bench.py\n"
                    "node_id bench\n"
                    "data_dir %s\n"
                    "log stderr\n"
                    "log_level warn\n"
                    "control_socket %s\n"
                    "domain *\n"
                    "listen lmtp 127.0.0.1:%d\n"
                    "listen pop3 127.0.0.1:%d no-starttls plaintext-auth\n"
                    "listen http 127.0.0.1:%d\n"
                    "tls_cert %s\n"
                    "tls_key %s\n"
                    "max_sessions_per_ip 1000\n"
                    "max_message_size 10M\n"
                    "default_quota 0\n"
                    % (data, self.sock, self.lmtp_port, self.pop3_port, self.http_port,
                       cert, key))
        self.logf = open(os.path.join(t, "popnode.log"), "w")
        self.proc = subprocess.Popen([self.binary, "-c", conf], stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        if not wait_port(self.lmtp_port, deadline, self.proc):
            raise RuntimeError("popnode did not listen:\n" + self.log_tail())
        while True:
            r = self._popctl(["status"])
            if r.returncode == 0:
                break
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("popctl status failed: %s\n%s" % (r.stdout.strip(),
                                                                     self.log_tail()))
            time.sleep(0.1)

    def add_user(self, name, password):
        r = self._popctl(["user", "add", name, "--password-stdin"], stdin=password + "\n")
        if r.returncode != 0:
            raise RuntimeError("popctl user add %s failed: %s" % (name, r.stdout.strip()))

    @property
    def pid(self):
        return self.proc.pid

    def version(self):
        out = []
        for cmd in ([self.binary, "--version"], ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]):
            try:
                r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   universal_newlines=True, timeout=10)
                if r.returncode == 0 and r.stdout.strip():
                    out.append(r.stdout.strip())
            except (OSError, subprocess.SubprocessError):
                pass
        return (" git ".join(out) or "unknown") + ", LMDB"

    def proc_dead(self):
        return self.proc is None or self.proc.poll() is not None

    def log_tail(self, lines=20):
        try:
            with open(os.path.join(self.tmp, "popnode.log"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def cleanup(self, keep=False):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(35)
                except subprocess.TimeoutExpired:
                    log("popnode did not exit on SIGTERM; killing it")
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            if self.proc.returncode not in (0, -signal.SIGKILL, None):
                log("popnode exited with status %s" % self.proc.returncode)
            self.proc = None
        if self.logf is not None:
            self.logf.close()
            self.logf = None
        if self.tmp and not keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


class DovecotServer:
    name = "dovecot"

    def __init__(self, parent_dir):
        self.d = dovecot.Dovecot(parent_dir=parent_dir)
        self.lmtp_port, self.pop3_port = self.d.lmtp_port, self.d.pop3_port
        self.tmp = self.d.tmp

    def start(self):
        self.d.start()

    def add_user(self, name, password):
        self.d.add_user(name, password)

    @property
    def pid(self):
        return self.d.pid

    def version(self):
        r = subprocess.run([dovecot.DOVECOT, "--version"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, universal_newlines=True)
        return "dovecot " + r.stdout.strip() + ", maildir, mail_fsync=optimized"

    def log_tail(self, lines=20):
        return self.d.log_tail(lines)

    def proc_dead(self):
        return self.d.proc is None or self.d.proc.poll() is not None

    def cleanup(self, keep=False):
        self.d.cleanup(keep)


# ---- the run -------------------------------------------------------------

def lmtp_key(size, conns):
    return "lmtp_%dk_x%d" % (size // 1024, conns)


class Run:
    """One server under test: its measurements, raw results and errors."""

    def __init__(self, srv):
        self.srv, self.name = srv, srv.name
        self.vals, self.raw, self.errors = {}, {}, []
        self.warnings = []	# errors inside a cell that still measured something
        self.alive = True

    def check(self, what, res):
        if res["errors"]:
            self.warnings.append("%s: %d errors (%d ok), first: %s"
                                 % (what, res["errors"], res["count"], res["first_error"]))

    def fail(self, what, e):
        self.errors.append("%s: %s" % (what, e))
        log("%s: %s FAILED: %s" % (self.name, what, e))
        if self.srv.proc_dead():
            self.alive = False
            tail = self.srv.log_tail()
            if tail:
                sys.stderr.write(tail + "\n")


def median_run(loadgen, argv, rounds, timeout):
    """Run a loadgen cell `rounds` times; the result with the median rate."""
    res = []
    for _ in range(rounds):
        os.sync()	# no writeback left over from the previous cell
        res.append(run_loadgen(loadgen, argv, timeout))
    res.sort(key=lambda r: r["rate"])
    mid = dict(res[len(res) // 2])
    if rounds > 1:
        mid["rounds"] = [r["rate"] for r in res]
    return mid


def setup_server(run, args):
    run.srv.start()
    for i in range(1, args.users + 1):
        run.srv.add_user("%s%d" % (USER_PREFIX, i), PASSWORD)
    run.srv.add_user(POP_USER, PASSWORD)
    run.raw["version"] = run.srv.version()


def bench_all(runs, loadgen, args):
    """The measurements, each cell run on every server in turn so that a
    slow spell of the machine hits both columns alike."""
    limit = args.seconds + args.warmup + 60
    for size, label in SIZES:
        for conns in CONNS:
            key = lmtp_key(size, conns)
            for run in runs:
                if not run.alive:
                    continue
                try:
                    res = median_run(loadgen, ["lmtp", "127.0.0.1", run.srv.lmtp_port, conns,
                                               args.seconds, size, USER_PREFIX, args.warmup,
                                               args.users], args.rounds, limit)
                    run.vals[key] = res["rate"]
                    run.raw[key] = res
                    run.check(key, res)
                    log("%s: LMTP %s x%d: %.1f msg/s (p50 %.2f ms, p99 %.2f ms, %d errors)"
                        % (run.name, label, conns, res["rate"], res["p50_ms"], res["p99_ms"],
                           res["errors"]))
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    run.fail(key, e)
    for run in runs:
        if not run.alive:
            continue
        mem = memory_of(run.srv.pid)
        run.raw["memory"] = mem
        run.vals["rss_mib"] = mem["rss_kb"] / 1024.0
        run.vals["hwm_mib"] = mem["hwm_kb"] / 1024.0
        run.vals["pss_mib"] = mem["pss_kb"] / 1024.0
        run.vals["anon_mib"] = mem["anon_kb"] / 1024.0
        run.vals["processes"] = mem["processes"]
        log("%s: memory after LMTP load: RSS %.1f MiB, peak %.1f MiB, anon %.1f MiB, "
            "PSS %.1f MiB, %d processes" % (run.name, run.vals["rss_mib"], run.vals["hwm_mib"],
                                            run.vals["anon_mib"], run.vals["pss_mib"],
                                            mem["processes"]))
    filled = []
    for run in runs:
        if not run.alive:
            continue
        try:
            t0 = time.monotonic()
            fill_mailbox(run.srv.lmtp_port, args.pop3_messages, args.pop3_size)
            log("%s: filled %s with %d x %d bytes in %.1f s" % (
                run.name, POP_USER, args.pop3_messages, args.pop3_size,
                time.monotonic() - t0))
            filled.append(run)
        except (RuntimeError, OSError, smtplib.SMTPException) as e:
            run.fail("pop3 fill", e)
    for run in filled:
        try:
            res = median_run(loadgen, ["pop3", "127.0.0.1", run.srv.pop3_port, POP_USER,
                                       PASSWORD, args.seconds, args.warmup],
                             args.rounds, limit)
            run.vals["pop3_mbps"] = res["mbps"]
            run.raw["pop3"] = res
            run.check("pop3", res)
            log("%s: POP3 RETR: %.1f MB/s (%d messages, %d sessions, %d errors)"
                % (run.name, res["mbps"], res["count"], res["sessions"], res["errors"]))
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            run.fail("pop3", e)


def rows_spec(args):
    rows = []
    for size, label in SIZES:
        for conns in CONNS:
            rows.append((lmtp_key(size, conns),
                         "LMTP %s, %d conn%s (msg/s)" % (label, conns, "" if conns == 1 else "s"),
                         "higher", 1))
    rows.append(("pop3_mbps", "POP3 RETR %dx%d KB (MB/s)" % (args.pop3_messages,
                                                            args.pop3_size // 1024),
                 "higher", 1))
    rows.append(("rss_mib", "RSS after LMTP load (MiB)", "lower", 1))
    rows.append(("hwm_mib", "peak RSS, VmHWM (MiB)", "lower", 1))
    rows.append(("anon_mib", "anonymous RSS, RssAnon (MiB)", "lower", 1))
    rows.append(("pss_mib", "PSS after LMTP load (MiB)", "lower", 1))
    rows.append(("processes", "server processes", None, 0))
    return rows


def fmt(v, digits):
    if v is None:
        return "n/a"
    return "%.*f" % (digits, v)


def render(rows, results):
    pn, dv = results.get("popnode", {}), results.get("dovecot", {})
    width = max(len(r[1]) for r in rows) + 2
    lines = ["%-*s %12s %12s %8s" % (width, "measurement", "popnode", "dovecot", "ratio"),
             "-" * (width + 35)]
    table = []
    for key, label, better, digits in rows:
        a, b = pn.get(key), dv.get(key)
        ratio = a / b if better and a is not None and b not in (None, 0) else None
        lines.append("%-*s %12s %12s %8s" % (width, label, fmt(a, digits), fmt(b, digits),
                                             fmt(ratio, 2) if better else "-"))
        table.append({"key": key, "measurement": label, "better": better,
                      "popnode": a, "dovecot": b,
                      "ratio": round(ratio, 4) if ratio is not None else None})
    return "\n".join(lines), table


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--popnode", default=os.path.join(ROOT, "bin", "popnode"))
    ap.add_argument("--popctl", default=os.path.join(ROOT, "bin", "popctl"))
    ap.add_argument("--seconds", type=float, default=5.0, help="measured time per cell")
    ap.add_argument("--warmup", type=float, default=1.0, help="unmeasured time before each cell")
    ap.add_argument("--rounds", type=int, default=1,
                    help="runs per cell; the median is reported")
    ap.add_argument("--users", type=int, default=16, help="LMTP users bench1..N")
    ap.add_argument("--pop3-messages", type=int, default=200)
    ap.add_argument("--pop3-size", type=int, default=102400)
    ap.add_argument("--only", choices=("popnode", "dovecot"), help="run one server only")
    ap.add_argument("--json", default=os.path.join(ROOT, "build", "bench", "results.json"))
    ap.add_argument("--tmpdir", default=None, help="parent of the temporary directories")
    ap.add_argument("--keep", action="store_true", help="keep temporary directories")
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    args = ap.parse_args()
    if (args.seconds <= 0 or args.warmup < 0 or args.users < 1 or args.pop3_messages < 1
            or args.rounds < 1):
        ap.error("bad --seconds/--warmup/--users/--pop3-messages/--rounds")

    # SIGTERM/SIGHUP unwind like Ctrl-C so every server is stopped.
    def on_signal(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    loadgen = build_loadgen(args.cc)
    load_before = loadavg()
    fsync_ms = fsync_probe(args.tmpdir)
    log("load average %s; 4 KiB write+fsync: median %.2f ms, p90 %.2f ms"
        % (load_before, fsync_ms[0], fsync_ms[1]))
    notes, runs = [], []
    popnode_failed = False
    started = time.monotonic()
    try:
        for name in ("popnode", "dovecot"):
            if args.only and args.only != name:
                continue
            srv = None
            try:
                if name == "popnode":
                    srv = Popnode(args.popnode, args.popctl, args.tmpdir)
                else:
                    reason = dovecot.missing_reason()
                    if reason:
                        notes.append("dovecot: n/a (%s)" % reason)
                        log("dovecot: skipped: %s" % reason)
                        continue
                    srv = DovecotServer(args.tmpdir)
                run = Run(srv)
                runs.append(run)
                log("%s: starting (temp dir %s)" % (name, srv.tmp))
                setup_server(run, args)
            except (RuntimeError, OSError, subprocess.SubprocessError,
                    dovecot.Unavailable) as e:
                notes.append("%s: failed to start: %s" % (name, e))
                log("%s: FAILED to start: %s" % (name, e))
                if srv is not None:
                    tail = srv.log_tail()
                    if tail:
                        sys.stderr.write(tail + "\n")
                    runs = [r for r in runs if r.srv is not srv]
                    srv.cleanup(args.keep)
                if name == "popnode":
                    popnode_failed = True
        bench_all(runs, loadgen, args)
    except KeyboardInterrupt:
        log("interrupted")
        for run in runs:
            run.srv.cleanup(args.keep)
        return 130
    finally:
        for run in runs:
            if args.keep and run.srv.tmp:
                log("%s: kept %s" % (run.name, run.srv.tmp))
            run.srv.cleanup(args.keep)
    results = {r.name: r.vals for r in runs}
    raw = {r.name: r.raw for r in runs}
    for run in runs:
        for e in run.errors:
            notes.append("%s: %s" % (run.name, e))
        for w in run.warnings:
            notes.append("%s: warning: %s" % (run.name, w))
        if run.errors and run.name == "popnode":
            popnode_failed = True

    rows = rows_spec(args)
    text, table = render(rows, results)
    mem = {n: raw.get(n, {}).get("memory", {}).get("processes") for n in ("popnode", "dovecot")}
    print()
    print("popnode vs Dovecot, loopback, %g s per cell after %g s warm-up, %d CPUs"
          % (args.seconds, args.warmup, os.cpu_count() or 0))
    for n in ("popnode", "dovecot"):
        if n in raw:
            print("  %s: %s" % (n, raw[n].get("version", "")))
    print("  load average before: %s; 4 KiB write+fsync here: median %.2f ms, p90 %.2f ms"
          % (load_before, fsync_ms[0], fsync_ms[1]))
    print()
    print(text)
    print()
    print("ratio = popnode / dovecot: above 1 is better for msg/s and MB/s, "
          "below 1 is better for memory.")
    if mem.get("dovecot"):
        print("Memory is summed over each server's process tree (Dovecot: master, auth, "
              "log, lmtp workers...); RSS double-counts shared pages, PSS does not.")
    if mem.get("popnode"):
        print("popnode's RSS and PSS include the LMDB file pages it has mapped (page cache); "
              "RssAnon is its heap and stacks.")
    for n in notes:
        print("note: " + n)
    print("(%.0f s in all)" % (time.monotonic() - started))

    out = {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": platform.node(), "kernel": platform.release(),
            "cpus": os.cpu_count(), "seconds": args.seconds, "warmup": args.warmup,
            "users": args.users, "pop3_messages": args.pop3_messages,
            "pop3_size": args.pop3_size,
            "versions": {n: raw[n].get("version") for n in raw},
            "loadavg_before": load_before, "loadavg_after": loadavg(),
            "fsync_ms_median": round(fsync_ms[0], 3), "fsync_ms_p90": round(fsync_ms[1], 3),
        },
        "rows": table,
        "raw": raw,
        "notes": notes,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json + ".tmp", "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    os.replace(args.json + ".tmp", args.json)
    shown = os.path.relpath(args.json)
    print("results: %s" % (os.path.abspath(args.json) if shown.startswith("..") else shown))
    return 1 if popnode_failed else 0


if __name__ == "__main__":
    sys.exit(main())
