"""The anycast supervisor in a network namespace with a real BIRD: popnode
announces 192.0.2.53/32 and 2001:db8::53/128 on any0 (a veth stand-in for
the dummy interface this kernel lacks) only while healthy, and withdraws
within a second when the mail process dies (kill -9), stops (SIGSTOP), is
drained, or BIRD goes away (docs/anycast.md).  Also: the supervisor runs
with no capabilities beyond anycast/caps.c's list, and so does the mail
process it starts, before and after it drops to `user`.  Root only."""
import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import POPCTL, POPNODE, free_ports, proc_gone

V4 = "192.0.2.53"
V6 = "2001:db8::53"

# anycast/caps.c's list, by number: CAP_NET_BIND_SERVICE, CAP_NET_ADMIN,
# CAP_SETUID, CAP_SETGID, CAP_KILL, CAP_DAC_OVERRIDE
KEPT_MASK = (1 << 10) | (1 << 12) | (1 << 7) | (1 << 6) | (1 << 5) | (1 << 1)
KEPT_TEXT = "cap_net_bind_service,cap_net_admin,cap_setuid,cap_setgid,cap_kill,cap_dac_override"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("bird") is None,
    reason="needs root, iproute2 and BIRD 2 (./configure --install-deps installs bird2)")


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, **kw)


def addrs(ns):
    out = sh("ip", "-n", ns, "-j", "addr", "show", "dev", "any0").stdout
    return {a["local"] for link in json.loads(out) for a in link.get("addr_info", [])}


def announced(ns):
    a = addrs(ns)
    return V4 in a and V6 in a


def withdrawn(ns):
    a = addrs(ns)
    return V4 not in a and V6 not in a


def wait_for(what, fn, timeout=10.0, step=0.01):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if fn():
            return time.monotonic() - t0
        time.sleep(step)
    raise AssertionError("timed out waiting for " + what)


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def proc_status(pid):
    """/proc/PID/status as a dict; the Cap* fields as ints."""
    st = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            st[k] = v.strip()
    for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        st[k] = int(st[k], 16)
    return st


