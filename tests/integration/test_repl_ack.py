"""replication_ack = mirror (docs/replication.md "Durability:
replication_ack") on real clusters (cluster.py).

pop1 pins `mirrors pop2 pop3` (a fourth POP, the front of a forwarded
delivery, where needed).  With ack=mirror an LMTP 250 / IMAP APPEND OK of
pop1 comes only once a mirror applied the commit: right after the 250 the
message is in a mirror's copy (`popctl mirror list pop1` there), and the
wait is counted.  With both mirrors SIGSTOPped nothing is answered until
replication_ack_timeout has passed; then `replication_degraded accept`
answers 250 / OK (status shows "degraded", the log event=repl.degraded),
`tempfail` answers 451 4.4.1 / NO [UNAVAILABLE]; after SIGCONT the state
returns to ok (event=repl.recovered).  ack=local answers at once with the
mirrors stopped.
"""
import imaplib
import json
import os
import signal
import smtplib
import time

import pytest

from cluster import cluster  # noqa: F401  (the fixture)
from mail import lmtp, msg

TIMEOUT = 3      # replication_ack_timeout in these tests, seconds
# A mirror in sync acknowledges (heartbeats) about every second, so with
# the mirrors stopped the node degrades between TIMEOUT - ~1.3 s and
# TIMEOUT after the stop.
MIN_WAIT = TIMEOUT - 1.5


def status(node):
    return json.loads(node.popctl("status", "--json").stdout)


def ack_status(node):
    return status(node)["replication_ack"]


def wait_ack_state(node, state, timeout=40, in_sync=None):
    deadline = time.time() + timeout
    while True:
        a = ack_status(node)
        if a["state"] == state and (in_sync is None or a["mirrors_in_sync"] >= in_sync):
            return a
        if time.time() > deadline:
            raise AssertionError(f"replication_ack not {state}: {a}\n" + node.read_log()[-3000:])
        time.sleep(0.1)


def mirror_messages(node, origin="pop1", user="alice"):
    """Messages of user's INBOX in node's copy of origin (0 if none yet)."""
    r = node.popctl("mirror", "list", origin, check=False)
    if r.returncode != 0:
        return 0
    for line in r.stdout.splitlines()[1:]:
        f = line.split()
        if f[0] == user and f[1] == "INBOX":
            return int(f[2])
    return 0


def deliver_timed(node, rcpt, body):
    """LMTP to node: (seconds until the reply after DATA, (code, text))."""
    with lmtp(node) as c:
        c.ehlo_or_helo_if_needed()
        assert c.mail("sender@example.org")[0] == 250
        assert c.rcpt(rcpt)[0] == 250
        t0 = time.time()
        code, text = c.data(body)
        return time.time() - t0, (code, text.decode(errors="replace"))


def imap_login(node, user="alice", password="secret"):
    c = imaplib.IMAP4("127.0.0.1", node.ports["imapplain"], timeout=60)
    c.login(user, password)
    return c


def append_timed(c, subject):
    t0 = time.time()
    try:
        typ, data = c.append("INBOX", None, None, msg(subject))
    except imaplib.IMAP4.error as e:     # imaplib raises on NO
        typ, data = "NO", [str(e).encode()]
    return time.time() - t0, typ, b" ".join(d for d in data if isinstance(d, bytes)).decode()


