"""Anycast end to end: a 3-POP network-namespace lab (deploy/lab --netns,
one-way delays 5, 10 and 20 ms, pop1 the nearest) with real BIRD, where
each popnode's supervisor owns 192.0.2.53/32 and 2001:db8::53/128
(docs/anycast.md).  The router learns the addresses from every POP and a
client lands on pop1; a user homed at pop2 logs in through pop1 and reads
mail delivered at pop3; then pop1 fails in every way the supervisor or
BFD must notice (drain, kill -9 and SIGSTOP of the mail process, BIRD
killed, a silent blackhole of its uplink, a full disk and an unwritable
store) and each time the router's route leaves pop1 within a second and
comes back when pop1 is well again.

Root only, with BIRD and iptables; skipped otherwise, or when another
netns lab's namespaces exist.  One lab for the whole module, `down` in a
finally.  The failure -> route change times are printed (pytest -s).
The lab driver, the router's route over netlink (RouteWatch) and the IMAP
helpers are tests/bench/anycast.py's, which `make bench` uses to measure
the same failures repeatedly.
"""
import importlib.util
import json
import os
import re
import shutil
import signal
import sys
import time

import pytest

from conftest import POPCTL, POPNODE, ROOT

BENCH = os.path.join(ROOT, "tests", "bench", "anycast.py")
PY = "/usr/bin/python3"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the netns lab needs root"),
    pytest.mark.skipif(any(shutil.which(t) is None for t in
                           ("ip", "bird", "birdc", "iptables-restore", "ip6tables-restore")),
                       reason="needs iproute2, BIRD 2 (bird2) and iptables "
                              "(./configure --install-deps installs them)"),
]


def load_bench():
    spec = importlib.util.spec_from_file_location("popnode_bench_anycast", BENCH)
    mod = importlib.util.module_from_spec(spec)
    dont = sys.dont_write_bytecode
    sys.dont_write_bytecode = True     # no __pycache__ in tests/bench
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.dont_write_bytecode = dont
    return mod


A = load_bench()
FIGURES = []       # (what, seconds) for the summary at the end
TMPFS_SIZE = 48 << 20
MIN_FREE = 16 << 20     # the lab's health_min_free_disk


def figure(what, seconds):
    FIGURES.append((what, seconds))
    print("  %-58s %s" % (what, "-" if seconds is None else "%.1f ms" % (seconds * 1000)))


