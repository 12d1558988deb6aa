"""Replication of a POP's changelog to its mirrors (docs/replication.md),
on a real three-POP cluster (cluster.py): pop1 pins `mirrors pop2 pop3`.

Deliveries over LMTP and IMAP APPEND / STORE / EXPUNGE / COPY at pop1 must
reach both mirrors: `popctl lag --json` at pop1 shows applied == last for
each, and `popctl mirror list pop1` at pop2 and pop3 (users, mailboxes,
message counts, UIDVALIDITY, UIDNEXT and a digest of UIDs, flags,
keywords and body hashes) equals pop1's own `popctl mirror list pop1`.
A mirror stopped for a while catches up after its restart, and the lag
returns to 0.
"""
import imaplib
import json
import os
import time

import pytest

from cluster import cluster  # noqa: F401  (the fixture)
from mail import deliver, lmtp, msg


def lag(node):
    return json.loads(node.popctl("lag", "--json").stdout)


def content(node, origin="pop1"):
    """{(user, mailbox): (messages, uidvalidity, uidnext, digest)} as
    `popctl mirror list` prints it (no blank in the test's names)."""
    lines = node.popctl("mirror", "list", origin).stdout.splitlines()
    assert lines[0].split() == ["USER", "MAILBOX", "MESSAGES", "UIDVALIDITY", "UIDNEXT", "DIGEST"]
    rows = {}
    for line in lines[1:]:
        user, mbox, n, uidv, uidnext, digest = line.split()
        rows[(user, mbox)] = (int(n), int(uidv), int(uidnext), digest)
    return rows


def wait_caught_up(origin, mirrors, timeout=30):
    """Until every mirror of origin is streaming with applied == last."""
    deadline = time.time() + timeout
    while True:
        rows = {m["mirror"]: m for m in lag(origin)["mirrors"]}
        if all(m in rows and rows[m]["state"] == "streaming" and
               rows[m]["applied_seq"] == rows[m]["last_seq"] for m in mirrors):
            return rows
        if time.time() > deadline:
            raise AssertionError(f"mirrors not caught up: {rows}\n" + origin.read_log()[-3000:])
        time.sleep(0.1)


def imap_login(node, user="alice", password="secret"):
    c = imaplib.IMAP4("127.0.0.1", node.ports["imapplain"], timeout=30)
    c.login(user, password)
    return c


@pytest.fixture
def three(cluster):
    c = cluster(3, extra_for={"pop1": "mirrors pop2 pop3\n"})
    c.add_user("alice", home="pop1", password="secret")
    c.add_user("bob", home="pop1", password="bobpw")
    return c


