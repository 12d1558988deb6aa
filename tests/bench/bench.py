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
  4. IMAP, on the same messages delivered to both servers over LMTP (not
     timed): SELECT INBOX + FETCH 1:* (UID FLAGS ENVELOPE) on a
     10,000-message mailbox of 2-4 KB messages; FETCH 1:N BODY.PEEK[] MB/s
     on the 200 x 100 KB mailbox; SEARCH TEXT "<word>" on the 10,000
     messages (the word is in 1% of them); memory per connection with
     5,000 logged-in, INBOX-selected, idle connections.

Prints one table (popnode, dovecot, ratio popnode/dovecot, goal) and writes
it as JSON to build/bench/results.json.  When Dovecot is not installed (or
cannot run here) its column says n/a; that never fails the run.  When
popnode does not serve IMAP yet, its IMAP cells say so; that does not fail
the run either.  Any other popnode failure does: the exit status is 1.

    /usr/bin/python3 tests/bench/bench.py --popnode bin/popnode --popctl bin/popctl
        [--seconds 5] [--warmup 1] [--rounds 1] [--only LIST] [--keep]

--only takes a comma-separated list of servers (popnode, dovecot) and/or
parts (lmtp, pop3, imap), e.g. --only imap or --only dovecot,imap.
"""

import argparse
import base64
import json
import os
import platform
import random
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import datetime
from email.utils import format_datetime

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True  # keep tests/bench free of __pycache__
sys.path.insert(0, HERE)
import dovecot  # noqa: E402  (tests/bench/dovecot.py)

LOADGEN_SRC = os.path.join(HERE, "loadgen.c")
USER_PREFIX = "bench"
POP_USER = "benchpop"
IMAP_USER = "benchimap"
IDLE_PREFIX = "benchidle"
PASSWORD = "bench-password-1"
# Both servers store this same SHA-256-crypt hash of PASSWORD (1000 rounds,
# the minimum): logins cost the same little on both, and thousands of them
# (the idle-connection test) take seconds, not minutes.
PASSWORD_HASH = "$5$rounds=1000$popnodebench$rCX2VfNmuQGT6eX50/1ATYLVtSCdbH07xPpX916EOwA"
SEARCH_WORD = "quetzalcoatl"
CORPUS_SEED = 20261125
FILL_CONNS = 16
IMAP_NA_POPNODE = "n/a (IMAP not served)"
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


def memory_of(root, skip=()):
    """Summed VmRSS, VmHWM, RssAnon, Pss (KiB) over root's process tree,
    leaving out processes whose name (comm) is in skip."""
    tot = {"rss_kb": 0, "hwm_kb": 0, "anon_kb": 0, "pss_kb": 0, "processes": 0}
    for pid in proc_tree(root):
        try:
            if skip:
                with open("/proc/%d/comm" % pid) as f:
                    if f.read().strip() in skip:
                        continue
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
    """The i-th message of the 100 KB mailbox: about `size` bytes, base64
    body of pseudo-random bytes; the same bytes for both servers."""
    rng = random.Random(CORPUS_SEED * 7 + i)
    head = ("From: bench <bench@bench.test>\r\nTo: %s@bench.test\r\n"
            "Subject: pop3 bench message %d\r\nMessage-ID: <pop3.%d.%08x@bench.test>\r\n"
            "Date: %s\r\n"
            "MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
            % (POP_USER, i, i, rng.getrandbits(32), mail_date(i)))
    # base64 lines: 57 input bytes -> 76 characters + CRLF = 78 bytes.
    raw = base64.encodebytes(rng.randbytes(max(0, (size - len(head)) * 57 // 78)))
    body = raw.replace(b"\n", b"\r\n")
    return head.encode() + body


def mail_date(i):
    """A Date: value, one message every ~47 minutes from 2024-01-01."""
    t = 1704067200 + i * 2851
    return format_datetime(datetime.datetime.fromtimestamp(t, datetime.timezone.utc))


# ---- the IMAP corpus: realistic small messages ---------------------------

WORDS = """the of and to in is you that it was for on are as with his they at be this
have from or one had by word but not what all were we when your can said there use an
each which she do how their if will up other about out many then them these so some her
would make like him into time has look two more write go see number no way could people
my than first water been call who its now find long down day did get come made may part
over new sound take only little work know place year live me back give most very after
thing our just name good sentence man think say great where help through much before
line right too mean old any same tell boy follow came want show also around form three
small set put end does another well large must big even such because turn here why ask
went men read need land different home us move try kind hand picture again change off
play spell air away animal house point page letter mother answer found study still learn
should world meeting invoice budget project report review schedule quarter office server
backup release deadline agenda draft contract customer support ticket update weekend
holiday family photos garden recipe dinner train flight hotel booking payment receipt
account password newsletter offer discount delivery parcel order shipped""".split()
FIRST = ("Alice Bruno Chloe David Emma Farid Grace Hugo Ines Jonas Karin Louis Maria Nils "
         "Olga Pedro Quentin Rosa Sven Tania Ugo Vera Walter Xenia Yann Zoe").split()
LAST = ("Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau Simon "
        "Laurent Lefebvre Michel Garcia Muller Schmidt Rossi Novak Silva").split()
UTF8_WORDS = ["café", "naïve", "déjà", "über", "señor", "Zürich", "crème", "façade"]


def _addr(rng):
    f, l = rng.choice(FIRST), rng.choice(LAST)
    dom = rng.choice(("example.org", "example.net", "mail.example.com", "isp.example"))
    return "%s %s <%s.%s@%s>" % (f, l, f.lower(), l.lower(), dom)


def _text(rng, size, word=None, utf8=False):
    """Plain text of about `size` bytes in lines under 78 characters; the
    search word in one line when given."""
    lines, cur, cur_len, total = [], [], 0, 0
    choice, rand, words = rng.choice, rng.random, WORDS
    while total < size:
        snt = rng.choices(words, k=5 + int(rand() * 10))
        snt[0] = snt[0].capitalize()
        snt[-1] += choice(".....?!")
        if utf8 and rand() < 0.3:
            snt.insert(0, choice(UTF8_WORDS))
        for w in snt:
            if cur and cur_len + 1 + len(w) > 72:
                lines.append(" ".join(cur))
                total += cur_len + 2
                cur, cur_len = [], 0
            cur_len += len(w) + (1 if cur else 0)
            cur.append(w)
        if rand() < 0.15:
            lines.append(" ".join(cur))
            lines.append("")
            total += cur_len + 4
            cur, cur_len = [], 0
    if cur:
        lines.append(" ".join(cur))
    if word is not None:
        k = rng.randrange(len(lines))
        w = word.capitalize() if rng.random() < 0.3 else word
        lines[k] = (lines[k] + " " + w) if lines[k] else w
    return "\r\n".join(lines) + "\r\n"


def make_imap_message(rng, i, word):
    """Message i of the IMAP corpus: 2-4 KB; 80% text/plain (5% of them
    UTF-8 8bit), 10% multipart/alternative (text + HTML), 10%
    multipart/mixed with a small base64 attachment.  Some Subjects are
    RFC 2047 encoded words; some messages are replies with Cc."""
    target = rng.randint(2048, 4096)
    in_subject = word is not None and rng.random() < 0.1
    subj_words = [rng.choice(WORDS) for _ in range(rng.randint(3, 8))]
    if in_subject:
        subj_words.insert(rng.randrange(len(subj_words) + 1), word)
    subject = " ".join(subj_words).capitalize()
    if not in_subject and rng.random() < 0.05:
        subject = "=?UTF-8?B?%s?=" % base64.b64encode(
            ("Réunion " + subject).encode()).decode()
    reply = rng.random() < 0.2
    hdr = ["Return-Path: <bounce-%d@example.org>" % i,
           "From: %s" % _addr(rng),
           "To: bench imap <%s@bench.test>" % IMAP_USER]
    if rng.random() < 0.3:
        hdr.append("Cc: %s, %s" % (_addr(rng), _addr(rng)))
    hdr.append("Subject: %s%s" % ("Re: " if reply else "", subject))
    hdr.append("Date: %s" % mail_date(i))
    hdr.append("Message-ID: <%d.%08x@bench.example.org>" % (i, rng.getrandbits(32)))
    if reply:
        ref = "<%d.%08x@bench.example.org>" % (max(0, i - rng.randint(1, 50)),
                                                rng.getrandbits(32))
        hdr += ["In-Reply-To: %s" % ref, "References: %s" % ref]
    hdr.append("MIME-Version: 1.0")
    body_word = None if in_subject else word
    kind = rng.random()
    head_len = sum(len(h) + 2 for h in hdr) + 120
    if kind < 0.80:
        utf8 = rng.random() < 0.05
        hdr.append("Content-Type: text/plain; charset=%s" % ("utf-8" if utf8 else "us-ascii"))
        hdr.append("Content-Transfer-Encoding: %s" % ("8bit" if utf8 else "7bit"))
        body = _text(rng, max(200, target - head_len), body_word, utf8)
    elif kind < 0.90:
        b = "=_alt_%d_%08x" % (i, rng.getrandbits(32))
        text = _text(rng, max(200, (target - head_len - 300) // 2), body_word)
        html = "<html><body>\r\n" + "".join(
            "<p>%s</p>\r\n" % l for l in text.split("\r\n") if l) + "</body></html>\r\n"
        hdr.append('Content-Type: multipart/alternative; boundary="%s"' % b)
        body = ("This is a multi-part message in MIME format.\r\n\r\n"
                "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n"
                "Content-Transfer-Encoding: 7bit\r\n\r\n%s\r\n"
                "--%s\r\nContent-Type: text/html; charset=us-ascii\r\n"
                "Content-Transfer-Encoding: 7bit\r\n\r\n%s\r\n--%s--\r\n"
                % (b, text, b, html, b))
    else:
        b = "=_mix_%d_%08x" % (i, rng.getrandbits(32))
        att_raw = rng.randint(600, 1200)
        text = _text(rng, max(200, target - head_len - att_raw * 4 // 3 - 400), body_word)
        att = base64.encodebytes(rng.randbytes(att_raw)).decode().replace("\n", "\r\n")
        name = "%s-%d.pdf" % (rng.choice(("invoice", "report", "scan", "ticket")), i)
        hdr.append('Content-Type: multipart/mixed; boundary="%s"' % b)
        body = ("--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n"
                "Content-Transfer-Encoding: 7bit\r\n\r\n%s\r\n"
                "--%s\r\nContent-Type: application/pdf; name=\"%s\"\r\n"
                "Content-Disposition: attachment; filename=\"%s\"\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--%s--\r\n"
                % (b, text, b, name, name, att, b))
    return ("\r\n".join(hdr) + "\r\n\r\n" + body).encode("utf-8")


def imap_corpus(n, hits):
    """n messages, `hits` of them (chosen at random) holding SEARCH_WORD
    once (in the text or, for some, the Subject).  The same for every run
    and both servers."""
    rng = random.Random(CORPUS_SEED)
    chosen = set(rng.sample(range(n), min(hits, n)))
    msgs = [make_imap_message(rng, i, SEARCH_WORD if i in chosen else None) for i in range(n)]
    found = sum(1 for m in msgs if SEARCH_WORD.encode() in m.lower())
    if found != len(chosen):
        raise RuntimeError("corpus: search word in %d messages, meant %d" % (found, len(chosen)))
    return msgs


# ---- LMTP delivery for the fills -----------------------------------------

class LmtpClient:
    """A minimal LMTP client: one reply per recipient after DATA (Python's
    smtplib.LMTP reads only one, so it cannot send to several)."""

    def __init__(self, port, timeout=120):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.f = self.sock.makefile("rb")
        self.reply("greeting", 220)
        self.cmd("LHLO bench.test", "LHLO", 250)

    def reply(self, what, want):
        while True:
            line = self.f.readline(2048)
            if len(line) < 4:
                raise RuntimeError("LMTP %s: connection closed or bad reply %r" % (what, line))
            if line[3:4] != b"-":
                break
        if int(line[:3]) != want:
            raise RuntimeError("LMTP %s: %s" % (what, line.decode("latin-1").strip()))

    def cmd(self, line, what, want):
        self.sock.sendall(line.encode() + b"\r\n")
        self.reply(what, want)

    def deliver(self, rcpts, msg):
        self.cmd("MAIL FROM:<bench@bench.test>", "MAIL", 250)
        for r in rcpts:
            self.cmd("RCPT TO:<%s@bench.test>" % r, "RCPT " + r, 250)
        self.cmd("DATA", "DATA", 354)
        lines = msg.split(b"\r\n")
        if lines and lines[-1] == b"":
            lines.pop()
        data = b"\r\n".join(b"." + l if l.startswith(b".") else l for l in lines)
        self.sock.sendall(data + b"\r\n.\r\n")
        for r in rcpts:
            self.reply("delivery to " + r, 250)

    def close(self):
        try:
            self.sock.sendall(b"QUIT\r\n")
        except OSError:
            pass
        self.f.close()
        self.sock.close()


def lmtp_fill(port, jobs, conns=FILL_CONNS):
    """Deliver jobs [(recipients, message)] over `conns` connections in
    parallel.  Raises RuntimeError on the first refusal."""
    errors = []

    def worker(k):
        try:
            c = LmtpClient(port)
            try:
                for rcpts, msg in jobs[k::conns]:
                    if errors:
                        return
                    c.deliver(rcpts, msg)
            finally:
                c.close()
        except (OSError, RuntimeError, ValueError) as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(min(conns, len(jobs)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("LMTP fill: %s" % errors[0])


def fill_mailbox(port, count, size):
    lmtp_fill(port, [([POP_USER], make_message(i, size)) for i in range(count)])


def imap_served(port, timeout=3.0):
    """Does 127.0.0.1:port greet as an IMAP server?"""
    if port is None:
        return False
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sk:
            sk.settimeout(timeout)
            data = b""
            while b"\n" not in data and len(data) < 4096:
                chunk = sk.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.startswith(b"* OK")
    except OSError:
        return False


def raise_nofile(want):
    """Soft RLIMIT_NOFILE up to the hard limit (and the hard one to `want`
    when allowed, i.e. as root); inherited by the servers and loadgen."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            pass
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# ---- servers -------------------------------------------------------------

