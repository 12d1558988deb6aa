#!/usr/bin/python3
"""replication.py - the replication part of `make bench`: how far behind a
POP's mirrors are under sustained delivery load, how fast a mirror that
was away catches up, and how fast a mirror that lost its copy resyncs.

A 3-POP cluster on loopback (popnode processes on free ports, linked over
HTTP/2 with mutual TLS, certificates from deploy/link-certs): pop1 is the
home of the bench users and pins `mirrors pop2 pop3` (docs/replication.md).

  1. lag: LMTP deliveries to pop1 at a fixed rate (default 500/s, 4 KB
     messages, 32 connections each pacing itself on a schedule, 20 s)
     while a separate process asks pop1 for `lag format=json` over its
     control socket every millisecond.  Each answer gives pop1's changelog
     end (last_seq) and each mirror's acknowledged position (applied_seq),
     read at one moment.  The lag of changelog record s at mirror M is
     (first answer with M's applied_seq >= s) - (first answer with
     last_seq >= s): from the moment the record is committed at pop1 (the
     250 follows it with replication_ack local) until pop1 holds the
     mirror's ack that the record is durable and applied there.  p50, p99
     and max over the records of the measured window (after 2 s of warm-up),
     per mirror and for "both" (per record, the later of the two).  Run
     twice: replication_ack mirror (the default: the 250 waits for the
     first mirror's ack, so the second mirror's lag is the one that
     matters), then pop1 restarted with replication_ack local (the 250 at
     local durability).  Goal: p99 < the link's RTT + 10 ms, the RTT being
     the smallest of pop1's HTTP/2 PING round trips to that mirror read
     during the run (the path, without the load's queueing).
  2. catch-up: pop3 is stopped (SIGTERM), 200 MB of 100 KB messages are
     delivered to pop1, pop3 is started again; the time until pop1 has
     pop3's ack of its last record.  MB/s from the moment pop1's stream to
     pop3 is open (state streaming again), and from the restart.  Goal:
     >= 100 MB/s on loopback while streaming.
  3. snapshot: pop3 is stopped, its copy of pop1 (DATA_DIR/mirror/pop1)
     deleted, pop3 started; a mirror that has nothing resyncs by a
     snapshot of pop1's store (state "snapshotting"), then streams.  MB/s
     of pop1's store (du of its data_dir, less its own mirror/ copies of
     pop2 and pop3, which hold no mail) until caught up.  Where
     "snapshotting" never shows (the feature is not there: the mirror
     replays the changelog from seq 1 instead) or the mirror does not
     catch up in time, the row says "snapshot: not available" and why.
  4. netns (root, and `deploy/lab up --netns` works): the same lag runs
     (15 s each) and the catch-up (50 MB) on the network-namespace lab,
     with a one-way delay (default 20 ms) on the links between pop1 and
     its mirrors.  The lab's --delay-ms delays each POP's uplink to the
     router only; the POPs' link runs over a veth mesh without delay, so
     this script holds the packets arriving on those veths with
     bin/nfqdelay itself (an NFQUEUE rule in PREROUTING of each POP's
     namespace, as deploy/lab does for the uplinks), put in place while
     the POPs are stopped so that every link connection is made over the
     delayed path.  The load runs inside pop1's namespace (an extra
     `listen lmtp 127.0.0.1:2424`).  Skipped with a printed reason
     otherwise; `deploy/lab down` always runs.

Prints the tables side by side (ack local | ack mirror, loopback |
netns) with the goals, writes build/bench/replication.json.  A missed goal
or an unavailable snapshot does not fail the run; a part that could not
be measured does (exit status 1).

    /usr/bin/python3 tests/bench/replication.py --popnode bin/popnode --popctl bin/popctl
        [--rate 500] [--seconds 20] [--netns-seconds 15] [--conns 32] [--size 4096]
        [--sample-ms 1] [--catchup-mb 200] [--netns-catchup-mb 50] [--delay-ms 20]
        [--no-netns] [--no-loopback] [--json PATH] [--tmpdir DIR] [--keep]
"""

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True	# keep tests/bench free of __pycache__
sys.path.insert(0, HERE)
import bench  # noqa: E402  (make_message, PASSWORD_HASH, loadavg)

LINK_CERTS = os.path.join(ROOT, "deploy", "link-certs")
LAB_SCRIPT = os.path.join(ROOT, "deploy", "lab")
POPS = ("pop1", "pop2", "pop3")
MIRRORS = ("pop2", "pop3")
USERS = ["repl%d" % i for i in range(1, 17)]
LAG_GOAL_MS = 10.0		# p99 lag < RTT + this
CATCHUP_GOAL_MBPS = 100.0	# loopback, while streaming
WARMUP_S = 2.0			# lag: records of the first seconds are not counted
MB = 1000.0 * 1000.0
# Ports of the loopback cluster: below the ephemeral range, above nothing
# deploy/lab uses (20000 + 100 * i), as tests/integration/cluster.py.
PORT_RANGE = (10000, 19999)
# Link timers as tests/integration/cluster.py: a stopped POP is noticed in
# about 3 s and dialled again soon after it is back.
LINK_TIMERS = (("link_timeout", "2s"), ("link_ping_interval", "1s"),
               ("link_breaker_cooloff", "2s"))


def log(msg):
    sys.stderr.write("replication: %s\n" % msg)
    sys.stderr.flush()


class Unavailable(Exception):
    """A part that cannot run here (not an error of popnode)."""


class StartFailed(Exception):
    """The cluster did not come up."""


# ---- the control socket --------------------------------------------------

class Ctl:
    """A persistent connection to a popnode control socket
    (docs/control-protocol.md): one request line, "ok" or "err", a
    dot-stuffed body ending in ".".  Much cheaper per question than
    running popctl, so it can be asked every millisecond."""

    def __init__(self, path, timeout=10.0):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.f = self.s.makefile("rb")

    def request(self, *fields):
        self.s.sendall(("\t".join(fields) + "\n").encode())
        status = self.f.readline()
        if not status:
            raise OSError("control socket closed")
        body = []
        while True:
            line = self.f.readline()
            if not line:
                raise OSError("control socket closed in an answer")
            if line == b".\n":
                break
            body.append(line[1:] if line.startswith(b"..") else line)
        text = b"".join(body).decode("utf-8", "replace")
        if not status.startswith(b"ok"):
            raise RuntimeError("control: %s %s" % (status.decode("utf-8", "replace").strip(),
                                                   text.strip()))
        return text

    def lag(self):
        return json.loads(self.request("lag", "format=json"))

    def close(self):
        with contextlib.suppress(OSError):
            self.f.close()
            self.s.close()


def lag_once(sock):
    c = Ctl(sock)
    try:
        return c.lag()
    finally:
        c.close()


def mirror_rows(doc):
    return {m["mirror"]: m for m in doc.get("mirrors", [])}


def origin_rows(doc):
    return {o["origin"]: o for o in doc.get("origins", [])}


# ---- the sampler: pop1's lag every millisecond, in its own process ---------

def _sampler_main(sock, interval, stop, conn, mirrors):
    # the parent stops this process; Ctrl-C (sent to the whole process
    # group) and the parent's signal handlers are not for it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    out = []
    err = None
    try:
        c = Ctl(sock)
        nxt = time.monotonic()
        while not stop.is_set():
            t1 = time.monotonic()
            doc = c.lag()
            t2 = time.monotonic()
            rows = mirror_rows(doc)
            last = None
            row = [(t1 + t2) / 2.0, None]
            for m in mirrors:
                r = rows.get(m)
                if r is not None:
                    last = r["last_seq"]
                row.append(r["applied_seq"] if r else None)
                row.append(r["state"] if r else None)
            row[1] = last
            out.append(tuple(row))
            nxt += interval
            now = time.monotonic()
            if nxt > now:
                time.sleep(nxt - now)
            else:
                nxt = now
        c.close()
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        err = "%s: %s" % (type(e).__name__, e)
    conn.send((out, err))
    conn.close()


