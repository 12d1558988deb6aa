#!/usr/bin/python3
"""anycast.py - the anycast part of `make bench`: how fast a failing POP
stops receiving clients, on the network-namespace lab with real BIRD.

A 3-POP lab (deploy/lab up --netns, delays 5, 10 and 20 ms: pop1 is the
nearest, docs/lab.md) where popnode's supervisor owns the anycast
addresses (docs/anycast.md).  For each failure of pop1, a few times:

  drain       popctl drain (the maintenance file)
  kill9       kill -9 of pop1's mail process (the supervisor's child)
  sigstop     SIGSTOP of the mail process: alive but silent (hung)
  bird        kill -9 of pop1's BIRD: its BGP sessions close
  blackhole   iptables drops everything on pop1's uplink, both ways,
              in pop1's namespace: nothing closes, only BFD notices

it measures, from the moment the failure is in place (or the command
that causes it starts):

  route   until the router's kernel route to 192.0.2.53 no longer goes to
          pop1 (RTM_GETROUTE over netlink in lab-router, every ~1 ms;
          2001:db8::53 too, reported in the JSON)
  login   until a client in lab-client, connecting to 192.0.2.53:143 over
          and over (0.25 s connect and greeting timeouts), is logged in at
          another POP: IMAP LOGIN as a user homed at pop2, then ID says
          "pop" is not pop1
  back    after the failure is undone (undrain, restart by the supervisor,
          SIGCONT, BIRD started again, rules deleted), until pop1 has the
          route again: the lab's health_hold_down is 2 s

and prints a table (median and max of each, the goal: under 1 s for the
route in every case; process death and drain by the supervisor, a dead or
unreachable POP by the BGP session closing or BFD) and writes
build/bench/anycast.json.  Needs root (namespaces, BIRD, iptables):
without root, or without BIRD, it prints "skipped: ..." and exits 0.  A
missed goal does not fail the run; a failure that could not be measured
does (exit status 1).

    /usr/bin/python3 tests/bench/anycast.py --popnode bin/popnode --popctl bin/popctl
        [--reps 5] [--json PATH] [--tmpdir DIR] [--keep]

The classes here (Lab, RouteWatch, the IMAP client helpers) are also what
tests/integration/test_anycast_lab.py drives the lab with.
"""

import argparse
import contextlib
import ctypes
import imaplib
import json
import os
import platform
import re
import shutil
import signal
import smtplib
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import types
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LAB_SCRIPT = os.path.join(ROOT, "deploy", "lab")
V4, V6 = "192.0.2.53", "2001:db8::53"
NET4, NET6 = V4 + "/32", V6 + "/128"
IMAP_PORT, LMTP_PORT = 143, 24
GOAL_S = 1.0
TRY_TIMEOUT_S = 0.25    # the probing client's connect and greeting timeouts
ROAM_USER, ROAM_PASSWORD, ROAM_HOME = "alice", "alice-secret", "pop2"


def _load_lab():
    """deploy/lab as a module (its BIRD socket client, namespace names and
    process helpers), compiled in memory: no __pycache__ next to it."""
    mod = types.ModuleType("popnode_deploy_lab")
    mod.__file__ = LAB_SCRIPT
    with open(LAB_SCRIPT) as f:
        code = compile(f.read(), LAB_SCRIPT, "exec")
    exec(code, mod.__dict__)
    return mod


deploylab = _load_lab()
NS_ROUTER, NS_CLIENT, ns_pop = deploylab.NS_ROUTER, deploylab.NS_CLIENT, deploylab.ns_pop
bird_command = deploylab.bird_command


def log(msg):
    sys.stderr.write("anycast: %s\n" % msg)
    sys.stderr.flush()