def test_changes_reach_both_mirrors(three):
    pop1, pop2, pop3 = three[1], three[2], three[3]
    body = msg("shared", body="The same body for two users.\r\n")
    with lmtp(pop1) as c:       # one body, two recipients (LMTP: one reply each)
        c.ehlo_or_helo_if_needed()
        assert c.mail("sender@example.org")[0] == 250
        assert c.rcpt("alice@example.com")[0] == 250
        assert c.rcpt("bob@example.com")[0] == 250
        assert c.data(body)[0] == 250
        assert c.getreply()[0] == 250
    for i in range(5):
        assert deliver(pop1, "alice@example.com", msg(f"m{i}", body=f"body {i}\r\n" * 50)) == {}
    c = imap_login(pop1)
    try:
        typ, _ = c.append("INBOX", r"(\Flagged)", None,
                          msg("appended", body="Appended over IMAP.\r\n"))
        assert typ == "OK"
        assert c.create("Archive/2024")[0] == "OK"
        c.select("INBOX")
        assert c.uid("STORE", "1:3", "+FLAGS", r"(\Seen $label1)")[0] == "OK"
        assert c.uid("COPY", "2", "Archive/2024")[0] == "OK"
        assert c.uid("STORE", "4", "+FLAGS", r"(\Deleted)")[0] == "OK"
        assert c.expunge()[0] == "OK"
    finally:
        c.logout()

    rows = wait_caught_up(pop1, ["pop2", "pop3"])
    for m in ("pop2", "pop3"):
        r = rows[m]
        assert r["pinned"] is True
        assert r["sent_seq"] == r["last_seq"] > 0
        assert r["records_behind"] == 0 and r["bytes_behind"] == 0
        assert r["seconds_behind"] == 0
        assert r["last_ack"] is not None
        assert r["bodies_sent"] >= 7     # the shared body once, not twice
        assert r["bodies_sent"] < r["records_sent"]
    want = content(pop1)
    assert want[("alice", "INBOX")][0] == 6        # 1 + 5 + 1 appended - 1 expunged
    assert want[("alice", "INBOX")][2] == 8
    assert want[("alice", "Archive/2024")][0] == 1
    assert want[("bob", "INBOX")][0] == 1
    assert content(pop2) == want
    assert content(pop3) == want

    # the mirror side's view
    # (the origin may have written more since: compare with its position now)
    for m in (pop2, pop3):
        deadline = time.monotonic() + 10
        while True:
            o = {x["origin"]: x for x in lag(m)["origins"]}["pop1"]
            last = {r["mirror"]: r for r in lag(pop1)["mirrors"]}[os.path.basename(m.dir)]["last_seq"]
            if o["applied_seq"] == last or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert o["state"] == "streaming"
        assert o["applied_seq"] == last
        assert o["records_behind"] == 0
    # /metrics has the per-mirror series
    metrics = pop1.popctl("status", "--json").stdout
    status = json.loads(metrics)
    assert {r["mirror"] for r in status["replication"]} == {"pop2", "pop3"}
    # popctl lag's table
    out = pop1.popctl("lag").stdout
    assert out.splitlines()[0].split()[:3] == ["ROLE", "POP", "STATE"]
    assert any(l.startswith("mirror") and "pop2" in l and "streaming" in l
               for l in out.splitlines())


def test_stopped_mirror_catches_up(three):
    pop1, pop2, pop3 = three[1], three[2], three[3]
    assert deliver(pop1, "alice@example.com", msg("before")) == {}
    wait_caught_up(pop1, ["pop2", "pop3"])
    pop3.stop()
    for i in range(20):
        assert deliver(pop1, "alice@example.com", msg(f"while down {i}", body=f"{i}\r\n" * 200)) == {}
    c = imap_login(pop1)
    try:
        c.select("INBOX")
        assert c.uid("STORE", "1:5", "+FLAGS", r"(\Answered)")[0] == "OK"
    finally:
        c.logout()
    # pop2 keeps up; pop3 falls behind and says so
    deadline = time.time() + 20
    while True:
        rows = {m["mirror"]: m for m in lag(pop1)["mirrors"]}
        if (rows["pop3"]["state"] != "streaming" and rows["pop3"]["records_behind"] > 0 and
                rows["pop2"]["applied_seq"] == rows["pop2"]["last_seq"]):
            break
        assert time.time() < deadline, rows
        time.sleep(0.1)
    time.sleep(1.2)     # the oldest record not acked ages while pop3 is down
    rows = {m["mirror"]: m for m in lag(pop1)["mirrors"]}
    assert rows["pop3"]["seconds_behind"] >= 1.0
    assert rows["pop3"]["bytes_behind"] > 0
    assert rows["pop2"]["seconds_behind"] == 0
    three.restart(3)
    wait_caught_up(pop1, ["pop2", "pop3"])
    assert content(pop3) == content(pop1)
    assert content(pop2) == content(pop1)
    # idle: heartbeats keep the figures fresh, the lag stays 0
    time.sleep(2.5)
    rows = {m["mirror"]: m for m in lag(pop1)["mirrors"]}
    for m in ("pop2", "pop3"):
        assert rows[m]["seconds_behind"] == 0 and rows[m]["records_behind"] == 0
        assert time.time() - rows[m]["last_ack"] < 2.5