class Sampler:
    """Asks pop1 `lag format=json` every `interval` s in a forked process
    (not slowed by the load's threads); stop() returns the samples
    [(t, last_seq, applied pop2, state pop2, applied pop3, state pop3)],
    t the middle of question and answer on CLOCK_MONOTONIC."""

    def __init__(self, sock, interval=0.001, mirrors=MIRRORS):
        ctx = multiprocessing.get_context("fork")
        self.stop_evt = ctx.Event()
        self.rx, tx = ctx.Pipe(duplex=False)
        self.p = ctx.Process(target=_sampler_main,
                             args=(sock, interval, self.stop_evt, tx, mirrors), daemon=True)
        self.p.start()
        tx.close()

    def stop(self):
        self.stop_evt.set()
        if not self.rx.poll(30):
            self.p.kill()
            raise RuntimeError("the lag sampler did not answer")
        try:
            out, err = self.rx.recv()
        except EOFError:
            self.p.join(5)
            raise RuntimeError("the lag sampler exited (%s)" % self.p.exitcode)
        self.p.join(5)
        if err:
            raise RuntimeError("lag sampler: %s" % err)
        return out


# ---- LMTP ------------------------------------------------------------------

class Lmtp:
    """LMTP over a connected socket, one transaction at a time: MAIL,
    RCPT (one recipient) and DATA sent together (popnode offers
    PIPELINING), each reply checked, then the message; deliver() returns
    the final reply (code, line)."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(120)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = sock.makefile("rb")
        self.expect(220, "greeting")
        self.cmd(b"LHLO bench.test", 250, "LHLO")

    def reply(self):
        while True:
            line = self.f.readline(4096)
            if len(line) < 4:
                raise OSError("LMTP connection closed (%r)" % line)
            if line[3:4] != b"-":
                return int(line[:3]), line.decode("latin-1").strip()

    def expect(self, code, what):
        c, line = self.reply()
        if c != code:
            raise RuntimeError("LMTP %s: %s" % (what, line))

    def cmd(self, line, code, what):
        self.sock.sendall(line + b"\r\n")
        self.expect(code, what)

    def deliver(self, rcpt, msg):
        self.sock.sendall(b"MAIL FROM:<bench@bench.test>\r\nRCPT TO:<" + rcpt.encode()
                          + b"@bench.test>\r\nDATA\r\n")
        self.expect(250, "MAIL")
        self.expect(250, "RCPT " + rcpt)
        self.expect(354, "DATA")
        self.sock.sendall(msg + b".\r\n")
        return self.reply()

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.sendall(b"QUIT\r\n")
        with contextlib.suppress(OSError):
            self.f.close()
            self.sock.close()


def lag_body(size):
    """The lag messages' common part: headers and text lines up to about
    `size` bytes, CRLF, no line starting with a dot, ending in CRLF.  Each
    delivery puts a header line of its own in front, so each message has
    its own body hash."""
    head = ("From: bench <bench@bench.test>\r\nTo: <lag@bench.test>\r\n"
            "Subject: replication lag\r\n\r\n")
    lines, n, i = [], len(head), 0
    while n < size:
        line = "The quick brown fox jumps over the lazy dog; replication bench line %04d.\r\n" % i
        lines.append(line)
        n += len(line)
        i += 1
    return (head + "".join(lines)).encode()


def big_message(k, size):
    """bench.make_message (base64 of random bytes; no dot-starting line)
    with CRLF at the end."""
    m = bench.make_message(k, size)
    return m if m.endswith(b"\r\n") else m + b"\r\n"


def paced_load(connect, rate, seconds, conns, size):
    """Deliver at `rate` per second for `seconds` over `conns` connections:
    connection i sends message number k*conns + i at t0 + (k*conns + i) /
    rate, or at once when it is late (one transaction at a time).  Returns
    {t0, t_end, sent, ok, errors, first_error, latencies (ms of the 250s),
    ends (times of the 250s)}."""
    t0 = time.monotonic() + 0.3
    end = t0 + seconds
    lock = threading.Lock()
    res = {"t0": t0, "ok": 0, "errors": 0, "first_error": None, "lat": [], "ends": []}
    body = lag_body(size - 40)
    run = b"%x.%x" % (os.getpid(), time.monotonic_ns())

    def worker(i):
        lat, ends, ok, errors, first = [], [], 0, 0, None
        try:
            c = Lmtp(connect())
        except (OSError, RuntimeError) as e:
            with lock:
                res["errors"] += 1
                res["first_error"] = res["first_error"] or "connect: %s" % e
            return
        try:
            k = 0
            while True:
                n = k * conns + i
                due = t0 + n / rate
                if due >= end:
                    break
                now = time.monotonic()
                if due > now:
                    time.sleep(due - now)
                m = b"X-Bench-Seq: %s.%d\r\n" % (run, n) + body
                ts = time.monotonic()
                try:
                    code, line = c.deliver(USERS[n % len(USERS)], m)
                except Exception as e:  # noqa: BLE001  (counted and reported)
                    errors += 1
                    first = first or str(e)
                    break
                te = time.monotonic()
                if code == 250:
                    ok += 1
                    lat.append((te - ts) * 1000.0)
                    ends.append(te)
                else:
                    errors += 1
                    first = first or line
                k += 1
        finally:
            c.close()
            with lock:
                res["ok"] += ok
                res["errors"] += errors
                res["lat"] += lat
                res["ends"] += ends
                if first and not res["first_error"]:
                    res["first_error"] = first

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res["t_end"] = time.monotonic()
    res["sent"] = res["ok"] + res["errors"]
    return res


def bulk_fill(connect, count, size, conns=8):
    """Deliver `count` messages of about `size` bytes as fast as they go;
    (seconds, bytes)."""
    errors = []
    total = [0]
    lock = threading.Lock()

    def worker(i):
        try:
            c = Lmtp(connect())
        except (OSError, RuntimeError) as e:
            errors.append("connect: %s" % e)
            return
        n = 0
        try:
            for k in range(i, count, conns):
                if errors:
                    return
                m = big_message(k, size)
                code, line = c.deliver(USERS[k % len(USERS)], m)
                if code != 250:
                    errors.append(line)
                    return
                n += len(m)
        except Exception as e:  # noqa: BLE001  (any failure ends the fill, reported)
            errors.append("%s: %s" % (type(e).__name__, e))
        finally:
            c.close()
            with lock:
                total[0] += n

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("bulk delivery: %s" % errors[0])
    return time.monotonic() - t0, total[0]


# ---- figures ---------------------------------------------------------------

def pct(vals, p):
    if not vals:
        return None
    s = sorted(vals)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


def first_times(samples, col, s_lo, s_hi):
    """{s: time of the first sample whose column col is >= s} for s in
    s_lo..s_hi (no key for an s that no sample reached)."""
    out = {}
    s = s_lo
    for row in samples:
        v = row[col]
        if v is None:
            continue
        while s <= s_hi and v >= s:
            out[s] = row[0]
            s += 1
        if s > s_hi:
            break
    return out


def lag_figures(samples, t_from, t_to):
    """Per-record lag (ms) of each mirror and of both, for the records
    committed at pop1 between t_from and t_to (times of the samples)."""
    inside = [r for r in samples if r[1] is not None and t_from <= r[0] <= t_to]
    if len(inside) < 2:
        raise RuntimeError("too few lag samples in the measured window")
    before = [r for r in samples if r[1] is not None and r[0] < t_from]
    s_lo = (before[-1][1] if before else inside[0][1]) + 1
    s_hi = inside[-1][1]
    if s_hi < s_lo:
        raise RuntimeError("pop1's changelog did not move during the load")
    made = first_times(samples, 1, s_lo, s_hi)
    out = {"records": s_hi - s_lo + 1}
    per = {}
    for k, m in enumerate(MIRRORS):
        got = first_times(samples, 2 + 2 * k, s_lo, s_hi)
        lags = {s: (got[s] - made[s]) * 1000.0 for s in range(s_lo, s_hi + 1)
                if s in made and s in got}
        per[m] = lags
        vals = list(lags.values())
        out[m] = {"p50": pct(vals, 50), "p99": pct(vals, 99),
                  "max": max(vals) if vals else None,
                  "never": (s_hi - s_lo + 1) - len(vals)}
    both = [max(per[MIRRORS[0]][s], per[MIRRORS[1]][s])
            for s in per[MIRRORS[0]] if s in per[MIRRORS[1]]]
    out["both"] = {"p50": pct(both, 50), "p99": pct(both, 99),
                   "max": max(both) if both else None}
    gaps = [b[0] - a[0] for a, b in zip(inside, inside[1:])]
    out["sample_ms"] = {"p50": pct(gaps, 50) * 1000.0, "p99": pct(gaps, 99) * 1000.0,
                        "n": len(inside)}
    return out


def du_bytes(path):
    r = subprocess.run(["du", "-s", "--block-size=1", path], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("du %s: %s" % (path, r.stderr.strip()))
    return int(r.stdout.split()[0])


# ---- the loopback cluster ----------------------------------------------------

def pick_ports(n):
    """n distinct ports in PORT_RANGE free on loopback now (all held open
    while choosing)."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            port = random.randint(*PORT_RANGE)
            if port in ports:
                continue
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            socks.append(s)
            ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