# ---- network namespaces, per thread -------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def in_netns(ns):
    """Run the body with this thread in network namespace ns: sockets made
    there stay there.  setns() moves only the calling thread, so other
    threads may be in other namespaces at the same time."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(os.path.join("/run/netns", ns), os.O_RDONLY | os.O_CLOEXEC)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, "setns %s: %s" % (ns, os.strerror(e)))
        finally:
            os.close(target)
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                # never go on in the wrong namespace
                os.write(2, b"anycast: cannot return to our network namespace\n")
                os._exit(1)
    finally:
        os.close(own)


# ---- the router's route, over netlink --------------------------------------------

RTM_NEWROUTE, RTM_GETROUTE, NLMSG_ERROR = 24, 26, 2
NLM_F_REQUEST = 1
RTA_DST, RTA_OIF = 1, 4
RTN_UNICAST = 1


class RouteWatch:
    """Which POP the router's kernel sends the service addresses to: one
    RTM_GETROUTE per question on a netlink socket made in lab-router (the
    answer is the route's output interface there, "popN"), ~50 us each,
    so it can be asked every millisecond."""

    def __init__(self):
        with in_netns(NS_ROUTER):
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
            self.sock.bind((0, 0))
            self.names = dict(socket.if_nameindex())
        self.sock.settimeout(1.0)
        self.seq = 0

    def close(self):
        self.sock.close()

    def via(self, family=4):
        """"popN" the route to V4 (family 4) or V6 (6) leaves by, or None
        when the router has no route to it."""
        if family == 4:
            af, dst, plen = socket.AF_INET, socket.inet_pton(socket.AF_INET, V4), 32
        else:
            af, dst, plen = socket.AF_INET6, socket.inet_pton(socket.AF_INET6, V6), 128
        self.seq += 1
        rta = struct.pack("=HH", 4 + len(dst), RTA_DST) + dst
        body = struct.pack("=BBBBBBBBI", af, plen, 0, 0, 0, 0, 0, 0, 0) + rta
        self.sock.send(struct.pack("=IHHII", 16 + len(body), RTM_GETROUTE, NLM_F_REQUEST,
                                   self.seq, 0) + body)
        while True:
            data = self.sock.recv(65536)
            off = 0
            while off + 16 <= len(data):
                ln, typ, _, seq, _ = struct.unpack_from("=IHHII", data, off)
                msg = data[off + 16:off + ln]
                off += (ln + 3) & ~3
                if seq != self.seq:
                    continue
                if typ == NLMSG_ERROR:
                    return None     # ENETUNREACH and the like: no route
                if typ != RTM_NEWROUTE:
                    continue
                if msg[7] != RTN_UNICAST:
                    return None
                a = 12
                while a + 4 <= len(msg):
                    alen, atyp = struct.unpack_from("=HH", msg, a)
                    if alen < 4:
                        break
                    if atyp == RTA_OIF:
                        idx, = struct.unpack_from("=I", msg, a + 4)
                        if idx not in self.names:
                            with in_netns(NS_ROUTER):
                                self.names = dict(socket.if_nameindex())
                        return self.names.get(idx, "if%d" % idx)
                    a += (alen + 3) & ~3
                return None

    def wait(self, pred, timeout, t0=None, step=0.001):
        """Until pred(via4, via6) is true: seconds since t0 (default now),
        or None after timeout seconds."""
        t0 = time.monotonic() if t0 is None else t0
        while True:
            now = time.monotonic()
            if pred(self.via(4), self.via(6)):
                return now - t0
            if now - t0 > timeout:
                return None
            time.sleep(step)

    def wait_each(self, pred, timeout, t0):
        """Until pred(via) holds for both families: (v4 s, v6 s) since t0,
        None for a family that did not get there within timeout."""
        got = {4: None, 6: None}
        while True:
            now = time.monotonic()
            for fam in (4, 6):
                if got[fam] is None and pred(self.via(fam)):
                    got[fam] = now - t0
            if all(v is not None for v in got.values()) or now - t0 > timeout:
                return got[4], got[6]
            time.sleep(0.001)


# ---- IMAP and LMTP clients in the lab's namespaces ------------------------------------

imaplib.Commands.setdefault("ID", ("NONAUTH", "AUTH", "SELECTED"))


def greeting_pop(welcome):
    """The POP id a greeting ends with ("... ready pop1"), or None."""
    text = welcome.decode(errors="replace") if isinstance(welcome, bytes) else welcome
    m = re.search(r"ready (\S+)\s*$", text)
    return m.group(1) if m else None


def imap_connect(host, timeout, ns=NS_CLIENT, port=IMAP_PORT):
    with in_netns(ns):
        return imaplib.IMAP4(host, port, timeout=timeout)


def imap_id(m):
    """The server's answer to IMAP ID as a dict ({"pop": ..., ...})."""
    typ, _ = m.xatom("ID", "NIL")
    if typ != "OK":
        raise imaplib.IMAP4.error("ID: %s" % typ)
    raw = b" ".join(x for x in m.untagged_responses.pop("ID", []) if isinstance(x, bytes))
    pairs = re.findall(r'"([^"]*)" "([^"]*)"', raw.decode(errors="replace"))
    return dict(pairs)


def imap_login(host, user, password, timeout=3.0, ns=NS_CLIENT):
    """Connect, log in, ask ID, log out: (greeting POP, ID dict)."""
    m = imap_connect(host, timeout, ns)
    try:
        pop = greeting_pop(m.welcome)
        m.login(user, password)
        ident = imap_id(m)
        m.logout()
        return pop, ident
    finally:
        with contextlib.suppress(OSError):
            m.shutdown()


def greeting(host, timeout=2.0, ns=NS_CLIENT, port=IMAP_PORT):
    """The POP whose IMAP greeting a new connection to host gets."""
    m = imap_connect(host, timeout, ns, port)
    try:
        return greeting_pop(m.welcome)
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            m.logout()
        with contextlib.suppress(OSError):
            m.shutdown()


def login_elsewhere(avoid, t0, deadline, user=ROAM_USER, password=ROAM_PASSWORD,
                    try_timeout=None):
    """A client that wants its mail: connect to V4:143 from lab-client over
    and over until it is logged in at a POP other than avoid (IMAP ID
    "pop").  Connect and greeting wait try_timeout each (a POP that does
    not answer is given up on quickly), the login itself up to 3 s.
    Returns (seconds since t0, ID dict, attempts) or (None, last error,
    attempts); attempts lists each failed try as "+MS what"."""
    attempts = []
    try_timeout = TRY_TIMEOUT_S if try_timeout is None else try_timeout
    while time.monotonic() < deadline:
        ts = time.monotonic()

        def failed(what):
            attempts.append("+%.0fms %s" % ((ts - t0) * 1000, what))
        try:
            m = imap_connect(V4, try_timeout)
        except (OSError, imaplib.IMAP4.error, EOFError) as e:
            failed("connect: %s" % (e or type(e).__name__))
            time.sleep(0.002)
            continue
        try:
            if greeting_pop(m.welcome) == avoid:
                failed("greeted by %s" % avoid)
                continue
            m.sock.settimeout(3.0)
            m.login(user, password)
            ident = imap_id(m)
            if ident.get("pop") == avoid:
                failed("logged in at %s" % avoid)
                continue
            took = time.monotonic() - t0
            with contextlib.suppress(OSError, imaplib.IMAP4.error, EOFError):
                m.logout()
            return took, ident, attempts
        except (OSError, imaplib.IMAP4.error, EOFError) as e:
            failed("session: %s" % (e or type(e).__name__))
        finally:
            with contextlib.suppress(OSError):
                m.shutdown()
    return None, attempts[-1] if attempts else "no attempt", attempts


class LoginProbe(threading.Thread):
    """login_elsewhere in a thread, started as a failure happens."""

    def __init__(self, avoid, t0, timeout=10.0):
        super().__init__(daemon=True)
        self.args_ = (avoid, t0, t0 + timeout)
        self.result = (None, "not run", [])

    def run(self):
        self.result = login_elsewhere(*self.args_)


def lmtp_deliver(ns, rcpt, message, host=V4):
    """Deliver message to rcpt over LMTP at host:24 from namespace ns.
    Returns {} when accepted, else raises smtplib's exception."""
    with in_netns(ns):
        s = smtplib.LMTP(host, LMTP_PORT, timeout=10)
    try:
        return s.sendmail("bench@example.org", [rcpt], message)
    finally:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            s.quit()


# ---- a netns lab ------------------------------------------------------------------

class Lab:
    """A netns lab made by deploy/lab in directory d, and what the tests
    and the bench do to it."""

    def __init__(self, d, popnode, popctl, run_dir):
        self.dir = os.path.abspath(d)
        popnode, popctl = os.path.abspath(popnode), os.path.abspath(popctl)
        self.popctl_bin = popctl
        self.env = dict(os.environ, POPNODE_BIN=popnode, POPCTL_BIN=popctl,
                        XDG_RUNTIME_DIR=run_dir)
        nfq = os.path.join(ROOT, "bin", "nfqdelay")
        if "NFQDELAY_BIN" not in self.env and os.access(nfq, os.X_OK):
            self.env["NFQDELAY_BIN"] = nfq
        self.bird_procs = []
        self.killed_bird = None

    # -- deploy/lab
    def lab(self, cmd, *args, check=True, timeout=120):
        r = subprocess.run([LAB_SCRIPT, cmd, "--dir", self.dir] + list(args), env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("deploy/lab %s %s: exit %d\n%s%s" % (
                cmd, " ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def up(self, pops=3, delays="5,10,20", tmpfs=None):
        self.n = pops
        extra = []
        for i, size in sorted((tmpfs or {}).items()):
            extra += ["--tmpfs-data", "%d:%s" % (i, size)]
        return self.lab("up", "--netns", "--pops", str(pops), "--delay-ms", delays, *extra)

    def down(self):
        r = self.lab("down", check=False, timeout=180)
        for p in self.bird_procs:     # BIRDs we started again: down ended them
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                p.wait(5)
        return r

    # -- files
    def pop_dir(self, i):
        return os.path.join(self.dir, "pop%d" % i)

    def conf(self, i):
        return os.path.join(self.pop_dir(i), "popnode.conf")

    def state(self):
        with open(os.path.join(self.dir, "lab.json")) as f:
            return json.load(f)

    # -- processes
    def supervisor_pid(self, i):
        """POP i's popnode as the lab started it: with anycast_address, the
        supervisor."""
        with open(os.path.join(self.pop_dir(i), "popnode.pid")) as f:
            pid = int(f.read())
        if not deploylab.proc_is(pid, self.conf(i)):
            raise RuntimeError("pop%d's popnode (pid %d) is not running" % (i, pid))
        return pid

    def mail_pid(self, i):
        """The mail process: the supervisor's child with the same command
        line; None while there is none (being restarted)."""
        sup = self.supervisor_pid(i)
        kids = [k for k in deploylab.descendants(sup) if deploylab.proc_is(k, self.conf(i))]
        return kids[0] if kids else None

    def wait_mail_pid(self, i, not_pid=None, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.mail_pid(i)
            if pid is not None and pid != not_pid:
                return pid
            time.sleep(0.02)
        raise RuntimeError("pop%d has no new mail process after %.0f s" % (i, timeout))

    def popctl(self, i, *args, input=None, check=True):
        r = subprocess.run([self.popctl_bin, "-s", os.path.join(self.pop_dir(i), "control.sock")]
                           + list(args), input=input, capture_output=True, text=True,
                           timeout=30)
        if check and r.returncode != 0:
            raise RuntimeError("popctl pop%d %s: exit %d\n%s%s" % (
                i, " ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def status(self, i):
        """POP i's /status (the management listener on its uplink)."""
        with in_netns(ns_pop(i)):
            r = urllib.request.urlopen("http://10.99.%d.2:9080/status" % i, timeout=5)
        with r:
            return json.loads(r.read().decode())

    def anycast(self, i):
        return self.status(i)["anycast"]

    def add_user(self, name, password, home):
        """Create a user at its home POP and wait until every POP knows it."""
        h = int(home[3:])
        self.popctl(h, "user", "add", name, "--home", home, "--password-stdin",
                    input=password + "\n")
        deadline = time.monotonic() + 15
        for i in range(1, self.n + 1):
            while self.popctl(i, "user", "show", name, check=False).returncode != 0:
                if time.monotonic() > deadline:
                    raise RuntimeError("user %s is not at pop%d 15 s after it was created"
                                       % (name, i))
                time.sleep(0.05)

    # -- BIRD on a POP
    def bird_files(self, i):
        d = self.pop_dir(i)
        return (os.path.join(d, "bird.conf"), os.path.join(d, "bird.ctl"),
                os.path.join(d, "bird.pid"), os.path.join(d, "bird.log"))

    def bird_pid(self, i):
        conf, _, pidfile, _ = self.bird_files(i)
        with open(pidfile) as f:
            pid = int(f.read())
        argv = deploylab.proc_cmdline(pid)
        if deploylab.proc_gone(pid) or not argv or os.path.basename(argv[0]) != "bird" \
                or conf not in argv:
            raise RuntimeError("pop%d's BIRD (pid %d) is not running" % (i, pid))
        return pid

    def kill_bird(self, i):
        """kill -9 of POP i's BIRD; the time it was sent.  Returns at once
        (the caller starts watching the route), start_bird waits until
        this one is gone."""
        self.killed_bird = self.bird_pid(i)
        t0 = time.monotonic()
        os.kill(self.killed_bird, signal.SIGKILL)
        return t0

    def start_bird(self, i):
        """Start POP i's BIRD again as deploy/lab does, wait until it answers."""
        conf, sock, pidfile, logf = self.bird_files(i)
        if self.killed_bird is not None and not deploylab.wait_gone(self.killed_bird, 5):
            raise RuntimeError("pop%d's BIRD (pid %d) is still there 5 s after SIGKILL"
                               % (i, self.killed_bird))
        self.killed_bird = None
        for p in (sock, pidfile):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)
        with open(logf, "ab") as f:
            p = subprocess.Popen(["ip", "netns", "exec", ns_pop(i), shutil.which("bird"), "-f",
                                  "-c", conf, "-s", sock, "-P", pidfile],
                                 cwd=self.pop_dir(i), stdin=subprocess.DEVNULL, stdout=f,
                                 stderr=f, start_new_session=True)
        self.bird_procs.append(p)
        deadline = time.monotonic() + 10
        while True:
            try:
                bird_command(sock, "show status", 1)
                return
            except OSError:
                if p.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("pop%d's BIRD did not start again (%s)" % (i, logf))
                time.sleep(0.02)

    def router_routes(self, net):
        """{"popN": best?} of the router's routes to net (BIRD's view)."""
        rows = bird_command(os.path.join(self.dir, "router", "bird.ctl"),
                            "show route %s all" % net)
        out = {}
        for _, text in rows:
            m = re.search(r"\[(pop\d+)_v[46] [^\]]*\]( \*)?", text)
            if m:
                out[m.group(1)] = bool(m.group(2))
        return out

    def router_protocol(self, name):
        """The router's BGP protocol's state line (e.g. "up ... Established")."""
        for code, text in bird_command(os.path.join(self.dir, "router", "bird.ctl"),
                                       "show protocols %s" % name):
            if code == "1002":
                return text
        return ""

    # -- the uplink silently dropping
    def blackhole(self, i, on):
        """Drop everything in and out of POP i's uplink (up0), in its
        namespace, IPv4 first (its time is returned), then IPv6."""
        op = "-I" if on else "-D"
        rules = "*filter\n%s INPUT -i up0 -j DROP\n%s OUTPUT -o up0 -j DROP\nCOMMIT\n" % (op, op)
        t = None
        for tool in ("iptables-restore", "ip6tables-restore"):
            subprocess.run(["ip", "netns", "exec", ns_pop(i), tool, "-w", "--noflush"],
                           input=rules, text=True, check=True, capture_output=True)
            if t is None:
                t = time.monotonic()
        return t

    # -- the disk
    def data_dir(self, i):
        return os.path.join(self.pop_dir(i), "data")

    def free_disk(self, i):
        st = os.statvfs(self.data_dir(i))
        return st.f_bavail * st.f_frsize

    def fill_disk(self, i, leave):
        """Fill POP i's data_dir's file system up to `leave` bytes free
        (0: as full as it gets) with DATA/fill.  The time it was done."""
        path = os.path.join(self.data_dir(i), "fill")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            want = size + self.free_disk(i) - leave
            try:
                os.posix_fallocate(fd, 0, want)
            except OSError:
                pass
            if leave == 0:     # whatever is left, a page at a time
                size = os.fstat(fd).st_size
                while True:
                    try:
                        os.posix_fallocate(fd, size, 4096)
                        size += 4096
                    except OSError:
                        break
        finally:
            os.close(fd)
        return time.monotonic()

    def unfill_disk(self, i):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.data_dir(i), "fill"))
        return time.monotonic()


def stable_at(lab, watch, pop="pop1", timeout=30.0):
    """Until both families' route go to pop, every POP's route is at the
    router and pop's supervisor says announced."""
    i = int(pop[3:])
    deadline = time.monotonic() + timeout
    while True:
        ok = watch.via(4) == pop and watch.via(6) == pop
        if ok:
            ok = (len(lab.router_routes(NET4)) == lab.n and len(lab.router_routes(NET6)) == lab.n
                  and lab.anycast(i).get("state") == "announced")
        if ok:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("not back to a steady state at %s after %.0f s: route v4 %s, "
                               "v6 %s, router has %s, %s says %s"
                               % (pop, timeout, watch.via(4), watch.via(6),
                                  sorted(lab.router_routes(NET4)), pop, lab.anycast(i)))
        time.sleep(0.05)


# ---- the failures ----------------------------------------------------------------------

class Failure:
    """One way pop1 fails: start() puts it in place and returns its time;
    undo() takes it away and returns the time to count "back" from."""
    key = title = ""
    goal = "< 1 s"          # the route; GOAL_S

    def __init__(self, lab):
        self.lab = lab

    def undo(self):
        return time.monotonic()


class Drain(Failure):
    key, title = "drain", "popctl drain"

    def start(self):
        t0 = time.monotonic()
        self.lab.popctl(1, "drain")
        return t0

    def undo(self):
        t = time.monotonic()
        self.lab.popctl(1, "undrain")
        return t


class Kill9(Failure):
    key, title = "kill9", "kill -9 of the mail process"

    def start(self):
        self.pid = self.lab.mail_pid(1)
        t0 = time.monotonic()
        os.kill(self.pid, signal.SIGKILL)
        return t0

    def undo(self):
        # the supervisor restarts it by itself: "back" counts from the kill
        self.lab.wait_mail_pid(1, self.pid, 60)
        return None


class Stop(Failure):
    key, title = "sigstop", "SIGSTOP of the mail process (hung)"
    goal = "< 1 s (heartbeat)"

    def start(self):
        self.pid = self.lab.mail_pid(1)
        t0 = time.monotonic()
        os.kill(self.pid, signal.SIGSTOP)
        return t0

    def undo(self):
        t = time.monotonic()
        os.kill(self.pid, signal.SIGCONT)
        return t


class BirdKilled(Failure):
    key, title = "bird", "BIRD killed (kill -9)"
    goal = "< 1 s (BGP closes)"

    def start(self):
        return self.lab.kill_bird(1)

    def undo(self):
        t = time.monotonic()
        self.lab.start_bird(1)
        return t


class Blackhole(Failure):
    key, title = "blackhole", "uplink silently dropping (BFD)"
    goal = "< 1 s (BFD)"

    def start(self):
        return self.lab.blackhole(1, True)

    def undo(self):
        return self.lab.blackhole(1, False)


FAILURES = (Drain, Kill9, Stop, BirdKilled, Blackhole)


def measure(lab, watch, failure, hold_s):
    """One failure of pop1: route, login and back times (seconds).  The
    failure is undone also when something here goes wrong."""
    stable_at(lab, watch)
    t0 = failure.start()
    undone = False
    try:
        probe = LoginProbe("pop1", t0)
        probe.start()
        r4, r6 = watch.wait_each(lambda v: v != "pop1", 10.0, t0)
        probe.join(15)
        took, ident, attempts = probe.result
        # stay failed a moment (a client finds its new POP) before undoing it
        time.sleep(max(0.0, t0 + hold_s - time.monotonic()))
        undone = True
        tu = failure.undo()
    finally:
        if not undone:
            with contextlib.suppress(Exception):
                failure.undo()
    tu = t0 if tu is None else tu
    back = watch.wait(lambda a, b: a == "pop1" and b == "pop1", 60.0, tu, step=0.005)
    return {"route_s": r4, "route6_s": r6, "login_s": took,
            "login_pop": ident.get("pop") if isinstance(ident, dict) else None,
            "login_error": None if took is not None else ident, "login_failed_tries": attempts,
            "back_s": back}


# ---- the bench ---------------------------------------------------------------------------

def summary(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"median_ms": round(statistics.median(vals) * 1000, 1),
            "max_ms": round(max(vals) * 1000, 1), "n": len(vals)}


def fmt(s):
    return "-" if s is None else "%.0f / %.0f" % (s["median_ms"], s["max_ms"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--popnode", default=os.path.join(ROOT, "bin", "popnode"))
    ap.add_argument("--popctl", default=os.path.join(ROOT, "bin", "popctl"))
    ap.add_argument("--reps", type=int, default=5, help="repetitions of each failure")
    ap.add_argument("--hold", type=float, default=1.0,
                    help="seconds each failure lasts before it is undone")
    ap.add_argument("--json", default=os.path.join(ROOT, "build", "bench", "anycast.json"))
    ap.add_argument("--tmpdir", default=None, help="parent of the lab directory")
    ap.add_argument("--keep", action="store_true", help="keep the lab directory")
    args = ap.parse_args()
    if args.reps < 1 or args.hold < 0:
        ap.error("bad --reps/--hold")

    if os.geteuid() != 0:
        print("anycast convergence: skipped: needs root (network namespaces, BIRD, iptables)")
        return 0
    missing = [t for t in ("ip", "bird", "birdc", "iptables-restore", "ip6tables-restore")
               if shutil.which(t) is None]
    if missing:
        print("anycast convergence: skipped: %s not installed (./configure --install-deps)"
              % ", ".join(missing))
        return 0
    taken = deploylab.lab_namespaces()
    if taken:
        print("anycast convergence: skipped: namespaces of another netns lab exist (%s; "
              "deploy/lab down)" % ", ".join(taken))
        return 0

    def on_signal(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    tmp = tempfile.mkdtemp(prefix="popnode-anycast-", dir=args.tmpdir)
    os.makedirs(os.path.join(tmp, "run"))
    lab = Lab(os.path.join(tmp, "lab"), args.popnode, args.popctl, os.path.join(tmp, "run"))
    started = time.monotonic()
    results = {f.key: [] for f in FAILURES}
    errors, notes = [], []
    watch = None
    state = {}
    try:
        t = time.monotonic()
        lab.up(3, "5,10,20")
        state = lab.state()
        log("lab up in %.1f s (%s), delays %s ms, delay line %s" % (
            time.monotonic() - t, lab.dir, state.get("delays_ms"), state.get("delay_mode")))
        if state.get("addresses_by_lab"):
            raise RuntimeError("the lab adds the anycast addresses itself (popnode does not "
                               "supervise them): nothing to measure")
        lab.add_user(ROAM_USER, ROAM_PASSWORD, ROAM_HOME)
        watch = RouteWatch()
        for rep in range(1, args.reps + 1):
            for cls in FAILURES:
                f = cls(lab)
                try:
                    r = measure(lab, watch, f, args.hold)
                except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                    errors.append("%s #%d: %s" % (f.key, rep, e))
                    log("%s #%d FAILED: %s" % (f.key, rep, e))
                    continue
                results[f.key].append(r)
                log("%-9s #%d: route %s, v6 %s, login at %s %s (failed before: %s), back %s" % (
                    f.key, rep, ms(r["route_s"]), ms(r["route6_s"]), r["login_pop"],
                    ms(r["login_s"]), "; ".join(r["login_failed_tries"]) or "none",
                    ms(r["back_s"])))
                for k in ("route_s", "route6_s", "login_s", "back_s"):
                    if r[k] is None:
                        errors.append("%s #%d: no %s (%s)" % (f.key, rep, k[:-2],
                                                               r["login_error"] or "timeout"))
    except KeyboardInterrupt:
        log("interrupted")
        lab.down()
        return 130
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        errors.append("setup: %s" % e)
        log("setup FAILED: %s" % e)
    finally:
        if watch is not None:
            watch.close()
        # whatever state a failure left: undo it before the lab goes
        with contextlib.suppress(Exception):
            lab.blackhole(1, False)
        lab.down()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    for cls in FAILURES:
        rs = results[cls.key]
        route = summary([r["route_s"] for r in rs])
        route6 = summary([r["route6_s"] for r in rs])
        login = summary([r["login_s"] for r in rs])
        back = summary([r["back_s"] for r in rs])
        met = (route is not None and route["n"] == args.reps and route["max_ms"] < GOAL_S * 1000)
        rows.append({"failure": cls.key, "title": cls.title, "route": route, "route6": route6,
                     "login": login, "back": back, "goal": "route " + cls.goal,
                     "goal_ms": GOAL_S * 1000, "met": met, "samples": rs})

    print()
    print("Anycast convergence: 3-POP netns lab (delays 5/10/20 ms one way, pop1 nearest), "
          "real BIRD %s, BFD 100 ms x 3; pop1 fails, %d times each" % (
              bird_version(), args.reps))
    print("  health: interval 100 ms, heartbeat_timeout 500 ms, hold-down 2 s; %d CPUs; "
          "kernel %s" % (os.cpu_count() or 0, platform.release()))
    print()
    table = [["failure of pop1", "route moved (ms)", "login elsewhere (ms)",
              "pop1 back (ms)", "goal", "met?"],
             ["", "median / max", "median / max", "median / max", "", ""]]
    for r in rows:
        table.append([r["title"], fmt(r["route"]), fmt(r["login"]), fmt(r["back"]),
                      r["goal"], "yes" if r["met"] else "NO"])
    widths = [max(len(row[c]) for row in table) for c in range(len(table[0]))]
    for row in table:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    print()
    print("route moved: from the failure (or the command causing it) until the router's "
          "kernel route to %s no longer goes to pop1." % V4)
    print("login elsewhere: until a client retrying from lab-client (%.2f s connect and "
          "greeting timeouts) is logged in at another POP (IMAP ID)." % TRY_TIMEOUT_S)
    print("pop1 back: from undoing the failure (for kill -9: from the kill; the supervisor "
          "restarts the process) until pop1 has the route again; hold-down 2 s.")
    for n in notes:
        print("note: " + n)
    for e in errors:
        print("error: " + e)
    print("(%.0f s in all)" % (time.monotonic() - started))

    out = {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(),
            "bird": bird_version(), "reps": args.reps, "hold_s": args.hold,
            "delays_ms": state.get("delays_ms"), "delay_mode": state.get("delay_mode"),
            "goal_ms": GOAL_S * 1000, "client_try_timeout_s": TRY_TIMEOUT_S,
            "health": dict(deploylab.LAB_HEALTH),
        },
        "rows": rows,
        "notes": notes,
        "errors": errors,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json + ".tmp", "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    os.replace(args.json + ".tmp", args.json)
    shown = os.path.relpath(args.json)
    print("results: %s" % (os.path.abspath(args.json) if shown.startswith("..") else shown))
    return 1 if errors else 0


def ms(s):
    return "-" if s is None else "%.0f ms" % (s * 1000)


def bird_version():
    try:
        r = subprocess.run(["bird", "--version"], capture_output=True, text=True, timeout=5)
    except OSError:
        return "?"
    m = re.search(r"(\d+\.\d+(\.\d+)?)", r.stdout + r.stderr)
    return m.group(1) if m else "?"


if __name__ == "__main__":
    sys.exit(main())
