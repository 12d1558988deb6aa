"""IMAP \\Recent survives a restart (RFC 3501 2.3.2: a message is \\Recent in
exactly one session, the first to be told of it).

The claim mark (highest UID whose \\Recent a read-write session claimed,
per user and mailbox) is kept in the store's meta db, written through the
writer thread once per SELECT / sync that claimed something:

1. after a clean restart (SIGTERM), claimed messages are not \\Recent
   again (SELECT, FETCH FLAGS, STATUS before any SELECT), new ones are;
   EXAMINE sees \\Recent without claiming, across a restart too;
2. messages claimed by a sync (NOOP after a delivery) are kept as well;
3. after kill -9, once the claim's write is durable (its completion
   logged), the claim is kept.
"""
import re
import time

from mail import imap, ok, deliver, msg


def select(c, readonly=False):
    """SELECT/EXAMINE INBOX; (EXISTS, RECENT) as the server announced them."""
    exists = int(ok(c.select("INBOX", readonly=readonly))[0])
    typ, data = c.response("RECENT")
    assert typ == "RECENT" and data and data[-1] is not None, (typ, data)
    return exists, int(data[-1])


def recent_seqs(c):
    """Sequence numbers whose FETCH FLAGS include \\Recent."""
    out = set()
    for item in ok(c.fetch("1:*", "(FLAGS)")):
        m = re.match(rb"(\d+) \(FLAGS \(([^)]*)\)\)", item)
        assert m, item
        if b"\\Recent" in m.group(2).split():
            out.add(int(m.group(1)))
    return out


def status_recent(node):
    c = imap(node)
    try:
        data = ok(c.status("INBOX", "(RECENT)"))
        m = re.search(rb"RECENT (\d+)", data[0])
        assert m, data
        return int(m.group(1))
    finally:
        c.logout()


def put(node, *subjects):
    for s in subjects:
        assert deliver(node, "alice@example.com", msg(s)) == {}


def wait_saved(node, uid, timeout=10):
    """Until the log says a claim mark >= uid was written (committed)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for m in re.finditer(r"event=imap\.recent_saved .*uid=(\d+)", node.read_log()):
            if int(m.group(1)) >= uid:
                return
        time.sleep(0.05)
    raise AssertionError("no imap.recent_saved uid>=%d in the log" % uid)


def no_save_failures(node):
    assert "imap.recent_save_failed" not in node.read_log()


def test_recent_survives_clean_restart(node):
    put(node, "a1", "a2", "a3")
    a = imap(node)
    assert select(a) == (3, 3)
    assert recent_seqs(a) == {1, 2, 3}
    a.logout()

    node.restart()
    assert status_recent(node) == 0     # the stored mark, before any SELECT
    b = imap(node)
    assert select(b) == (3, 0)
    assert recent_seqs(b) == set()
    b.logout()

    put(node, "a4")
    assert status_recent(node) == 1
    c = imap(node)
    assert select(c) == (4, 1)
    assert recent_seqs(c) == {4}
    c.logout()

    # EXAMINE sees \Recent but claims nothing, not even in the store
    put(node, "a5")
    d = imap(node)
    assert select(d, readonly=True) == (5, 1)
    assert recent_seqs(d) == {5}
    d.logout()
    node.restart()
    assert status_recent(node) == 1
    e = imap(node)
    assert select(e) == (5, 1)
    assert recent_seqs(e) == {5}
    e.logout()
    node.restart()
    f = imap(node)
    assert select(f) == (5, 0)
    f.logout()
    no_save_failures(node)


def test_claim_by_sync_survives_restart(node):
    a = imap(node)
    assert select(a) == (0, 0)
    put(node, "s1", "s2")
    ok(a.noop())                        # the sync announces and claims them
    typ, data = a.response("RECENT")
    assert typ == "RECENT" and data[-1] == b"2", (typ, data)
    assert recent_seqs(a) == {1, 2}
    put(node, "s3")
    ok(a.noop())
    assert recent_seqs(a) == {1, 2, 3}
    a.logout()

    node.restart()
    b = imap(node)
    assert select(b) == (3, 0)
    assert recent_seqs(b) == set()
    b.logout()
    no_save_failures(node)


def test_recent_survives_kill9_once_written(node):
    put(node, "k1", "k2", "k3")
    a = imap(node)
    assert select(a) == (3, 3)
    assert recent_seqs(a) == {1, 2, 3}
    # another session already sees them claimed (the mark in memory) ...
    assert status_recent(node) == 0
    # ... and once the write is durable, a crash does not undo the claim
    wait_saved(node, 3)
    node.kill9()
    node.start()
    assert status_recent(node) == 0
    b = imap(node)
    assert select(b) == (3, 0)
    assert recent_seqs(b) == set()
    b.logout()
    put(node, "k4")
    c = imap(node)
    assert select(c) == (4, 1)
    assert recent_seqs(c) == {4}
    c.logout()
    no_save_failures(node)