class Pop:
    """One popnode process of the loopback cluster: its config, store, log
    (stderr, level warn) and control socket under root/name."""

    def __init__(self, name, root, binary, ports, certs):
        self.id = name
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir, exist_ok=True)
        self.data = os.path.join(self.dir, "data")
        self.binary = binary
        self.sock = os.path.join(self.dir, "control.sock")
        self.lmtp_port, self.http_port, self.link_port = ports
        self.certs = certs
        self.peers = []
        self.extra = []
        self.proc = None
        self.logf = None
        self.log_path = os.path.join(self.dir, "popnode.log")
        self.bad_exits = []

    def write_config(self):
        lines = [
            "# written by tests/bench/replication.py",
            "node_id %s" % self.id,
            "data_dir %s" % self.data,
            "log stderr",
            "log_level warn",
            "control_socket %s" % self.sock,
            "domain *",
            "listen lmtp 127.0.0.1:%d" % self.lmtp_port,
            "listen http 127.0.0.1:%d" % self.http_port,
            "max_sessions 1000",
            "max_sessions_per_ip 1000",
            "max_message_size 10M",
            "default_quota 0",
            "map_size 4G",
            "link_listen 127.0.0.1:%d" % self.link_port,
            "link_ca %s" % os.path.join(self.certs, "ca.pem"),
            "link_cert %s" % os.path.join(self.certs, self.id + ".pem"),
            "link_key %s" % os.path.join(self.certs, self.id + ".key"),
        ] + ["%s %s" % kv for kv in LINK_TIMERS]
        lines += ["peer %s 127.0.0.1:%d" % p for p in self.peers]
        lines += self.extra
        conf = os.path.join(self.dir, "popnode.conf")
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        return conf

    def start(self):
        conf = self.write_config()
        self.logf = open(self.log_path, "a")
        self.proc = subprocess.Popen([self.binary, "-c", conf], stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited (%s):\n%s" % (self.id, self.proc.returncode,
                                                            self.log_tail()))
            try:
                socket.create_connection(("127.0.0.1", self.lmtp_port), timeout=1).close()
                lag_once(self.sock)
                return
            except (OSError, RuntimeError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("%s not ready after %.0f s:\n%s" % (self.id, timeout,
                                                                       self.log_tail()))
            time.sleep(0.05)

    def stop(self, timeout=35.0):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log("%s did not exit on SIGTERM within %.0f s; killing it" % (self.id, timeout))
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc.returncode not in (0, -signal.SIGKILL):
            log("%s exited with status %s" % (self.id, self.proc.returncode))
            self.bad_exits.append("%s exited with status %s after SIGTERM"
                                  % (self.id, self.proc.returncode))
        self.proc = None
        if self.logf is not None:
            self.logf.close()
            self.logf = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def log_problems(self):
        """Errors, and warnings other than the link's and failed
        replication streams (a POP the bench stops or restarts is reported
        down by its peers, as it should be)."""
        try:
            with open(self.log_path, errors="replace") as f:
                return [l for l in f if " level=error " in l or
                        (" level=warn " in l and " event=link." not in l and
                         " event=repl.stream_failed " not in l)]
        except OSError:
            return []


class LoopCluster:
    """pop1..pop3 on loopback; pop1 pins mirrors pop2 pop3."""

    name = "loopback"

    def __init__(self, binary, popctl, parent, ack):
        self.tmp = tempfile.mkdtemp(prefix="bench-repl-", dir=parent)
        self.binary, self.popctl_bin = os.path.abspath(binary), os.path.abspath(popctl)
        certs = os.path.join(self.tmp, "certs")
        for args in [["ca", certs]] + [["node", certs, p] for p in POPS]:
            r = subprocess.run(["sh", LINK_CERTS] + args, capture_output=True, text=True,
                               timeout=60)
            if r.returncode != 0:
                raise RuntimeError("deploy/link-certs %s: %s" % (args[0], r.stdout + r.stderr))
        ports = pick_ports(3 * len(POPS))
        self.pops = {p: Pop(p, self.tmp, self.binary, ports[3 * k:3 * k + 3], certs)
                     for k, p in enumerate(POPS)}
        for p in self.pops.values():
            p.peers = [(q.id, q.link_port) for q in self.pops.values() if q is not p]
        self.set_ack_config(ack)

    def set_ack_config(self, ack):
        self.ack = ack
        self.pops["pop1"].extra = ["mirrors pop2 pop3", "replication_ack %s" % ack]

    def sock(self, name):
        return self.pops[name].sock

    def data_dir(self, name):
        return self.pops[name].data

    def start(self):
        for p in self.pops.values():
            p.start()
        for p in self.pops.values():
            p.wait_ready()

    def add_users(self):
        for u in USERS:
            r = subprocess.run([self.popctl_bin, "-s", self.sock("pop1"), "user", "add", u,
                                "--home", "pop1", "--hash-stdin"], input=bench.PASSWORD_HASH
                               + "\n", capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                raise RuntimeError("popctl user add %s: %s" % (u, r.stdout + r.stderr))

    def connect_lmtp(self):
        return socket.create_connection(("127.0.0.1", self.pops["pop1"].lmtp_port), timeout=10)

    def stop_pop(self, name):
        self.pops[name].stop()

    def start_pop(self, name):
        p = self.pops[name]
        p.start()
        p.wait_ready()

    def restart_origin(self, ack):
        self.stop_pop("pop1")
        self.set_ack_config(ack)
        self.start_pop("pop1")

    def dead(self):
        """The POPs that should run and do not."""
        return [p.id for p in self.pops.values() if p.proc is not None and not p.alive()]

    def log_tails(self):
        return {p.id: p.log_tail() for p in self.pops.values()}

    def problems(self):
        return {p.id: p.bad_exits + p.log_problems() for p in self.pops.values()}

    def cleanup(self, keep):
        """Stop every POP; the bad exits of the final stop."""
        before = {p.id: len(p.bad_exits) for p in self.pops.values()}
        for p in self.pops.values():
            p.stop()
        if keep:
            log("kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return [e for p in self.pops.values() for e in p.bad_exits[before[p.id]:]]


# ---- the netns lab -----------------------------------------------------------

class NetnsCluster:
    """deploy/lab up --netns --pops 3, reconfigured: pop1 pins mirrors pop2
    pop3 and listens for LMTP on 127.0.0.1:2424 in its namespace (the load
    runs there, so the client's path adds no delay), map_size 2G, the same
    link timers as the loopback cluster; and a one-way delay of delay_ms
    on every packet arriving over the veths between pop1 and pop2, pop1
    and pop3 (bin/nfqdelay, one per direction)."""

    name = "netns"
    LMTP_PORT = 2424
    MARK = "# below: tests/bench/replication.py"

    def __init__(self, binary, popctl, parent, ack, delay_ms, tcp_cc=None):
        import anycast  # (tests/bench/anycast.py: the lab driver, in_netns; loads deploy/lab)
        self.an = anycast
        self.tmp = tempfile.mkdtemp(prefix="bench-repl-netns-", dir=parent)
        os.makedirs(os.path.join(self.tmp, "run"))
        self.lab = anycast.Lab(os.path.join(self.tmp, "lab"), binary, popctl,
                               os.path.join(self.tmp, "run"))
        self.popctl_bin = os.path.abspath(popctl)
        self.delay_ms = delay_ms
        self.tcp_cc = tcp_cc
        self.ack = ack
        self.nfq = []
        self.up_done = False
        self.cleaned = False
        self.nfqdelay = self.lab.env.get("NFQDELAY_BIN") or os.path.join(ROOT, "bin", "nfqdelay")

    def sock(self, name):
        return os.path.join(self.lab.pop_dir(int(name[3:])), "control.sock")

    def data_dir(self, name):
        return self.lab.data_dir(int(name[3:]))

    def conf(self, name):
        return self.lab.conf(int(name[3:]))

    def edit_config(self, name):
        path = self.conf(name)
        with open(path) as f:
            lines = f.read().splitlines()
        if self.MARK in lines:			# written by an earlier edit_config
            lines = lines[:lines.index(self.MARK) - 1]
        drop = {"map_size", "log_level", "mirrors", "replication_ack"} | {k for k, _ in LINK_TIMERS}
        keep = [l for l in lines if not l.split() or l.split()[0] not in drop
                or l.startswith("#")]
        keep += ["", self.MARK, "map_size 2G", "log_level warn"]
        keep += ["%s %s" % kv for kv in LINK_TIMERS]
        if name == "pop1":
            keep += ["listen lmtp 127.0.0.1:%d" % self.LMTP_PORT, "mirrors pop2 pop3",
                     "replication_ack %s" % self.ack]
        with open(path + ".tmp", "w") as f:
            f.write("\n".join(keep) + "\n")
        os.replace(path + ".tmp", path)

    def start(self):
        """Up with no uplink delay (the load runs inside pop1's namespace),
        then every POP stopped, reconfigured, the link delays put in
        place, and the POPs started again: their link connections are
        made over the delayed path.  (Made before, a connection's TCP
        would have learnt a minimum RTT of microseconds; BBR, this
        kernel's default, then drops to 4 packets a round trip for 200 ms
        when that minimum expires 10 s later: a lag spike that is the
        test's doing.)  tcp_cc: the namespaces' TCP congestion control for
        the connections made from then on."""
        self.up_done = True
        self.lab.up(3, "0,0,0")
        for p in POPS:
            self.lab.lab("stop", p)
        for p in POPS:
            self.edit_config(p)
        if self.tcp_cc:
            self.set_tcp_cc()
        self.add_delays()
        for p in POPS:
            self.lab.lab("start", p)

    def set_tcp_cc(self):
        """The namespaces' default TCP congestion control.  "auto": cubic
        (Linux's default), else reno where a namespace may not choose
        cubic (only what net.ipv4.tcp_allowed_congestion_control lists
        can be chosen outside the host's own namespace)."""
        want = ["cubic", "reno"] if self.tcp_cc == "auto" else [self.tcp_cc]
        err = ""
        for cc in want:
            for i in range(1, len(POPS) + 1):
                r = subprocess.run(["ip", "netns", "exec", self.an.ns_pop(i), "sysctl", "-q",
                                    "-w", "net.ipv4.tcp_congestion_control=%s" % cc],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    err = "%s in %s: %s" % (cc, self.an.ns_pop(i), r.stderr.strip())
                    break
            else:
                self.tcp_cc = cc
                return
        raise RuntimeError("cannot set the TCP congestion control: %s" % err)

    def add_delays(self):
        """nfqdelay on the veths pop1 <-> pop2 and pop1 <-> pop3, on the
        receiving side of each direction (PREROUTING, as deploy/lab does)."""
        if not os.access(self.nfqdelay, os.X_OK):
            raise Unavailable("%s not found (make nfqdelay)" % self.nfqdelay)
        ns = self.an.ns_pop
        legs = [(1, 2), (2, 1), (1, 3), (3, 1)]	# (namespace of POP i, packets from POP j)
        for q, (i, j) in enumerate(legs, start=201):
            for tool in ("iptables", "ip6tables"):
                r = subprocess.run(["ip", "netns", "exec", ns(i), tool, "-w", "-t", "mangle",
                                    "-A", "PREROUTING", "-i", "lk%d" % j, "-j", "NFQUEUE",
                                    "--queue-num", str(q), "--queue-bypass"],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    raise RuntimeError("%s NFQUEUE rule in %s: %s" % (tool, ns(i),
                                                                      r.stderr.strip()))
            logp = os.path.join(self.tmp, "nfqdelay-%d-from-%d.log" % (i, j))
            lf = open(logp, "ab")
            p = subprocess.Popen(["ip", "netns", "exec", ns(i), self.nfqdelay, "--queue",
                                  str(q), "--delay-ms", str(self.delay_ms)],
                                 stdin=subprocess.DEVNULL, stdout=lf, stderr=lf,
                                 start_new_session=True)
            lf.close()
            self.nfq.append((p, logp))
        deadline = time.monotonic() + 5
        for p, logp in self.nfq:
            while True:
                if p.poll() is not None:
                    raise RuntimeError("nfqdelay exited (%s): %s" % (p.returncode,
                                                                     open(logp).read()[-500:]))
                with open(logp, "rb") as f:
                    if b": running" in f.read():
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("nfqdelay did not bind its queue in 5 s")
                time.sleep(0.02)

    def ping_rtt(self, j):
        """ms of a ping from lab-pop1 to POP j's link address (average of
        3).  -U: user to user; ping's default, the kernel's receive
        timestamp, is taken before the reply is held in PREROUTING and
        would show only one way's delay."""
        r = subprocess.run(["ip", "netns", "exec", self.an.ns_pop(1), "ping", "-U", "-c", "3",
                            "-i", "0.2", "-q", "10.98.0.%d" % j], capture_output=True,
                           text=True, timeout=30)
        for line in r.stdout.splitlines():
            if "min/avg/max" in line:
                return float(line.split("=")[1].split("/")[1])
        return None

    def add_users(self):
        for u in USERS:
            self.lab.popctl(1, "user", "add", u, "--home", "pop1", "--hash-stdin",
                            input=bench.PASSWORD_HASH + "\n")

    def connect_lmtp(self):
        with self.an.in_netns(self.an.ns_pop(1)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.settimeout(10)
            s.connect(("127.0.0.1", self.LMTP_PORT))
        except OSError:
            s.close()
            raise
        return s

    def stop_pop(self, name):
        self.lab.lab("stop", name)

    def start_pop(self, name):
        self.lab.lab("start", name)

    def restart_origin(self, ack):
        self.stop_pop("pop1")
        self.ack = ack
        self.edit_config("pop1")
        self.start_pop("pop1")

    def dead(self):
        """The POPs that deploy/lab status shows stopped."""
        r = self.lab.lab("status", check=False)
        return [p for p in POPS if any(l.split()[:1] == [p] and "stopped" in l
                                       for l in r.stdout.splitlines())]

    def log_tails(self):
        out = {}
        for p in POPS:
            path = os.path.join(self.lab.pop_dir(int(p[3:])), "popnode.log")
            with contextlib.suppress(OSError):
                with open(path, errors="replace") as f:
                    out[p] = "".join(f.readlines()[-20:])
        return out

    def problems(self):
        return {}

    def cleanup(self, keep):
        if self.cleaned:
            return
        self.cleaned = True
        for p, _ in self.nfq:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
        for p, _ in self.nfq:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)
        if self.up_done:
            r = self.lab.down()
            if r.returncode != 0:
                log("deploy/lab down: exit %d: %s%s" % (r.returncode, r.stdout, r.stderr))
        if keep:
            log("kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# ---- measurements -------------------------------------------------------------

def wait_caught_up(cl, timeout=60.0, mirrors=MIRRORS):
    """Until pop1 shows each mirror streaming with applied == last."""
    deadline = time.monotonic() + timeout
    while True:
        rows = mirror_rows(lag_once(cl.sock("pop1")))
        if all(m in rows and rows[m]["state"] == "streaming"
               and rows[m]["applied_seq"] == rows[m]["last_seq"] for m in mirrors):
            return rows
        if time.monotonic() > deadline:
            raise RuntimeError("mirrors not caught up after %.0f s: %s" % (
                timeout, {m: (r["state"], r["applied_seq"], r["last_seq"], r["last_error"])
                          for m, r in rows.items()}))
        time.sleep(0.05)


def link_rtts(cl, want_ms=0.0, timeout=0.0):
    """pop1's link RTT (ms) to each mirror from `peers format=json`; with
    want_ms, wait up to timeout until each is at least that (the PING
    runs every second)."""
    deadline = time.monotonic() + timeout
    while True:
        c = Ctl(cl.sock("pop1"))
        try:
            doc = json.loads(c.request("peers", "format=json"))
        finally:
            c.close()
        rtts = {p["id"]: p.get("rtt_ms") for p in doc.get("peers", []) if p.get("id") in MIRRORS}
        if all(isinstance(rtts.get(m), (int, float)) and rtts[m] >= want_ms for m in MIRRORS) \
                or time.monotonic() > deadline:
            return rtts
        time.sleep(0.2)


class RttWatch(threading.Thread):
    """pop1's link RTT to each mirror (`peers format=json`, rtt_ms: the
    last HTTP/2 PING, one a second) read every 0.25 s while a run lasts."""

    def __init__(self, cl):
        super().__init__(daemon=True)
        self.cl = cl
        self.stop_evt = threading.Event()
        self.vals = {m: [] for m in MIRRORS}

    def run(self):
        while not self.stop_evt.is_set():
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                for m, v in link_rtts(self.cl).items():
                    if isinstance(v, (int, float)):
                        self.vals[m].append(v)
            self.stop_evt.wait(0.25)

    def stop(self):
        self.stop_evt.set()
        self.join(5)
        return ({m: min(v) if v else None for m, v in self.vals.items()},
                {m: pct(v, 50) for m, v in self.vals.items()})


def measure_lag(cl, args, seconds, label):
    """One lag run at the cluster's current replication_ack."""
    wait_caught_up(cl)
    watch = RttWatch(cl)
    watch.start()
    sampler = Sampler(cl.sock("pop1"), args.sample_ms / 1000.0)
    try:
        time.sleep(1.0)		# at least one PING before the load
        load = paced_load(cl.connect_lmtp, args.rate, seconds, args.conns, args.size)
        # keep sampling until both mirrors have the last record (or 10 s)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = mirror_rows(lag_once(cl.sock("pop1")))
            if all(rows.get(m, {}).get("applied_seq") == rows.get(m, {}).get("last_seq")
                   for m in MIRRORS):
                break
            time.sleep(0.02)
        time.sleep(0.05)
    finally:
        samples = sampler.stop()
        rtts, rtts_p50 = watch.stop()
    if load["ok"] == 0:
        raise RuntimeError("%s: no delivery succeeded (%s)" % (label, load["first_error"]))
    ends = sorted(load["ends"])
    measured = [t for t in ends if t >= load["t0"] + WARMUP_S]
    window = load["t0"] + seconds - (load["t0"] + WARMUP_S)
    fig = lag_figures(samples, load["t0"] + WARMUP_S, load["t0"] + seconds)
    fig.update({
        "ack": cl.ack, "seconds": seconds, "rate_goal": args.rate,
        "rate": len(measured) / window if window > 0 else None,
        "delivered": load["ok"], "errors": load["errors"], "first_error": load["first_error"],
        "lmtp_p50": pct(load["lat"], 50), "lmtp_p99": pct(load["lat"], 99),
        "lmtp_max": max(load["lat"]) if load["lat"] else None,
        "rtt_ms": rtts, "rtt_p50_ms": rtts_p50,
    })
    log("%s: %d delivered (%d errors%s) in %.0f s, %.1f/s measured; LMTP 250 p50 %.2f p99 "
        "%.2f ms; lag p50/p99/max pop2 %s, pop3 %s, both %s ms (%d records; a sample every "
        "%.2f ms p50, %.2f p99); RTT %s" % (
            label, load["ok"], load["errors"],
            ": " + load["first_error"] if load["first_error"] else "", seconds,
            fig["rate"] or 0, fig["lmtp_p50"] or 0, fig["lmtp_p99"] or 0,
            tri(fig["pop2"]), tri(fig["pop3"]), tri(fig["both"]), fig["records"],
            fig["sample_ms"]["p50"], fig["sample_ms"]["p99"], rtts))
    return fig


def tri(d):
    return "/".join("-" if d.get(k) is None else "%.1f" % d[k] for k in ("p50", "p99", "max"))


class Starter(threading.Thread):
    """Start a POP in the background (the caller watches pop1 meanwhile);
    .error holds what went wrong."""

    def __init__(self, cl, name):
        super().__init__(daemon=True)
        self.cl, self.name, self.error = cl, name, None
        self.start()

    def run(self):
        try:
            self.cl.start_pop(self.name)
        except Exception as e:  # noqa: BLE001  (reported by the caller)
            self.error = "%s did not start: %s" % (self.name, e)

    def finish(self):
        self.join(60)
        if self.error:
            raise RuntimeError(self.error)


def poll_until(cl, pred, timeout, interval=0.005, also=None, starter=None):
    """Ask pop1 `lag` every interval s until pred(rows) is true, timeout
    s pass or starter failed; returns [(t, rows, docs)], docs the answers
    of the control sockets in `also` asked in the same round (None where
    one did not answer)."""
    c = Ctl(cl.sock("pop1"))
    seen = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            t = time.monotonic()
            try:
                rows = mirror_rows(c.lag())
            except (OSError, RuntimeError, ValueError):
                c.close()
                time.sleep(0.05)
                c = Ctl(cl.sock("pop1"))
                continue
            docs = []
            for path in (also or []):
                try:
                    docs.append(lag_once(path))
                except (OSError, RuntimeError, ValueError):
                    docs.append(None)
            seen.append((t, rows, docs))
            if pred(rows) or t > deadline or (starter is not None and starter.error):
                return seen
            time.sleep(interval)
    finally:
        c.close()


def measure_catchup(cl, args, mb, label, wait_pop2=True):
    """Stop pop3, deliver mb MB of 100 KB messages to pop1, start pop3 and
    time its catch-up.  wait_pop2: let pop2 catch up first, so that pop3
    has pop1 to itself (on loopback, where pop2 would take CPU)."""
    wait_caught_up(cl)
    cl.stop_pop("pop3")
    count = max(1, int(mb * MB / args.catchup_size))
    fill_s, nbytes = bulk_fill(cl.connect_lmtp, count, args.catchup_size)
    log("%s: pop3 stopped; %d x %d bytes delivered to pop1 in %.1f s (%.0f MB/s, with pop2 "
        "mirroring)" % (label, count, args.catchup_size, fill_s, nbytes / MB / fill_s))
    if wait_pop2:
        wait_caught_up(cl, mirrors=("pop2",), timeout=120)
    rows = mirror_rows(lag_once(cl.sock("pop1")))
    last, a0 = rows["pop3"]["last_seq"], rows["pop3"]["applied_seq"]
    t0 = time.monotonic()
    st = Starter(cl, "pop3")
    seen = poll_until(cl, lambda r: r.get("pop3", {}).get("applied_seq", 0) >= last,
                      args.catchup_timeout, starter=st)
    st.finish()
    t_done = seen[-1][0]
    done = seen[-1][1].get("pop3", {}).get("applied_seq", 0) >= last
    if not done:
        raise RuntimeError("%s: pop3 not caught up %.0f s after its restart (applied %s of %d)"
                           % (label, args.catchup_timeout,
                              seen[-1][1].get("pop3", {}).get("applied_seq"), last))
    # the stream is open again: the first answer after the restart that
    # shows pop3 streaming (pop1 saw it go down when its process exited)
    t_stream = next((t for t, r, _ in seen if r.get("pop3", {}).get("state") == "streaming"
                     and t > t0), None)
    t_first = next((t for t, r, _ in seen if r["pop3"]["applied_seq"] > a0), None)
    out = {"mb": nbytes / MB, "messages": count, "size": args.catchup_size, "records": last - a0,
           "fill_s": fill_s, "restart_to_done_s": t_done - t0,
           "restart_to_stream_s": None if t_stream is None else t_stream - t0,
           "restart_to_first_ack_s": None if t_first is None else t_first - t0}
    out["mbps_total"] = out["mb"] / out["restart_to_done_s"]
    out["mbps_stream"] = (out["mb"] / (t_done - t_stream)
                          if t_stream is not None and t_done > t_stream else None)
    log("%s: pop3 caught up %d records (%.0f MB) %.2f s after its restart: stream open after "
        "%s s, first ack after %s s; %.0f MB/s while streaming, %.0f MB/s from the restart"
        % (label, out["records"], out["mb"], out["restart_to_done_s"],
           "-" if t_stream is None else "%.2f" % out["restart_to_stream_s"],
           "-" if t_first is None else "%.2f" % out["restart_to_first_ack_s"],
           out["mbps_stream"] or 0, out["mbps_total"]))
    return out


def measure_snapshot(cl, args, label):
    """Stop pop3, delete its copy of pop1, start it; until caught up."""
    wait_caught_up(cl)
    cl.stop_pop("pop3")
    mdir = os.path.join(cl.data_dir("pop3"), "mirror", "pop1")
    if not os.path.isdir(mdir):
        raise RuntimeError("%s does not exist: where does pop3 keep its copy of pop1?" % mdir)
    # pop1's store: its data_dir without its own mirror copies of pop2's
    # and pop3's (small) changelogs
    size = du_bytes(cl.data_dir("pop1"))
    own_mirrors = os.path.join(cl.data_dir("pop1"), "mirror")
    if os.path.isdir(own_mirrors):
        size -= du_bytes(own_mirrors)
    copy = du_bytes(mdir)
    shutil.rmtree(mdir)
    rows = mirror_rows(lag_once(cl.sock("pop1")))
    last = rows["pop3"]["last_seq"]
    t0 = time.monotonic()
    st = Starter(cl, "pop3")

    was_down = []	# pop1 saw pop3's stream end: its applied_seq is no longer the old one

    def done(r):
        x = r.get("pop3", {})
        if x.get("state") != "streaming":
            was_down.append(True)
        return bool(was_down) and x.get("applied_seq", 0) >= last and \
            x.get("state") == "streaming"
    seen = poll_until(cl, done, args.snapshot_timeout, interval=0.01, also=[cl.sock("pop3")],
                      starter=st)
    st.join(60)		# a pop3 that does not start: "not available", with why
    snap_times = []
    for t, r, docs in seen:
        states = [r.get("pop3", {}).get("state")]
        for d in docs:
            if d is not None:
                states += [o.get("state") for o in origin_rows(d).values()]
        if "snapshotting" in states:
            snap_times.append(t)
    out = {"store_mb": size / MB, "mirror_copy_mb": copy / MB, "records": last,
           "snapshot_seen": bool(snap_times), "caught_up": done(seen[-1][1])}
    t_done = seen[-1][0]
    out["restart_to_done_s"] = t_done - t0 if out["caught_up"] else None
    if snap_times:
        out["snapshot_from_s"] = snap_times[0] - t0
        out["snapshot_until_s"] = snap_times[-1] - t0
    if out["caught_up"] and snap_times:
        out["mbps_total"] = out["store_mb"] / out["restart_to_done_s"]
        out["mbps_snapshot"] = out["store_mb"] / max(1e-3, t_done - snap_times[0])
        out["available"] = True
        log("%s: snapshot: pop3 resynced pop1's store (%.0f MB by du) %.2f s after its restart "
            "(snapshotting from %.2f s to %.2f s): %.0f MB/s from the start of the snapshot, "
            "%.0f MB/s from the restart" % (label, out["store_mb"], out["restart_to_done_s"],
                                             out["snapshot_from_s"], out["snapshot_until_s"],
                                             out["mbps_snapshot"], out["mbps_total"]))
    else:
        out["available"] = False
        if st.error:
            out["reason"] = st.error
        elif out["caught_up"]:
            out["reason"] = ("\"snapshotting\" never showed: pop3 caught up by replaying "
                             "pop1's changelog from seq 1 (%d records, %.0f MB store) in "
                             "%.2f s" % (last, out["store_mb"], out["restart_to_done_s"]))
        else:
            x = seen[-1][1].get("pop3", {})
            out["reason"] = ("pop3 not caught up %.0f s after its restart (state %s, applied "
                             "%s of %d, error %s)%s" % (
                                 args.snapshot_timeout, x.get("state"), x.get("applied_seq"),
                                 last, x.get("last_error"),
                                 "; snapshotting showed" if snap_times else
                                 "; snapshotting never showed"))
        log("%s: snapshot: not available: %s" % (label, out["reason"]))
    return out


# ---- one cluster, every part ----------------------------------------------------

def run_cluster(cl, args, res, key, seconds, catchup_mb, snapshot):
    """Lag at ack local and ack mirror, catch-up, (snapshot) on cl.
    Results go to res[key][...]; errors to res["errors"]."""
    t = time.monotonic()
    try:
        cl.start()
        cl.add_users()
        wait_caught_up(cl)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        raise StartFailed(str(e))
    out = res.setdefault(key, {})
    if key == "netns":
        rtts = link_rtts(cl, want_ms=1.8 * args.delay_ms, timeout=15)
        out["ping_ms"] = {m: cl.ping_rtt(int(m[3:])) for m in MIRRORS}
        log("netns: delay %d ms one way on pop1 <-> pop2, pop3; link RTT %s ms, ping %s ms"
            % (args.delay_ms, rtts, out["ping_ms"]))
    log("%s: 3 POPs up, mirrors streaming, %.1f s" % (key, time.monotonic() - t))
    # replication_ack mirror (the default) first, then pop1 restarted with
    # local, which the catch-up keeps: there the backlog is delivered at
    # pop1's own speed, not at the pace of pop2's acks
    parts = [("mirror", lambda: measure_lag(cl, args, seconds, "%s ack mirror" % key)),
             ("local", lambda: (cl.restart_origin("local"),
                                measure_lag(cl, args, seconds, "%s ack local" % key))[1]),
             ("catchup", lambda: measure_catchup(cl, args, catchup_mb, "%s catch-up" % key,
                                                 wait_pop2=key == "loopback"))]
    if snapshot:
        parts.append(("snapshot", lambda: measure_snapshot(cl, args, "%s" % key)))
    for name, fn in parts:
        dead = cl.dead()
        if dead:
            res["errors"].append("%s %s: skipped, %s not running" % (key, name, ", ".join(dead)))
            continue
        try:
            out[name] = fn()
        except (RuntimeError, OSError, ValueError, KeyError, subprocess.SubprocessError) as e:
            res["errors"].append("%s %s: %s" % (key, name, e))
            log("%s %s: FAILED: %s" % (key, name, e))
            continue
        for m in MIRRORS if name in ("local", "mirror") else ():
            if out[name][m]["never"]:
                res["notes"].append("%s ack %s: %d records were not acked by %s within 10 s "
                                    "of the end of the load (left out of its figures)"
                                    % (key, name, out[name][m]["never"], m))
    for pop, lines in cl.problems().items():
        if lines:
            res["notes"].append("%s %s logged %d warnings/errors, first: %s"
                                % (key, pop, len(lines), lines[0].strip()[:300]))


def netns_skip_reason(args):
    if args.no_netns:
        return "--no-netns"
    if os.geteuid() != 0:
        return "needs root (network namespaces, iptables, BIRD)"
    missing = [t for t in ("ip", "bird", "birdc", "iptables", "ip6tables", "ping")
               if shutil.which(t) is None]
    if missing:
        return "%s not installed (./configure --install-deps)" % ", ".join(missing)
    nfq = os.environ.get("NFQDELAY_BIN") or os.path.join(ROOT, "bin", "nfqdelay")
    if not os.access(nfq, os.X_OK):
        return "%s not built (make nfqdelay)" % nfq
    try:
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                               timeout=10).stdout.split()
    except (OSError, subprocess.SubprocessError) as e:
        return "ip netns list: %s" % e
    taken = sorted(n for n in names if n.startswith("lab-"))
    if taken:
        return "namespaces of another netns lab exist (%s; deploy/lab down)" % ", ".join(taken)
    return None


# ---- the tables -------------------------------------------------------------------

def num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def f1(v, d=1):
    return "n/a" if not num(v) else "%.*f" % (d, v)


def table(rows):
    w = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    out = []
    for k, r in enumerate(rows):
        out.append(("  ".join(r[c].ljust(w[c]) if c == 0 or c >= len(r) - 2 else
                              r[c].rjust(w[c]) for c in range(len(r)))).rstrip())
        if k == 0:
            out.append("-" * len(out[0]))
    return "\n".join(out)


def lag_table(res, args):
    cols = []
    for key in ("loopback", "netns"):
        for ack in ("local", "mirror"):
            if key in res and ack in res[key]:
                cols.append((key, ack, res[key][ack]))
    if not cols:
        return None, []
    verdicts = []
    head = ["lag under load (%d deliveries/s x %d KB)" % (args.rate, args.size // 1024)] + \
        ["%s/%s" % (k, a) for k, a, _ in cols] + ["goal", "met?"]
    rows = [head]

    def add(label, vals, goal="", met=""):
        rows.append([label] + vals + [goal, met])

    add("deliveries/s achieved", [f1(f["rate"]) for _, _, f in cols], ">= %d" % args.rate,
        "met" if all(num(f["rate"]) and f["rate"] >= 0.98 * args.rate for _, _, f in cols)
        else "MISSED")
    add("LMTP 250 latency p50 (ms)", [f1(f["lmtp_p50"], 2) for _, _, f in cols])
    add("LMTP 250 latency p99 (ms)", [f1(f["lmtp_p99"], 2) for _, _, f in cols])
    for m in MIRRORS:
        add("link RTT pop1->%s (ms)" % m, [f1(f["rtt_ms"].get(m), 2) for _, _, f in cols])
    for who in MIRRORS + ("both",):
        name = who if who != "both" else "both (later of the two)"
        add("lag %s p50 (ms)" % name, [f1(f[who]["p50"]) for _, _, f in cols])
        miss = []
        vals = []
        for k, a, f in cols:
            rtt = max(f["rtt_ms"].get(m) or 0 for m in MIRRORS) if who == "both" \
                else (f["rtt_ms"].get(who) or 0)
            goal = rtt + LAG_GOAL_MS
            v = f[who]["p99"]
            vals.append(f1(v))
            if not num(v) or v >= goal:
                miss.append("%s/%s" % (k, a))
        met = "met" if not miss else "MISSED (%s)" % ", ".join(miss)
        verdicts.append(met)
        add("lag %s p99 (ms)" % name, vals, "< RTT + %g ms" % LAG_GOAL_MS, met)
        add("lag %s max (ms)" % name, [f1(f[who]["max"]) for _, _, f in cols])
    add("  goal: RTT + %g ms (ms)" % LAG_GOAL_MS,
        [f1(max(f["rtt_ms"].get(m) or 0 for m in MIRRORS) + LAG_GOAL_MS) for _, _, f in cols])
    add("  records measured", ["%d" % f["records"] for _, _, f in cols])
    add("  lag sample interval p50/p99 (ms)",
        ["%.2f/%.2f" % (f["sample_ms"]["p50"], f["sample_ms"]["p99"]) for _, _, f in cols])
    return table(rows), verdicts


def catchup_table(res, args):
    cols = [(k, res[k]["catchup"]) for k in ("loopback", "netns")
            if k in res and "catchup" in res[k]]
    snap = res.get("loopback", {}).get("snapshot")
    if not cols and snap is None:
        return None
    head = ["catch-up and resync"] + [k for k, _ in cols] + ["goal", "met?"]
    if not cols:
        head = ["catch-up and resync", "loopback", "goal", "met?"]
    rows = [head]
    n = max(1, len(cols))

    def add(label, vals, goal="", met=""):
        rows.append([label] + vals + ["" for _ in range(n - len(vals))] + [goal, met])

    if cols:
        add("backlog while pop3 was stopped (MB)", [f1(c["mb"], 0) for _, c in cols])
        add("  100 KB messages / changelog records",
            ["%d/%d" % (c["messages"], c["records"]) for _, c in cols])
        add("  delivered to pop1 in (s)", [f1(c["fill_s"]) for _, c in cols])
        add("restart -> stream open (s)", [f1(c["restart_to_stream_s"], 2) for _, c in cols])
        add("restart -> caught up (s)", [f1(c["restart_to_done_s"], 2) for _, c in cols])
        lb = dict(cols).get("loopback")
        met = "n/a" if lb is None or not num(lb["mbps_stream"]) else (
            "met" if lb["mbps_stream"] >= CATCHUP_GOAL_MBPS else "MISSED")
        add("catch-up MB/s while streaming", [f1(c["mbps_stream"], 0) for _, c in cols],
            ">= %g (loopback)" % CATCHUP_GOAL_MBPS, met)
        add("catch-up MB/s from the restart", [f1(c["mbps_total"], 0) for _, c in cols])
    if snap is not None:
        if snap.get("available"):
            add("snapshot: pop1's store (du, MB)", [f1(snap["store_mb"], 0)])
            add("  pop3's copy deleted (du, MB)", [f1(snap["mirror_copy_mb"], 0)])
            add("restart -> snapshotting (s)", [f1(snap["snapshot_from_s"], 2)])
            add("restart -> caught up (s)", [f1(snap["restart_to_done_s"], 2)])
            add("snapshot MB/s (store / from snapshotting)", [f1(snap["mbps_snapshot"], 0)])
            add("snapshot MB/s (store / from the restart)", [f1(snap["mbps_total"], 0)])
        else:
            add("snapshot", ["not available"])
    return table(rows)


# ---- main -------------------------------------------------------------------------

def tcp_cc():
    try:
        with open("/proc/sys/net/ipv4/tcp_congestion_control") as f:
            return f.read().strip()
    except OSError:
        return "?"


def version_of(binary):
    out = []
    for cmd in ([binary, "--version"], ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            if r.returncode == 0 and r.stdout.strip():
                out.append(r.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    return " git ".join(out) or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--popnode", default=os.path.join(ROOT, "bin", "popnode"))
    ap.add_argument("--popctl", default=os.path.join(ROOT, "bin", "popctl"))
    ap.add_argument("--rate", type=float, default=500.0, help="deliveries per second")
    ap.add_argument("--seconds", type=float, default=20.0, help="lag run, loopback")
    ap.add_argument("--netns-seconds", type=float, default=15.0, help="lag run, netns")
    ap.add_argument("--conns", type=int, default=32, help="LMTP connections of the lag load")
    ap.add_argument("--size", type=int, default=4096, help="bytes per lag message")
    ap.add_argument("--sample-ms", type=float, default=1.0, help="lag sampling interval")
    ap.add_argument("--catchup-mb", type=float, default=200.0)
    ap.add_argument("--netns-catchup-mb", type=float, default=50.0)
    ap.add_argument("--catchup-size", type=int, default=102400)
    ap.add_argument("--catchup-timeout", type=float, default=120.0)
    ap.add_argument("--snapshot-timeout", type=float, default=60.0)
    ap.add_argument("--delay-ms", type=int, default=20,
                    help="netns: one-way delay between pop1 and each mirror")
    ap.add_argument("--netns-tcp-cc", default="auto",
                    help="TCP congestion control in the lab's namespaces: auto (cubic, else "
                         "reno), a name, or \"default\" (the kernel's, e.g. bbr)")
    ap.add_argument("--no-netns", action="store_true", help="skip the netns lab")
    ap.add_argument("--no-loopback", action="store_true", help="skip the loopback cluster")
    ap.add_argument("--json", default=os.path.join(ROOT, "build", "bench", "replication.json"))
    ap.add_argument("--tmpdir", default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if (args.rate <= 0 or args.seconds <= WARMUP_S + 1 or args.netns_seconds <= WARMUP_S + 1
            or args.conns < 1 or args.size < 512 or args.sample_ms <= 0
            or args.catchup_mb <= 0 or args.netns_catchup_mb <= 0
            or args.catchup_size < 1024 or args.delay_ms < 0):
        ap.error("bad --rate/--seconds/--conns/--size/--sample-ms/--catchup-*/--delay-ms")
    for p in (args.popnode, args.popctl):
        if not os.access(p, os.X_OK):
            ap.error("%s not found or not executable (make all)" % p)

    def on_signal(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    started = time.monotonic()
    load_before = bench.loadavg()
    res = {"errors": [], "notes": []}
    version = version_of(os.path.abspath(args.popnode))

    cl = None
    try:
        if args.no_loopback:
            raise Unavailable("--no-loopback")
        cl = LoopCluster(args.popnode, args.popctl, args.tmpdir, "mirror")
        log("loopback: 3 POPs in %s" % cl.tmp)
        run_cluster(cl, args, res, "loopback", args.seconds, args.catchup_mb, True)
    except Unavailable as e:
        res["loopback_skipped"] = str(e)
    except KeyboardInterrupt:
        log("interrupted")
        if cl is not None:
            cl.cleanup(args.keep)
        return 130
    except (StartFailed, RuntimeError, OSError, subprocess.SubprocessError) as e:
        res["errors"].append("loopback setup: %s" % e)
        log("loopback setup FAILED: %s" % e)
        if cl is not None:
            for p, tail in cl.log_tails().items():
                if tail:
                    sys.stderr.write("--- %s log ---\n%s" % (p, tail))
    finally:
        if cl is not None:
            for e in cl.cleanup(args.keep):
                res["notes"].append("loopback: %s" % e)

    skip = netns_skip_reason(args)
    if skip is None:
        nc = None
        try:
            nc = NetnsCluster(args.popnode, args.popctl, args.tmpdir, "mirror", args.delay_ms,
                              None if args.netns_tcp_cc == "default" else args.netns_tcp_cc)
            log("netns: 3-POP lab in %s" % nc.tmp)
            try:
                run_cluster(nc, args, res, "netns", args.netns_seconds, args.netns_catchup_mb,
                            False)
            except Unavailable as e:
                skip = str(e)
            except StartFailed as e:
                lines = [l for l in str(e).strip().splitlines() if l.strip()]
                skip = "the netns lab did not start: %s" % (lines[0][:300] if lines else "?")
                log("netns: the lab did not start: %s" % e)
        except KeyboardInterrupt:
            log("interrupted")
            if nc is not None:
                nc.cleanup(args.keep)
            return 130
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            res["errors"].append("netns: %s" % e)
            log("netns FAILED: %s" % e)
            if nc is not None:
                for p, tail in nc.log_tails().items():
                    if tail:
                        sys.stderr.write("--- netns %s log ---\n%s" % (p, tail))
        finally:
            if nc is not None:
                res["netns_tcp_cc"] = nc.tcp_cc or tcp_cc()
                nc.cleanup(args.keep)
    if skip is not None:
        res["netns_skipped"] = skip
        res.pop("netns_tcp_cc", None)

    lt, _ = lag_table(res, args)
    ct = catchup_table(res, args)
    print()
    where = (["loopback"] if "loopback" in res else []) + (
        ["the netns lab with %d ms one way between pop1 and each mirror" % args.delay_ms]
        if "netns" in res else [])
    print("Replication: pop1 -> mirrors pop2, pop3 (3 POPs; %s), %d CPUs, load average "
          "before: %s" % (" and ".join(where) or "nothing ran", os.cpu_count() or 0,
                          load_before))
    print("  popnode: %s; TCP congestion control %s%s" % (
        version, tcp_cc(), "" if "netns" not in res else ", in the netns lab %s"
        % res.get("netns_tcp_cc")))
    print()
    if lt:
        print(lt)
        print()
        print("lag of a record: from the first of pop1's `lag` answers (asked every %g ms) "
              "that shows it in the changelog until the first that shows the mirror's ack "
              "of it; over the records after %g s of warm-up. ack local: the 250 comes at "
              "pop1's commit; ack mirror: after the first mirror's ack (so lag p99 of the "
              "later mirror, \"both\", is the one that matters there)."
              % (args.sample_ms, WARMUP_S))
        print()
    if ct:
        print(ct)
        print()
        print("catch-up: pop3 stopped, the backlog delivered to pop1, pop3 started; \"while "
              "streaming\" counts from the moment pop1's stream to pop3 is open again.")
        snap = res.get("loopback", {}).get("snapshot")
        if snap is not None and not snap.get("available"):
            print("snapshot: not available: %s" % snap.get("reason"))
        print()
    for part in ("loopback", "netns"):
        if part + "_skipped" in res:
            print("%s: skipped: %s" % (part, res[part + "_skipped"]))
    for n in res["notes"]:
        print("note: " + n)
    for e in res["errors"]:
        print("error: " + e)
    print("(%.0f s in all)" % (time.monotonic() - started))

    out = {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(),
            "version": version, "tcp_congestion_control": tcp_cc(), "rate": args.rate,
            "seconds": args.seconds,
            "netns_seconds": args.netns_seconds, "conns": args.conns, "size": args.size,
            "sample_ms": args.sample_ms, "warmup_s": WARMUP_S,
            "catchup_mb": args.catchup_mb, "netns_catchup_mb": args.netns_catchup_mb,
            "catchup_size": args.catchup_size, "delay_ms": args.delay_ms,
            "netns_tcp_cc": args.netns_tcp_cc,
            "lag_goal": "p99 < RTT + %g ms" % LAG_GOAL_MS,
            "catchup_goal_mbps": CATCHUP_GOAL_MBPS,
            "loadavg_before": load_before, "loadavg_after": bench.loadavg(),
        },
    }
    out.update(res)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json + ".tmp", "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    os.replace(args.json + ".tmp", args.json)
    shown = os.path.relpath(args.json)
    print("results: %s" % (os.path.abspath(args.json) if shown.startswith("..") else shown))
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