class Stopped:
    """SIGSTOP the given POPs for the with-block (SIGCONT always)."""

    def __init__(self, *nodes):
        self.nodes = nodes

    def __enter__(self):
        for n in self.nodes:
            os.kill(n.proc.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        for n in self.nodes:
            os.kill(n.proc.pid, signal.SIGCONT)
        return False


def make(cluster, n=3, extra="", more_pop1=""):
    c = cluster(n, extra=f"replication_ack_timeout {TIMEOUT}s\n" + extra,
                extra_for={"pop1": "mirrors pop2 pop3\n" + more_pop1})
    c.add_user("alice", home="pop1", password="secret")
    wait_ack_state(c[1], "ok", in_sync=2)
    return c


def test_250_means_a_mirror_has_it(cluster):
    c = make(cluster)
    pop1 = c[1]
    a0 = ack_status(pop1)
    assert a0["mode"] == "mirror" and a0["degraded_policy"] == "accept"
    for i in range(1, 4):
        took, (code, text) = deliver_timed(pop1, "alice@example.com", msg(f"m{i}"))
        assert code == 250, text
        # the 250 came after a mirror applied it: one of them holds it now
        assert max(mirror_messages(c[2]), mirror_messages(c[3])) >= i
    a = ack_status(pop1)
    assert a["waits"]["acked"] >= a0["waits"]["acked"] + 3
    assert a["waits"]["degraded"] == 0 and a["state"] == "ok"
    # IMAP APPEND likewise
    im = imap_login(pop1)
    try:
        took, typ, text = append_timed(im, "appended")
        assert typ == "OK" and "APPENDUID" in text, text
    finally:
        im.logout()
    assert max(mirror_messages(c[2]), mirror_messages(c[3])) >= 4
    assert ack_status(pop1)["waits"]["acked"] >= a0["waits"]["acked"] + 4
    st = pop1.popctl("status").stdout
    assert "replication: ack mirror, ok for" in st and "2 mirrors in sync" in st, st


def test_mirrors_stopped_accept(cluster):
    c = make(cluster)
    pop1 = c[1]
    with Stopped(c[2], c[3]):
        took, (code, text) = deliver_timed(pop1, "alice@example.com", msg("held"))
        assert code == 250, text
        assert took >= MIN_WAIT, f"answered after {took:.2f}s, before the timeout"
        assert took < TIMEOUT + 3
        a = ack_status(pop1)
        assert a["state"] == "degraded", a
        assert "pop2" in a["reason"] and "pop3" in a["reason"], a
        assert a["degraded_total"] == 1 and a["waits"]["degraded"] >= 1
        assert "event=repl.degraded" in pop1.read_log()
        st = pop1.popctl("status").stdout
        assert "replication: ack mirror, DEGRADED" in st and "accept" in st, st
        metrics = pop1.popctl("status", "--json").stdout
        assert '"state": "degraded"' in metrics
        # degraded: the next answers come at once, at local durability
        took, (code, text) = deliver_timed(pop1, "alice@example.com", msg("at-once"))
        assert code == 250 and took < 1.0, (took, text)
        im = imap_login(pop1)
        try:
            took, typ, text = append_timed(im, "append-degraded")
            assert typ == "OK" and took < 1.0, (took, typ, text)
        finally:
            im.logout()
    a = wait_ack_state(pop1, "ok", in_sync=1)
    assert "in sync" in a["reason"], a
    assert "event=repl.recovered" in pop1.read_log()
    # both stored messages reach the mirrors; a new 250 waits for them again
    took, (code, text) = deliver_timed(pop1, "alice@example.com", msg("after"))
    assert code == 250, text
    assert max(mirror_messages(c[2]), mirror_messages(c[3])) == 4


def test_mirrors_stopped_tempfail(cluster):
    c = make(cluster, extra="replication_degraded tempfail\n")
    pop1 = c[1]
    assert ack_status(pop1)["degraded_policy"] == "tempfail"
    im = imap_login(pop1)
    try:
        with Stopped(c[2], c[3]):
            # an APPEND waits, then NO [UNAVAILABLE]
            took, typ, text = append_timed(im, "append-held")
            assert typ == "NO" and "UNAVAILABLE" in text, (typ, text)
            assert took >= MIN_WAIT, f"answered after {took:.2f}s"
            # LMTP: 451 4.4.1 at once while degraded
            took, (code, text) = deliver_timed(pop1, "alice@example.com", msg("tempfailed"))
            assert code == 451 and text.startswith("4.4.1"), (code, text)
            assert took < 1.0
            a = ack_status(pop1)
            assert a["state"] == "degraded" and a["waits"]["tempfail"] >= 2, a
        wait_ack_state(pop1, "ok", in_sync=1)
        took, typ, text = append_timed(im, "append-ok")
        assert typ == "OK", (typ, text)
    finally:
        im.logout()
    took, (code, text) = deliver_timed(pop1, "alice@example.com", msg("ok-again"))
    assert code == 250, text


def test_lmtp_waits_then_tempfail(cluster):
    """The LMTP reply itself is held until the timeout, then 451."""
    c = make(cluster, extra="replication_degraded tempfail\n")
    pop1 = c[1]
    with Stopped(c[2], c[3]):
        took, (code, text) = deliver_timed(pop1, "alice@example.com", msg("held-451"))
        assert code == 451 and text.startswith("4.4.1"), (code, text)
        assert "no mirror acknowledged" in text
        assert took >= MIN_WAIT, f"answered after {took:.2f}s"
    wait_ack_state(pop1, "ok", in_sync=1)


def test_forwarded_delivery_waits_at_the_home(cluster):
    """A delivery forwarded from pop4 to the home pop1: the home's answer
    (the front's 250) waits for pop1's mirrors too."""
    c = make(cluster, n=4, extra="replication_degraded tempfail\n")
    pop1, pop4 = c[1], c[4]
    took, (code, text) = deliver_timed(pop4, "alice@example.com", msg("fwd-ok"))
    assert code == 250, text
    assert max(mirror_messages(c[2]), mirror_messages(c[3])) >= 1
    with Stopped(c[2], c[3]):
        took, (code, text) = deliver_timed(pop4, "alice@example.com", msg("fwd-held"))
        assert code == 451 and "no mirror acknowledged" in text, (code, text)
        assert "pop1" in text
        assert took >= MIN_WAIT, f"answered after {took:.2f}s"
    wait_ack_state(pop1, "ok", in_sync=1)


def test_ack_local_answers_at_once(cluster):
    c = cluster(3, extra=f"replication_ack local\nreplication_ack_timeout {TIMEOUT}s\n",
                extra_for={"pop1": "mirrors pop2 pop3\n"})
    c.add_user("alice", home="pop1", password="secret")
    pop1 = c[1]
    a = ack_status(pop1)
    assert a["mode"] == "local" and a["state"] == "off", a
    with Stopped(c[2], c[3]):
        for i in range(2):
            took, (code, text) = deliver_timed(pop1, "alice@example.com", msg(f"local{i}"))
            assert code == 250 and took < 1.0, (took, text)
        im = imap_login(pop1)
        try:
            took, typ, text = append_timed(im, "append-local")
            assert typ == "OK" and took < 1.0, (took, typ, text)
        finally:
            im.logout()
        time.sleep(TIMEOUT + 0.5)
        a = ack_status(pop1)
        assert a["state"] == "off" and a["degraded_total"] == 0, a
    assert "event=repl.degraded" not in pop1.read_log()
    assert "replication: ack local" in pop1.popctl("status").stdout


def test_single_node_not_applicable(make_node):
    n = make_node()
    a = json.loads(n.popctl("status", "--json").stdout)["replication_ack"]
    assert a["mode"] == "mirror" and a["state"] == "no-mirrors", a
    n.add_user("alice")
    with lmtp(n) as c:
        t0 = time.time()
        assert c.sendmail("s@example.org", ["alice@example.com"], msg("single")) == {}
        assert time.time() - t0 < 1.0
    assert "no mirrors configured" in n.popctl("status").stdout