class Pop:
    def __init__(self, tmp, user=None):
        self.ns = "popnode-sv-" + uuid.uuid4().hex[:8]
        self.tmp = tmp
        self.bird = None
        self.proc = None
        sh("ip", "netns", "add", self.ns)
        for cmd in (["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"],
                    ["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"],
                    ["ip", "link", "set", "lo", "up"],
                    ["ip", "link", "add", "any0", "type", "veth", "peer", "name", "any0p"],
                    ["ip", "link", "set", "any0", "up"],
                    ["ip", "link", "set", "any0p", "up"]):
            sh("ip", "netns", "exec", self.ns, *cmd)
        self.bird_sock = os.path.join(tmp, "bird.ctl")
        self.bird_conf = os.path.join(tmp, "bird.conf")
        with open(self.bird_conf, "w") as f:
            f.write('router id 10.255.0.1;\nprotocol device {}\n'
                    'protocol direct anycast { ipv4; ipv6; interface "any0"; }\n')
        self.data = os.path.join(tmp, "data")
        self.sock = os.path.join(tmp, "control.sock")
        self.log = os.path.join(tmp, "popnode.log")
        self.conf = os.path.join(tmp, "popnode.conf")
        lmtp, = free_ports(1)
        with open(self.conf, "w") as f:
            f.write(f"""node_id sv1
data_dir {self.data}
control_socket {self.sock}
log {self.log}
domain example.com
map_size 64M
listen imap {V4}:1143 plaintext-auth no-starttls
listen imap [{V6}]:1143 plaintext-auth no-starttls
listen lmtp 127.0.0.1:{lmtp}
anycast_address {V4}/32
anycast_address {V6}/128
anycast_interface any0
anycast_create_dummy no
bird_socket {self.bird_sock}
health_interval 100ms
health_rise 2
health_fall 2
health_hold_down 1s
health_min_free_disk 0
heartbeat_timeout 500ms
""")
            if user is not None:
                f.write("user %s\n" % user)

    def start_bird(self):
        self.bird = subprocess.Popen(["ip", "netns", "exec", self.ns, "bird", "-f", "-c",
                                      self.bird_conf, "-s", self.bird_sock, "-P",
                                      os.path.join(self.tmp, "bird.pid")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("BIRD's socket", lambda: os.path.exists(self.bird_sock), timeout=5)

    def stop_bird(self):
        if self.bird is not None:
            self.bird.kill()
            self.bird.wait()
            self.bird = None

    def start(self):
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, POPNODE, "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log + ".err", "ab"))

    def mail_pid(self):
        kids = children(self.proc.pid)
        return kids[0] if kids else None

    def popctl(self, *args):
        return sh(POPCTL, "-s", self.sock, *args)

    def imap_banner(self):
        r = sh("ip", "netns", "exec", self.ns, "/usr/bin/python3", "-c",
               "import socket; s=socket.create_connection(('%s',1143),timeout=3);"
               "f=s.makefile('rb'); print(f.readline().decode())" % V4, check=False)
        return r.stdout

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in children(self.proc.pid) if self.proc else []:
            os.kill(pid, signal.SIGKILL)
        self.stop_bird()
        sh("ip", "netns", "del", self.ns, check=False)


@pytest.fixture
def pop():
    with running_pop() as p:
        yield p


@contextlib.contextmanager
def running_pop(user=None, setup=None):
    tmp = tempfile.mkdtemp(prefix="popnode-sv-")
    p = Pop(tmp, user)
    try:
        if setup is not None:
            setup(p)
        p.start_bird()
        p.start()
        yield p
    finally:
        p.close()
        log = ""
        if os.path.exists(p.log):
            with open(p.log) as f:
                log = f.read()
        shutil.rmtree(tmp, ignore_errors=True)
        assert "ERROR: AddressSanitizer" not in log and "runtime error:" not in log, log


def test_announce_when_healthy_and_withdraw_on_every_failure(pop):
    wait_for("announced at start", lambda: announced(pop.ns))
    assert "popnode IMAP4rev1 ready sv1" in pop.imap_banner()
    routes = sh("ip", "netns", "exec", pop.ns, "birdc", "-s", pop.bird_sock, "show", "route").stdout
    assert "192.0.2.53/32" in routes
    out = pop.popctl("status").stdout
    assert "anycast:     announced on any0 (2 prefixes), BIRD up" in out
    # BIRD's protocols, as the supervisor read them over BIRD's socket
    def protocols():
        st = json.loads(pop.popctl("status", "--json").stdout)
        return {p["name"]: p for p in st["anycast"]["bird_protocols"]}
    wait_for("BIRD's protocols in status", lambda: "anycast" in protocols(), timeout=5)
    p = protocols()["anycast"]
    assert p["proto"] == "Direct" and p["state"] == "up", p

    # kill -9 of the mail process: withdrawn within a second, restarted, announced again
    pid = pop.mail_pid()
    os.kill(pid, signal.SIGKILL)
    took = wait_for("withdrawn after kill -9", lambda: withdrawn(pop.ns), timeout=1.0, step=0.002)
    print("withdrawn %.1f ms after kill -9 of the mail process" % (took * 1000))
    assert took < 1.0
    wait_for("restarted and announced", lambda: announced(pop.ns), timeout=15)
    assert pop.mail_pid() not in (None, pid)

    # SIGSTOP (a hung process): withdrawn within a second; SIGCONT: back
    pid = pop.mail_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        took = wait_for("withdrawn while stopped", lambda: withdrawn(pop.ns), timeout=1.0,
                        step=0.005)
        print("withdrawn %.1f ms after SIGSTOP of the mail process" % (took * 1000))
        assert took < 1.0
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for("announced after SIGCONT", lambda: announced(pop.ns), timeout=10)

    # drain and undrain
    assert "drained: yes" in pop.popctl("drain").stdout
    took = wait_for("withdrawn when drained", lambda: withdrawn(pop.ns), timeout=1.0, step=0.005)
    print("withdrawn %.1f ms after popctl drain" % (took * 1000))
    pop.popctl("undrain")
    wait_for("announced after undrain", lambda: announced(pop.ns), timeout=10)

    # BIRD gone: a health failure, reported; back when BIRD is
    pop.stop_bird()
    took = wait_for("withdrawn without BIRD", lambda: withdrawn(pop.ns), timeout=5)
    print("withdrawn %.1f ms after BIRD was killed" % (took * 1000))
    wait_for("status says BIRD down", lambda: "BIRD down" in pop.popctl("status").stdout,
             timeout=5)
    pop.start_bird()
    wait_for("announced with BIRD back", lambda: announced(pop.ns), timeout=15)

    # SIGTERM: withdraw first, then the mail process stops, exit 0
    pop.proc.send_signal(signal.SIGTERM)
    assert pop.proc.wait(timeout=40) == 0
    assert withdrawn(pop.ns)
    with open(pop.log) as f:
        log = f.read()
    for event in ("anycast.announce", "anycast.withdraw", "anycast.mail_process_gone",
                  "anycast.mail_process_started"):
        assert "event=" + event in log, event


def test_supervisor_killed_takes_the_mail_process_with_it(pop):
    wait_for("announced at start", lambda: announced(pop.ns))
    child = pop.mail_pid()
    pop.proc.kill()        # SIGKILL of the supervisor itself
    pop.proc.wait()

    wait_for("the mail process dies with its supervisor", lambda: proc_gone(child), timeout=2)
    # (the addresses stay: nothing is left to withdraw them) -- the next
    # supervisor withdraws at start, then announces once healthy
    pop.start()

    def restarted():
        with open(pop.log) as f:
            return f.read().count("reason=\"starting: withdrawn until healthy\"") == 2
    wait_for("the new supervisor withdrew at start", restarted, timeout=5)
    wait_for("announced again by the new supervisor", lambda: announced(pop.ns), timeout=15)
    assert pop.mail_pid() is not None


def check_caps(pop, user):
    """The supervisor holds exactly the kept list in its bounding,
    permitted, effective and inheritable sets, and logged it; its child,
    the mail process, has the same bounding set and, once it serves, the
    list (as uid 0) or nothing (as `user`) in the others."""
    wait_for("announced at start", lambda: announced(pop.ns))
    sv = proc_status(pop.proc.pid)
    assert sv["Uid"].split()[0] == "0", sv["Uid"]
    for k in ("CapBnd", "CapPrm", "CapEff", "CapInh"):
        assert sv[k] == KEPT_MASK, (k, hex(sv[k]), hex(KEPT_MASK))
    assert sv["CapAmb"] == 0
    with open(pop.log) as f:
        assert 'event=anycast.caps kept="%s"' % KEPT_TEXT in f.read()

    mail = proc_status(pop.mail_pid())
    assert mail["CapBnd"] == KEPT_MASK, hex(mail["CapBnd"])
    if user is None:
        assert mail["Uid"].split()[0] == "0", mail["Uid"]
        assert mail["CapPrm"] == KEPT_MASK and mail["CapEff"] == KEPT_MASK
    else:
        uid = pwd.getpwnam(user).pw_uid
        assert mail["Uid"].split() == [str(uid)] * 4, mail["Uid"]
        assert mail["CapPrm"] == 0 and mail["CapEff"] == 0, mail
    assert "popnode IMAP4rev1 ready sv1" in pop.imap_banner()


def test_capabilities_limited(pop):
    check_caps(pop, None)
    # a restarted mail process gets the same (the supervisor execs it again)
    pid = pop.mail_pid()
    os.kill(pid, signal.SIGKILL)
    wait_for("restarted and announced",
             lambda: pop.mail_pid() not in (None, pid) and announced(pop.ns), timeout=15)
    assert proc_status(pop.mail_pid())["CapBnd"] == KEPT_MASK


def test_capabilities_limited_with_run_user():
    """With `user nobody` the mail process binds as uid 0 (port 1143 here;
    the same bounding set), then setgid/setuid with only the kept list."""
    def own_data(p):
        nobody = pwd.getpwnam("nobody")
        os.chmod(p.tmp, 0o755)
        os.mkdir(p.data, 0o700)
        os.chown(p.data, nobody.pw_uid, nobody.pw_gid)

    with running_pop("nobody", own_data) as p:
        check_caps(p, "nobody")