def wait_for(what, fn, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


def away_from(pop):
    return lambda v: v is not None and v != pop


class Env:
    """The lab, the router's route, and what the tests share."""

    def __init__(self, lab, watch):
        self.lab = lab
        self.watch = watch

    def steady(self):
        A.stable_at(self.lab, self.watch, "pop1", timeout=30)

    def moved(self, t0, what, limit=1.0):
        """Both families' route leave pop1 within limit seconds of t0;
        the v4 time."""
        r4, r6 = self.watch.wait_each(away_from("pop1"), max(limit, 3.0), t0)
        figure(what + " -> route v4 moved", r4)
        figure(what + " -> route v6 moved", r6)
        assert r4 is not None and r4 < limit, (what, r4)
        assert r6 is not None and r6 < limit, (what, r6)
        assert self.watch.via(4) == "pop2" and self.watch.via(6) == "pop2"
        # gone at the router, not merely second best
        for net in (A.NET4, A.NET6):
            assert sorted(self.lab.router_routes(net)) == ["pop2", "pop3"], net
        return r4

    def back(self, t0, what, limit=15.0):
        took = self.watch.wait(lambda a, b: a == "pop1" and b == "pop1", limit, t0, step=0.005)
        figure(what + " -> pop1 has the route again", took)
        assert took is not None, what
        return took


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if A.deploylab.lab_namespaces():
        pytest.skip("namespaces of another netns lab exist: %s"
                    % A.deploylab.lab_namespaces())
    base = tmp_path_factory.mktemp("anycast")
    (base / "run").mkdir()
    lab = A.Lab(str(base / "lab"), POPNODE, POPCTL, str(base / "run"))
    watch = None
    data1 = os.path.join(lab.dir, "pop1", "data")
    try:
        r = lab.up(3, "5,10,20", tmpfs={1: "%dM" % (TMPFS_SIZE >> 20)})
        assert "managed by popnode" in r.stdout, r.stdout + r.stderr
        lab.add_user(A.ROAM_USER, A.ROAM_PASSWORD, A.ROAM_HOME)
        watch = A.RouteWatch()
        yield Env(lab, watch)
    finally:
        if watch is not None:
            watch.close()
        r = lab.down()
        print(r.stdout, r.stderr)
        if FIGURES:
            print("\nanycast lab, failure -> route change at the router:")
            for what, s in FIGURES:
                print("  %-58s %s" % (what, "-" if s is None else "%.1f ms" % (s * 1000)))
    assert A.deploylab.lab_namespaces() == []
    assert not os.path.ismount(data1), "the tmpfs on pop1's data_dir is still mounted"


def test_every_pop_announces_and_the_nearest_wins(env):
    lab = env.lab
    state = lab.state()
    assert state["addresses_by_lab"] is False and state["tmpfs_data"] == {"1": "48M"}
    for i in (1, 2, 3):
        conf = open(lab.conf(i)).read()
        for line in ("anycast_address 192.0.2.53/32", "anycast_address 2001:db8::53/128",
                     "anycast_interface any0", "anycast_create_dummy no",
                     "bird_socket %s/pop%d/bird.ctl" % (lab.dir, i), "health_interval 100ms",
                     "health_hold_down 2s", "heartbeat_timeout 500ms",
                     "health_min_free_disk 16M"):
            assert line + "\n" in conf, (i, line)
        st = lab.anycast(i)
        assert st["supervised"] is True and st["state"] == "announced" and st["bird_up"], st
        # the supervisor, not the lab, holds the addresses: its child serves
        assert lab.mail_pid(i) is not None
    env.steady()
    for net in (A.NET4, A.NET6):
        routes = lab.router_routes(net)
        assert routes == {"pop1": True, "pop2": False, "pop3": False}, (net, routes)
    assert env.watch.via(4) == "pop1" and env.watch.via(6) == "pop1"
    # a client lands on pop1, IPv4 and IPv6
    assert A.greeting(A.V4) == "pop1"
    assert A.greeting(A.V6) == "pop1"


LMTP_AT_POP = r"""
import smtplib, sys
s = smtplib.LMTP(sys.argv[1], 24, timeout=10)
code, banner = s.docmd("LHLO", "lab")
refused = s.sendmail("sender@example.org", [sys.argv[2]],
                     "Subject: %s\r\nFrom: sender@example.org\r\n\r\nvia pop3\r\n" % sys.argv[3])
s.quit()
print(repr(refused))
"""

IMAP_READ = r"""
import imaplib, json, re, sys
imaplib.Commands["ID"] = ("NONAUTH", "AUTH", "SELECTED")
m = imaplib.IMAP4(sys.argv[1], 143, timeout=10)
out = {"greeting": m.welcome.decode()}
m.login(sys.argv[2], sys.argv[3])
m.xatom("ID", "NIL")
out["id"] = dict(re.findall(r'"([^"]*)" "([^"]*)"',
                            b" ".join(m.untagged_responses.pop("ID")).decode()))
m.select("INBOX")
typ, data = m.search(None, "SUBJECT", sys.argv[4])
out["found"] = data[0].decode().split()
if out["found"]:
    typ, data = m.fetch(out["found"][0], "(BODY.PEEK[TEXT])")
    out["body"] = data[0][1].decode()
m.logout()
print(json.dumps(out))
"""


def test_roaming_login_through_pop1_reads_mail_delivered_at_pop3(env):
    lab = env.lab
    subject = "anycast-%d" % os.getpid()
    # LMTP on the anycast address inside pop3's namespace: pop3 itself,
    # which forwards to alice's home, pop2
    r = lab.lab("exec", "pop3", PY, "-c", LMTP_AT_POP, A.V4, "alice@example.com", subject)
    assert r.stdout.strip() == "{}", r.stdout + r.stderr
    with open(os.path.join(lab.dir, "pop2", "popnode.log")) as f:
        assert re.search(r"event=forward\.deliver via=pop3 user=alice .*result=ok", f.read())
    # IMAP over the anycast address from lab-client: pop1, roaming to pop2
    r = lab.lab("exec", "client", PY, "-c", IMAP_READ, A.V4, A.ROAM_USER, A.ROAM_PASSWORD,
                subject)
    out = json.loads(r.stdout)
    assert out["greeting"].endswith("ready pop1"), out
    assert out["id"].get("pop") == "pop1" and out["id"].get("mailbox-pop") == "pop2", out
    assert len(out["found"]) == 1 and "via pop3" in out["body"], out
    # the same over IPv6
    r = lab.lab("exec", "client", PY, "-c", IMAP_READ, A.V6, A.ROAM_USER, A.ROAM_PASSWORD,
                subject)
    out = json.loads(r.stdout)
    assert out["id"].get("pop") == "pop1" and out["id"].get("mailbox-pop") == "pop2", out
    assert len(out["found"]) == 1, out


def test_drain_and_undrain(env):
    lab = env.lab
    env.steady()
    # idle clients at pop1: one whose mailbox is there (demo), one roaming
    local = A.imap_connect(A.V4, 3)
    local.login("demo", "demo")
    local.select("INBOX")
    roaming = A.imap_connect(A.V4, 3)
    roaming.login(A.ROAM_USER, A.ROAM_PASSWORD)
    roaming.select("INBOX")
    try:
        t0 = time.monotonic()
        r = lab.lab("popctl", "pop1", "drain")
        assert "drained: yes" in r.stdout, r.stdout
        env.moved(t0, "popctl drain (deploy/lab popctl)")
        local.sock.settimeout(3)
        line = local.readline()
        assert line.startswith(b"* BYE [UNAVAILABLE]"), line
        figure("popctl drain -> idle client got BYE", time.monotonic() - t0)
        # a roaming session is closed (its front cannot inject a BYE)
        roaming.sock.settimeout(3)
        line = roaming.readline()
        assert line == b"" or line.startswith(b"* BYE [UNAVAILABLE]"), line
        st = lab.anycast(1)
        assert st["state"] == "withdrawn" and st["reason"] == "drained" and st["drained"], st
        # new sessions land on pop2
        pop, ident = A.imap_login(A.V4, A.ROAM_USER, A.ROAM_PASSWORD)
        assert pop == "pop2" and ident["pop"] == "pop2", (pop, ident)
        # undrain at once: pop1 is back only after the 2 s hold-down
        time.sleep(0.3)
        t1 = time.monotonic()
        lab.lab("popctl", "pop1", "undrain")
        took = env.back(t1, "popctl undrain")
        assert took + (t1 - t0) >= 1.9, "announced again before the 2 s hold-down"
        assert A.greeting(A.V4) == "pop1"
    finally:
        lab.popctl(1, "undrain", check=False)
        for m in (local, roaming):
            m.shutdown()


def test_mail_process_killed(env):
    lab = env.lab
    env.steady()
    m = A.imap_connect(A.V4, 3)
    m.login(A.ROAM_USER, A.ROAM_PASSWORD)
    assert A.imap_id(m)["pop"] == "pop1"
    sup, pid = lab.supervisor_pid(1), lab.mail_pid(1)
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    env.moved(t0, "kill -9 of the mail process")
    # the client's connection is gone; it reconnects and logs in at pop2
    with pytest.raises((OSError, EOFError, A.imaplib.IMAP4.abort)):
        m.sock.settimeout(3)
        m.noop()
    m.shutdown()
    took, ident, _ = A.login_elsewhere("pop1", t0, t0 + 10)
    figure("kill -9 of the mail process -> client logged in at pop2", took)
    assert took is not None and ident["pop"] == "pop2", ident
    # the supervisor (the same process) restarts it; pop1 is nearest again
    assert lab.supervisor_pid(1) == sup
    assert lab.wait_mail_pid(1, pid) != pid
    env.back(t0, "kill -9 (restarted by the supervisor)")
    assert lab.supervisor_pid(1) == sup
    assert A.greeting(A.V4) == "pop1"
    with open(os.path.join(lab.dir, "pop1", "popnode.log")) as f:
        text = f.read()
    assert "event=anycast.mail_process_gone pid=%d" % pid in text


def test_mail_process_stopped(env):
    lab = env.lab
    env.steady()
    pid = lab.mail_pid(1)
    t0 = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        took = env.moved(t0, "SIGSTOP of the mail process")
        # it is the heartbeat's silence (500 ms) that did it
        assert took >= 0.3, took
        time.sleep(0.2)
        assert lab.mail_pid(1) == pid, "a stopped mail process is not killed"
    finally:
        t1 = time.monotonic()
        os.kill(pid, signal.SIGCONT)
    env.back(t1, "SIGCONT")
    assert lab.mail_pid(1) == pid
    assert A.greeting(A.V4) == "pop1"


def test_bird_killed(env):
    lab = env.lab
    env.steady()
    t0 = lab.kill_bird(1)
    try:
        # the BGP sessions close: the router drops pop1 at once
        env.moved(t0, "BIRD killed on pop1", limit=0.5)
        assert "Established" not in lab.router_protocol("pop1_v4")
        st = wait_for("pop1's supervisor to see BIRD down",
                      lambda: (lambda s: s if s["bird_up"] is False else None)(lab.anycast(1)))
        assert st["state"] == "withdrawn" and st["reason"] == "bird down", st
    finally:
        t1 = time.monotonic()
        lab.start_bird(1)
    env.back(t1, "BIRD started again")
    assert A.greeting(A.V4) == "pop1"


def test_blackhole_bfd(env):
    lab = env.lab
    env.steady()
    t0 = lab.blackhole(1, True)
    try:
        env.moved(t0, "uplink blackhole (iptables DROP), BFD")
        assert "BFD session down" in lab.router_protocol("pop1_v4")
        # pop1 itself is healthy and still announces: only BFD saw it
        assert lab.anycast(1)["state"] == "announced"
        assert A.greeting(A.V4) == "pop2"
    finally:
        t1 = lab.blackhole(1, False)
    env.back(t1, "blackhole removed", limit=30)
    assert A.greeting(A.V4) == "pop1"


def test_disk_full_and_store_unwritable(env):
    lab = env.lab
    env.steady()
    free = lab.free_disk(1)
    assert MIN_FREE < free <= TMPFS_SIZE, free     # pop1's data_dir is the tmpfs
    try:
        # below health_min_free_disk: withdrawn after health_fall (2) ticks
        t0 = lab.fill_disk(1, 8 << 20)
        assert lab.free_disk(1) < MIN_FREE
        env.moved(t0, "disk below health_min_free_disk")
        st = lab.anycast(1)
        assert st["state"] == "withdrawn" and st["reason"].startswith("free_disk "), st
        # full: a delivery to pop1 (through pop2's LMTP: pop1's own is not
        # reachable while it is withdrawn) fails to commit
        lab.fill_disk(1, 0)
        big = "Subject: big\r\n\r\n" + ("x" * 76 + "\r\n") * 20000
        with pytest.raises(A.smtplib.SMTPDataError) as e:
            A.lmtp_deliver(A.ns_pop(2), "demo@example.com", big)
        assert e.value.smtp_code == 451, e.value
        with open(os.path.join(lab.dir, "pop1", "popnode.log")) as f:
            assert 'event=store.commit_failed' in f.read()
        # space again, but the store's last commit failed: it stays
        # withdrawn well past the hold-down and health_rise
        lab.unfill_disk(1)
        assert lab.free_disk(1) > MIN_FREE
        time.sleep(3.0)
        assert env.watch.via(4) == "pop2" and lab.anycast(1)["state"] == "withdrawn"
        # a commit that works: writable, announced again (hold-down long past)
        t1 = time.monotonic()
        assert A.lmtp_deliver(A.ns_pop(2), "demo@example.com",
                              "Subject: small\r\n\r\nfits\r\n") == {}
        env.back(t1, "a commit works again (store writable)", limit=5)
    finally:
        lab.unfill_disk(1)
    # and the plain disk-full case alone: freed space brings it back after
    # the hold-down
    env.steady()
    t0 = lab.fill_disk(1, 8 << 20)
    try:
        env.moved(t0, "disk below health_min_free_disk (again)")
    finally:
        t1 = lab.unfill_disk(1)
    took = env.back(t1, "disk space freed")
    assert took + (t1 - t0) >= 1.9, "announced again before the 2 s hold-down"
    assert A.greeting(A.V4) == "pop1"