class Popnode:
    name = "popnode"

    def __init__(self, binary, popctl, parent_dir, max_sessions=20000):
        for p in (binary, popctl):
            if not os.access(p, os.X_OK):
                raise RuntimeError("%s not found or not executable (make all)" % p)
        self.binary, self.popctl = os.path.abspath(binary), os.path.abspath(popctl)
        self.tmp = tempfile.mkdtemp(prefix="bench-popnode-", dir=parent_dir)
        self.sock = os.path.join(self.tmp, "control.sock")
        ports = set()
        while len(ports) < 4:
            ports.add(dovecot.free_port())
        self.lmtp_port, self.pop3_port, self.imap_port, self.http_port = sorted(ports)
        self.max_sessions = max_sessions
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
                    "listen imap 127.0.0.1:%d no-starttls plaintext-auth\n"
                    "listen http 127.0.0.1:%d\n"
                    "tls_cert %s\n"
                    "tls_key %s\n"
                    "max_sessions %d\n"
                    "max_sessions_per_ip %d\n"
                    "max_message_size 10M\n"
                    "default_quota 0\n"
                    % (data, self.sock, self.lmtp_port, self.pop3_port, self.imap_port,
                       self.http_port, cert, key, self.max_sessions, self.max_sessions))
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

    def add_users(self, names):
        """Users with PASSWORD_HASH (popctl user add --hash-stdin)."""
        for name in names:
            r = self._popctl(["user", "add", name, "--hash-stdin"], stdin=PASSWORD_HASH + "\n")
            if r.returncode != 0:
                raise RuntimeError("popctl user add %s failed: %s" % (name, r.stdout.strip()))

    def imap_unavailable(self):
        """None when IMAP answers on its port, else the table's text."""
        return None if imap_served(self.imap_port) else IMAP_NA_POPNODE

    @property
    def pid(self):
        return self.proc.pid

    def version(self):
        out = []
        tree = os.path.dirname(os.path.dirname(self.binary))
        for cmd in ([self.binary, "--version"], ["git", "-C", tree, "rev-parse", "--short", "HEAD"]):
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

    def __init__(self, parent_dir, imap=True, max_conns=6000):
        self.d = dovecot.Dovecot(parent_dir=parent_dir, imap=imap, max_conns=max_conns)
        self.lmtp_port, self.pop3_port = self.d.lmtp_port, self.d.pop3_port
        self.imap_port = self.d.imap_port
        self.tmp = self.d.tmp

    def start(self):
        self.d.start()

    def add_users(self, names):
        self.d.add_users(names, PASSWORD_HASH, scheme="SHA256-CRYPT")

    def imap_unavailable(self):
        if not self.d.imap:
            log("dovecot: no IMAP: %s" % self.d.imap_reason)
            return "n/a (no dovecot-imapd)"
        return None if imap_served(self.imap_port) else "n/a (IMAP not answering)"

    @property
    def pid(self):
        return self.d.pid

    def version(self):
        r = subprocess.run([dovecot.DOVECOT, "--version"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, universal_newlines=True)
        return "dovecot " + r.stdout.strip() + ", maildir, mail_fsync=optimized, no FTS"

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
        self.imap_na = None	# why this server's IMAP cells are n/a, if they are
        self.filled = set()	# mailboxes delivered: "pop", "imap"

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
    names = ["%s%d" % (USER_PREFIX, i) for i in range(1, args.users + 1)] + [POP_USER]
    if "imap" in args.parts:
        names.append(IMAP_USER)
        names += ["%s%d" % (IDLE_PREFIX, i) for i in range(1, args.imap_idle_users + 1)]
    run.srv.add_users(names)
    run.raw["version"] = run.srv.version()


def run_cell(run, key, fn):
    """fn() for one server; its failure recorded, never raised."""
    if not run.alive:
        return None
    try:
        return fn()
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as e:
        run.fail(key, e)
        return None


def bench_lmtp(runs, loadgen, args):
    limit = args.seconds + args.warmup + 60
    for size, label in SIZES:
        for conns in CONNS:
            key = lmtp_key(size, conns)
            for run in runs:
                def cell():
                    res = median_run(loadgen, ["lmtp", "127.0.0.1", run.srv.lmtp_port, conns,
                                               args.seconds, size, USER_PREFIX, args.warmup,
                                               args.users], args.rounds, limit)
                    run.vals[key] = res["rate"]
                    run.raw[key] = res
                    run.check(key, res)
                    log("%s: LMTP %s x%d: %.1f msg/s (p50 %.2f ms, p99 %.2f ms, %d errors)"
                        % (run.name, label, conns, res["rate"], res["p50_ms"], res["p99_ms"],
                           res["errors"]))
                run_cell(run, key, cell)
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


def fill_pop_mailbox(runs, args):
    """The 200 x 100 KB mailbox (POP3 RETR and IMAP BODY[]), once per server."""
    for run in runs:
        if not run.alive or "pop" in run.filled:
            continue

        def cell():
            t0 = time.monotonic()
            fill_mailbox(run.srv.lmtp_port, args.pop3_messages, args.pop3_size)
            run.filled.add("pop")
            log("%s: filled %s with %d x %d bytes in %.1f s" % (
                run.name, POP_USER, args.pop3_messages, args.pop3_size,
                time.monotonic() - t0))
        run_cell(run, "pop3 fill", cell)


def bench_pop3(runs, loadgen, args):
    limit = args.seconds + args.warmup + 60
    fill_pop_mailbox(runs, args)
    for run in runs:
        if "pop" not in run.filled:
            continue

        def cell():
            res = median_run(loadgen, ["pop3", "127.0.0.1", run.srv.pop3_port, POP_USER,
                                       PASSWORD, args.seconds, args.warmup],
                             args.rounds, limit)
            run.vals["pop3_mbps"] = res["mbps"]
            run.raw["pop3"] = res
            run.check("pop3", res)
            log("%s: POP3 RETR: %.1f MB/s (%d messages, %d sessions, %d errors)"
                % (run.name, res["mbps"], res["count"], res["sessions"], res["errors"]))
        run_cell(run, "pop3", cell)


IMAP_KEYS = ("imap_fetch_ms", "imap_fetch_mps", "imap_body_mbps", "imap_search_ms",
             "imap_search_rate", "imap_idle_rss_kb", "imap_idle_pss_kb", "imap_idle_anon_kb",
             "imap_idle_processes")


def imap_fill(runs, args):
    """Deliver the IMAP corpus (and the idle users' mailboxes) to every
    server that serves IMAP; delivery is not timed as a result."""
    hits = max(1, round(args.imap_messages * args.imap_search_percent / 100.0))
    t0 = time.monotonic()
    corpus = imap_corpus(args.imap_messages, hits)
    log("IMAP corpus: %d messages, %.1f MB, %d with \"%s\" (built in %.1f s)" % (
        len(corpus), sum(map(len, corpus)) / 1e6, hits, SEARCH_WORD, time.monotonic() - t0))
    idle_users = ["%s%d" % (IDLE_PREFIX, i) for i in range(1, args.imap_idle_users + 1)]
    idle_jobs = []
    for k in range(args.imap_idle_messages):
        msg = corpus[k % len(corpus)]
        for j in range(0, len(idle_users), 100):	# popnode's default max_recipients
            idle_jobs.append((idle_users[j:j + 100], msg))
    for run in runs:
        if not run.alive or run.imap_na:
            continue

        def cell():
            t1 = time.monotonic()
            lmtp_fill(run.srv.lmtp_port, [([IMAP_USER], m) for m in corpus])
            t2 = time.monotonic()
            lmtp_fill(run.srv.lmtp_port, idle_jobs)
            log("%s: delivered %d messages to %s in %.1f s, %d to each of %d idle users "
                "in %.1f s" % (run.name, len(corpus), IMAP_USER, t2 - t1,
                               args.imap_idle_messages, len(idle_users),
                               time.monotonic() - t2))
            run.filled.add("imap")
        run_cell(run, "imap fill", cell)
    return hits


def read_line_until(proc, deadline):
    """A line from proc's stdout before the deadline, else None."""
    buf = b""
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        chunk = os.read(fd, 1)
        if not chunk:
            break
        if chunk == b"\n":
            return buf.decode("utf-8", "replace")
        buf += chunk
    return None


def process_count(root):
    return len(proc_tree(root))


def settle(run, base_procs, timeout=60.0):
    """Wait until the server is back to about base_procs processes (Dovecot's
    imap processes exiting after the idle test) so the next cell is not
    disturbed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process_count(run.srv.pid) > base_procs + 5:
        time.sleep(0.2)


# Dovecot's lmtp processes from the fills may exit (idle_kill) while the
# idle connections are set up; they are not part of what is measured.
IDLE_SKIP = ("lmtp",)


def imap_idle_cell(run, loadgen, args):
    time.sleep(0.5)
    procs_before = process_count(run.srv.pid)
    base = memory_of(run.srv.pid, IDLE_SKIP)
    stderr = tempfile.TemporaryFile()
    proc = subprocess.Popen([loadgen, "imap-idle", "127.0.0.1", str(run.srv.imap_port),
                             IDLE_PREFIX, PASSWORD, str(args.imap_idle_conns), "900",
                             str(args.imap_idle_users)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
    try:
        t0 = time.monotonic()
        line = read_line_until(proc, t0 + 300)
        if line is None or not line.startswith("READY "):
            raise RuntimeError("imap-idle: no READY line (%r)" % line)
        opened, failed = (int(x) for x in line.split()[1:3])
        setup = time.monotonic() - t0
        time.sleep(1.0)	# let the last logins finish their bookkeeping
        after = memory_of(run.srv.pid, IDLE_SKIP)
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
    res = None
    for l in out.decode("utf-8", "replace").splitlines():
        if l.startswith("{"):
            res = json.loads(l)
    if proc.returncode != 0 or res is None or opened == 0:
        raise RuntimeError("loadgen imap-idle failed (rc %s): %s" % (proc.returncode,
                                                                   err_text[-600:]))
    res["memory_before"], res["memory_after"] = base, after
    run.raw["imap_idle"] = res
    run.check("imap idle", res)
    n = float(opened)
    run.vals["imap_idle_rss_kb"] = (after["rss_kb"] - base["rss_kb"]) / n
    run.vals["imap_idle_pss_kb"] = (after["pss_kb"] - base["pss_kb"]) / n
    run.vals["imap_idle_anon_kb"] = (after["anon_kb"] - base["anon_kb"]) / n
    run.vals["imap_idle_processes"] = after["processes"]
    log("%s: IMAP %d idle connections (%d failed, %d lost; set up in %.1f s): per connection "
        "RSS %.1f KB, PSS %.1f KB, anon %.1f KB; %d processes"
        % (run.name, opened, failed, res["lost"], setup, run.vals["imap_idle_rss_kb"],
           run.vals["imap_idle_pss_kb"], run.vals["imap_idle_anon_kb"], after["processes"]))
    settle(run, procs_before)


def bench_imap(runs, loadgen, args):
    for run in runs:
        if run.alive:
            run.imap_na = run.srv.imap_unavailable()
            if run.imap_na:
                log("%s: IMAP cells %s" % (run.name, run.imap_na))
                for k in IMAP_KEYS:
                    run.vals[k] = run.imap_na
    if not any(r.alive and not r.imap_na for r in runs):
        return
    hits = imap_fill(runs, args)
    fill_pop_mailbox([r for r in runs if not r.imap_na], args)
    live = [r for r in runs if r.alive and not r.imap_na and "imap" in r.filled]
    limit = args.seconds + args.warmup + 180
    # The idle connections first: the other cells leave freed memory in the
    # server's heap that new sessions would reuse, hiding their cost.
    for run in live:
        run_cell(run, "imap idle", lambda: imap_idle_cell(run, loadgen, args))
    for run in live:
        def fetch():
            res = median_run(loadgen, ["imap-fetch", "127.0.0.1", run.srv.imap_port, IMAP_USER,
                                       PASSWORD, args.seconds, args.warmup],
                             args.rounds, limit)
            run.raw["imap_fetch"] = res
            run.vals["imap_fetch_ms"] = res["ms_per_run"]
            run.vals["imap_fetch_mps"] = res["items_per_s"]
            run.check("imap fetch", res)
            log("%s: IMAP SELECT+FETCH %d ENVELOPE: %.1f ms/run, %.0f msg/s (%d runs, p50 "
                "%.1f ms, %d errors)" % (run.name, res["exists"], res["ms_per_run"],
                                         res["items_per_s"], res["count"], res["p50_ms"],
                                         res["errors"]))
        run_cell(run, "imap fetch", fetch)
    for run in live:
        if "pop" not in run.filled:
            continue

        def body():
            res = median_run(loadgen, ["imap-body", "127.0.0.1", run.srv.imap_port, POP_USER,
                                       PASSWORD, args.seconds, args.warmup],
                             args.rounds, limit)
            run.raw["imap_body"] = res
            run.vals["imap_body_mbps"] = res["mbps"]
            run.check("imap body", res)
            log("%s: IMAP FETCH BODY[]: %.1f MB/s (%d messages, %d sessions, %d errors)"
                % (run.name, res["mbps"], res["count"], res["sessions"], res["errors"]))
        run_cell(run, "imap body", body)
    for run in live:
        def search():
            res = median_run(loadgen, ["imap-search", "127.0.0.1", run.srv.imap_port,
                                       IMAP_USER, PASSWORD, args.seconds, args.warmup,
                                       SEARCH_WORD, hits], args.rounds, limit)
            run.raw["imap_search"] = res
            run.vals["imap_search_rate"] = res["rate"]
            run.vals["imap_search_ms"] = res["ms_per_run"]
            run.check("imap search", res)
            log("%s: IMAP SEARCH TEXT: %.2f searches/s, %.1f ms each (%d found, %d runs, "
                "%d errors)" % (run.name, res["rate"], res["ms_per_run"], hits, res["count"],
                                res["errors"]))
        run_cell(run, "imap search", search)


def bench_all(runs, loadgen, args):
    """The measurements, each cell run on every server in turn so that a
    slow spell of the machine hits both columns alike."""
    if "lmtp" in args.parts:
        bench_lmtp(runs, loadgen, args)
    if "pop3" in args.parts:
        bench_pop3(runs, loadgen, args)
    if "imap" in args.parts:
        bench_imap(runs, loadgen, args)


def rows_spec(args):
    """(key, label, better, digits, goal); goal is (kind, value) or None."""
    rows = []
    if "lmtp" in args.parts:
        for size, label in SIZES:
            for conns in CONNS:
                rows.append((lmtp_key(size, conns),
                             "LMTP %s, %d conn%s (msg/s)" % (label, conns,
                                                             "" if conns == 1 else "s"),
                             "higher", 1, None))
    if "pop3" in args.parts:
        rows.append(("pop3_mbps", "POP3 RETR %dx%d KB (MB/s)" % (args.pop3_messages,
                                                                args.pop3_size // 1024),
                     "higher", 1, None))
    if "lmtp" in args.parts:
        rows.append(("rss_mib", "RSS after LMTP load (MiB)", "lower", 1, None))
        rows.append(("hwm_mib", "peak RSS, VmHWM (MiB)", "lower", 1, None))
        rows.append(("anon_mib", "anonymous RSS, RssAnon (MiB)", "lower", 1, None))
        rows.append(("pss_mib", "PSS after LMTP load (MiB)", "lower", 1, None))
        rows.append(("processes", "server processes", None, 0, None))
    if "imap" in args.parts:
        n, c = args.imap_messages, args.imap_idle_conns
        rows += [
            ("imap_fetch_ms", "IMAP SELECT+FETCH %d ENVELOPE (ms)" % n, "lower", 1, None),
            ("imap_fetch_mps", "IMAP FETCH ENVELOPE (msg/s)", "higher", 0, ("ratio", 2.0)),
            ("imap_body_mbps", "IMAP FETCH BODY[] %dx%d KB (MB/s)" % (
                args.pop3_messages, args.pop3_size // 1024), "higher", 1, ("ratio", 2.0)),
            ("imap_search_ms", "IMAP SEARCH TEXT, %d msgs (ms)" % n, "lower", 1, None),
            ("imap_search_rate", "IMAP SEARCH TEXT (searches/s)", "higher", 2, ("ratio", 2.0)),
            ("imap_idle_rss_kb", "IMAP %d idle conns: RSS/conn (KB)" % c, "lower", 1,
             ("below", 32.0)),
            ("imap_idle_pss_kb", "IMAP idle: PSS/conn (KB)", "lower", 1, None),
            ("imap_idle_anon_kb", "IMAP idle: RssAnon/conn (KB)", "lower", 1, None),
            ("imap_idle_processes", "IMAP idle: server processes", None, 0, None),
        ]
    return rows


def fmt(v, digits):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    return "%.*f" % (digits, v)


def goal_text(goal, a, ratio):
    if goal is None:
        return ""
    kind, val = goal
    if kind == "ratio":
        want = ">= %gx dovecot" % val
        return want if ratio is None else "%s: %s" % (want, "met" if ratio >= val else "MISSED")
    want = "< %g KB" % val
    if not isinstance(a, (int, float)):
        return want
    return "%s: %s" % (want, "met" if a < val else "MISSED")


def render(rows, results):
    pn, dv = results.get("popnode", {}), results.get("dovecot", {})
    cells, table = [], []
    for key, label, better, digits, goal in rows:
        a, b = pn.get(key), dv.get(key)
        num = lambda v: isinstance(v, (int, float))
        ratio = a / b if better and num(a) and num(b) and b != 0 else None
        rdigits = 2 if ratio is None or ratio >= 0.1 else 3 if ratio >= 0.001 else 4
        cells.append((label, fmt(a, digits), fmt(b, digits),
                      fmt(ratio, rdigits) if better else "-", goal_text(goal, a, ratio)))
        table.append({"key": key, "measurement": label, "better": better,
                      "popnode": a, "dovecot": b,
                      "ratio": round(ratio, 4) if ratio is not None else None,
                      "goal": goal_text(goal, a, ratio) or None})
    w = [max(len(c[i]) for c in cells + [("measurement", "popnode", "dovecot", "ratio",
                                           "goal")]) for i in range(5)]
    w[1], w[2], w[3] = max(w[1], 10), max(w[2], 10), max(w[3], 6)
    with_goal = any(c[4] for c in cells)

    def line(c):
        out = "%-*s  %*s  %*s  %*s" % (w[0], c[0], w[1], c[1], w[2], c[2], w[3], c[3])
        return (out + "  " + c[4]).rstrip() if with_goal else out
    head = line(("measurement", "popnode", "dovecot", "ratio", "goal" if with_goal else ""))
    lines = [head, "-" * (len(line(max(cells, key=lambda c: len(line(c))))) if cells
                          else len(head))]
    lines += [line(c) for c in cells]
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
    ap.add_argument("--only", default="",
                    help="comma-separated servers (popnode, dovecot) and/or parts "
                         "(lmtp, pop3, imap) to run; default all")
    ap.add_argument("--imap-messages", type=int, default=10000,
                    help="messages in the IMAP FETCH/SEARCH mailbox")
    ap.add_argument("--imap-search-percent", type=float, default=1.0,
                    help="share of those messages that hold the searched word")
    ap.add_argument("--imap-idle-conns", type=int, default=5000)
    ap.add_argument("--imap-idle-users", type=int, default=100,
                    help="users the idle connections log in as, in turn")
    ap.add_argument("--imap-idle-messages", type=int, default=50,
                    help="messages in each idle user's INBOX")
    ap.add_argument("--json", default=os.path.join(ROOT, "build", "bench", "results.json"))
    ap.add_argument("--tmpdir", default=None, help="parent of the temporary directories")
    ap.add_argument("--keep", action="store_true", help="keep temporary directories")
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    args = ap.parse_args()
    if (args.seconds <= 0 or args.warmup < 0 or args.users < 1 or args.pop3_messages < 1
            or args.rounds < 1):
        ap.error("bad --seconds/--warmup/--users/--pop3-messages/--rounds")
    if (args.imap_messages < 1 or not 0 < args.imap_search_percent <= 100
            or args.imap_idle_conns < 1 or args.imap_idle_users < 1
            or args.imap_idle_messages < 1):
        ap.error("bad --imap-* value")
    only = [w.strip() for w in args.only.split(",") if w.strip()]
    bad = [w for w in only if w not in ("popnode", "dovecot", "lmtp", "pop3", "imap")]
    if bad:
        ap.error("--only: unknown %s (popnode, dovecot, lmtp, pop3, imap)" % ", ".join(bad))
    args.servers = [n for n in ("popnode", "dovecot") if n in only] or ["popnode", "dovecot"]
    args.parts = [n for n in ("lmtp", "pop3", "imap") if n in only] or ["lmtp", "pop3", "imap"]
    nofile = raise_nofile(2 * args.imap_idle_conns + 4096)
    if "imap" in args.parts and nofile < args.imap_idle_conns + 1024:
        ap.error("RLIMIT_NOFILE %d is too low for %d idle connections (ulimit -n)"
                 % (nofile, args.imap_idle_conns))

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
        for name in args.servers:
            srv = None
            try:
                if name == "popnode":
                    srv = Popnode(args.popnode, args.popctl, args.tmpdir,
                                  max_sessions=2 * args.imap_idle_conns + 1000)
                else:
                    reason = dovecot.missing_reason()
                    if reason:
                        notes.append("dovecot: n/a (%s)" % reason)
                        log("dovecot: skipped: %s" % reason)
                        continue
                    srv = DovecotServer(args.tmpdir, imap="imap" in args.parts,
                                        max_conns=args.imap_idle_conns + 1000)
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
    print("ratio = popnode / dovecot: above 1 is better for msg/s, MB/s and searches/s, "
          "below 1 is better for ms and memory.")
    if mem.get("dovecot") or "imap" in args.parts:
        print("Memory is summed over each server's process tree (Dovecot: master, auth, "
              "log, lmtp/imap workers...); RSS double-counts shared pages, PSS does not.")
    if mem.get("popnode") or "imap" in args.parts:
        print("popnode's RSS and PSS include the LMDB file pages it has mapped (page cache); "
              "RssAnon is its heap and stacks.")
    if "imap" in args.parts:
        print("IMAP idle: (memory with the connections open - memory before) / connections; "
              "for Dovecot compare PSS and RssAnon (its RSS sum counts shared libraries once "
              "per imap process).")
        print("Goals (issue 3): FETCH and SEARCH at least 2x Dovecot; under 32 KB RSS per "
              "idle connection.")
    for n in notes:
        print("note: " + n)
    print("(%.0f s in all)" % (time.monotonic() - started))

    out = {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": platform.node(), "kernel": platform.release(),
            "cpus": os.cpu_count(), "seconds": args.seconds, "warmup": args.warmup,
            "users": args.users, "pop3_messages": args.pop3_messages,
            "pop3_size": args.pop3_size, "parts": args.parts,
            "imap_messages": args.imap_messages, "search_word": SEARCH_WORD,
            "imap_search_percent": args.imap_search_percent,
            "imap_idle_conns": args.imap_idle_conns, "imap_idle_users": args.imap_idle_users,
            "imap_idle_messages": args.imap_idle_messages,
            "nofile_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
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
