"""Failover to a mirror (docs/failover.md) on a real three-POP cluster:
pop1 pins `mirrors pop2 pop3`, alice is homed at pop1.

Every POP learns pop1's mirror set (DATA_DIR/mirrorsets).  Once pop1 is
killed, a session for alice that reaches pop3 goes to pop2 (the first
mirror), a session that reaches pop2 is served there; both see the mail
pop1 had acknowledged, and can change it: APPEND, flags, EXPUNGE.  LMTP
mail for alice is accepted at any POP and stored at pop2.  While pop1 is
reachable again, a mirror asked to serve passes the session on.
"""
import imaplib
import json
import os
import shutil
import signal
import smtplib
import time

import pytest

from cluster import cluster  # noqa: F401  (the fixture)
from mail import deliver, msg, pop3, retr_bytes


def lag(node):
    return json.loads(node.popctl("lag", "--json").stdout)


def wait_caught_up(origin, mirrors, timeout=30):
    deadline = time.time() + timeout
    while True:
        rows = {m["mirror"]: m for m in lag(origin)["mirrors"]}
        if all(m in rows and rows[m]["state"] == "streaming" and
               rows[m]["applied_seq"] == rows[m]["last_seq"] for m in mirrors):
            return rows
        if time.time() > deadline:
            raise AssertionError(f"mirrors not caught up: {rows}")
        time.sleep(0.1)


def wait_mirrorsets(nodes, line, timeout=15):
    deadline = time.time() + timeout
    for n in nodes:
        path = os.path.join(n.data, "mirrorsets")
        while True:
            try:
                with open(path) as f:
                    if line in f.read().splitlines():
                        break
            except FileNotFoundError:
                pass
            if time.time() > deadline:
                raise AssertionError(f"{path} never said {line!r}\n" + n.read_log()[-2000:])
            time.sleep(0.1)


def imap_at(node, user="alice", password="secret"):
    c = imaplib.IMAP4("127.0.0.1", node.ports["imapplain"], timeout=30)
    c.login(user, password)
    return c


def served_by(c):
    """The POP serving the mailbox, from IMAP ID (docs/imap.md)."""
    typ, data = c.xatom("ID", "NIL")
    assert typ == "OK"
    text = c.untagged_responses.pop("ID")[0].decode()
    items = text.strip("()").split('" "')
    fields = dict(zip(items[0::2], items[1::2]))
    return {k.strip('"'): v.strip('"') for k, v in fields.items()}


@pytest.fixture
def three(cluster):
    c = cluster(3, extra_for={"pop1": "mirrors pop2 pop3\n"})
    c.add_user("alice", home="pop1", password="secret")
    c.add_user("bob", home="pop2", password="bobpw")
    return c


DOWN = {"down", "connecting", "breaker-open"}


def kill_home(c, seen_by=(2, 3)):
    c[1].kill9()
    for k in seen_by:
        c.wait_peer_state(k, "pop1", DOWN, timeout=15)


def test_sessions_and_mail_fail_over_to_first_mirror(three):
    pop1, pop2, pop3_ = three[1], three[2], three[3]
    for i in range(3):
        assert deliver(pop1, "alice@example.com", msg(f"before {i}", body=f"b{i}\r\n")) == {}
    wait_caught_up(pop1, ["pop2", "pop3"])
    wait_mirrorsets([pop2, pop3_], "pop1 pop2 pop3")
    kill_home(three)

    # IMAP reaching pop3 is served by pop2, the first mirror
    c = imap_at(pop3_)
    try:
        ident = served_by(c)
        assert ident.get("mailbox-pop") == "pop2", ident
        typ, data = c.select("INBOX")
        assert typ == "OK" and int(data[0]) == 3
        typ, data = c.uid("FETCH", "1", "(BODY.PEEK[TEXT])")
        assert typ == "OK" and b"b0" in data[0][1]
        typ, _ = c.append("INBOX", r"(\Seen)", None, msg("appended in failover"))
        assert typ == "OK"
        assert c.uid("STORE", "2", "+FLAGS", r"(\Flagged)")[0] == "OK"
    finally:
        c.logout()

    # IMAP reaching pop2 is served there, and sees what the other session did
    c = imap_at(pop2)
    try:
        assert served_by(c).get("mailbox-pop") == "pop2"
        typ, data = c.select("INBOX")
        assert typ == "OK" and int(data[0]) == 4
        typ, data = c.uid("FETCH", "2", "(FLAGS)")
        assert b"\\Flagged" in data[0]
        assert c.uid("STORE", "1", "+FLAGS", r"(\Deleted)")[0] == "OK"
        assert c.expunge()[0] == "OK"
    finally:
        c.logout()

    # mail for alice arriving at pop3 and at pop2 is stored at pop2
    assert deliver(pop3_, "alice@example.com", msg("via pop3 during failover")) == {}
    assert deliver(pop2, "alice@example.com", msg("via pop2 during failover")) == {}
    # a user homed elsewhere is unaffected
    assert deliver(pop3_, "bob@example.com", msg("for bob")) == {}

    # POP3 through pop3: 3 + 1 appended - 1 expunged + 2 delivered
    p = pop3(pop3_)
    try:
        count, _ = p.stat()
        assert count == 5
        assert b"via pop2 during failover" in retr_bytes(p, 5)
    finally:
        p.quit()

    # pop2 served; pop3 only passed things on
    log3 = pop3_.read_log()
    assert "tunnel.failover" in log3 and "forward.failover" in log3
    assert "tunnel.failover_serve" in pop2.read_log()


def test_mirror_passes_session_on_while_home_is_reachable(three):
    """While the home is up, a session for alice anywhere is served by
    pop1 (roaming), never by a mirror."""
    pop1, pop2 = three[1], three[2]
    assert deliver(pop1, "alice@example.com", msg("hello")) == {}
    wait_caught_up(pop1, ["pop2", "pop3"])
    c = imap_at(pop2)
    try:
        assert served_by(c).get("mailbox-pop") == "pop1"
    finally:
        c.logout()


def test_second_mirror_serves_when_the_first_is_down_too(three):
    pop1, pop2, pop3_ = three[1], three[2], three[3]
    assert deliver(pop1, "alice@example.com", msg("hello")) == {}
    wait_caught_up(pop1, ["pop2", "pop3"])
    wait_mirrorsets([pop2, pop3_], "pop1 pop2 pop3")
    pop2.kill9()
    three.wait_peer_state(3, "pop2", DOWN, timeout=15)
    kill_home(three, seen_by=(3,))
    c = imap_at(pop3_)
    try:
        assert served_by(c).get("mailbox-pop") == "pop3"
        typ, data = c.select("INBOX")
        assert typ == "OK" and int(data[0]) == 1
    finally:
        c.logout()
    assert deliver(pop3_, "alice@example.com", msg("stored at pop3")) == {}


def test_no_copy_reachable_is_a_clean_temporary_error(three):
    """pop1 and its first mirror are down and pop3 lost its copy: alice
    gets a temporary error at once, never a hang or an empty mailbox."""
    pop1, pop2, pop3_ = three[1], three[2], three[3]
    assert deliver(pop1, "alice@example.com", msg("hello")) == {}
    wait_caught_up(pop1, ["pop2", "pop3"])
    wait_mirrorsets([pop2, pop3_], "pop1 pop2 pop3")
    pop3_.stop()
    pop2.kill9()
    pop1.kill9()
    shutil.rmtree(os.path.join(pop3_.data, "mirror", "pop1"))
    pop3_.start()
    t0 = time.monotonic()
    c = imaplib.IMAP4("127.0.0.1", pop3_.ports["imapplain"], timeout=30)
    try:
        with pytest.raises(imaplib.IMAP4.error, match="UNAVAILABLE"):
            c.login("alice", "secret")
        assert c.noop()[0] == "OK"      # still connected: the client may retry
    finally:
        c.shutdown()
    with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
        deliver(pop3_, "alice@example.com", msg("nowhere"))
    code, text = e.value.recipients["alice@example.com"]
    assert code == 451 and b"4.4.1" in text
    assert time.monotonic() - t0 < 5


def uid_bodies(node, user="alice", password="secret"):
    """{uid: (flags, subject)} of INBOX at node (served wherever it is)."""
    c = imap_at(node, user, password)
    try:
        c.select("INBOX")
        typ, data = c.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        out = {}
        for item in data:
            if not isinstance(item, tuple):
                continue
            head = item[0].decode()
            uid = int(head.split("UID ")[1].split()[0].rstrip(")"))
            flags = head.split("FLAGS (")[1].split(")")[0]
            subject = item[1].decode().strip().split(": ", 1)[1]
            # \Recent is per process (docs/imap.md): not compared
            out[uid] = (set(flags.split()) - {"\\Recent"}, subject)
        return out
    finally:
        c.logout()


def verify(node, user="alice"):
    return node.popctl("verify", user, check=False)


def wait_verified(node, user="alice", timeout=30):
    deadline = time.time() + timeout
    while True:
        r = verify(node, user)
        if r.returncode == 0:
            return r
        if time.time() > deadline:
            raise AssertionError(f"copies never matched:\n{r.stdout}{r.stderr}")
        time.sleep(0.3)


def test_home_returns_and_takes_back_the_failover_changes(three):
    """Everything done at the mirror while pop1 was down is at pop1 once it
    is back, with the UIDs the clients saw; open failover sessions end; the
    mirror's copy becomes pop1's again (popctl verify: every copy equal)."""
    pop1, pop2, pop3_ = three[1], three[2], three[3]
    for i in range(3):
        assert deliver(pop1, "alice@example.com", msg(f"before {i}", body=f"b{i}\r\n")) == {}
    wait_caught_up(pop1, ["pop2", "pop3"])
    wait_mirrorsets([pop2, pop3_], "pop1 pop2 pop3")
    kill_home(three)

    c = imap_at(pop3_)
    try:
        c.select("INBOX")
        typ, data = c.append("INBOX", r"(\Seen)", None, msg("appended in failover"))
        assert typ == "OK"
        assert c.uid("STORE", "2", "+FLAGS", r"(\Flagged)")[0] == "OK"
        assert c.uid("STORE", "1", "+FLAGS", r"(\Deleted)")[0] == "OK"
        assert c.expunge()[0] == "OK"
    finally:
        c.logout()
    assert deliver(pop3_, "alice@example.com", msg("delivered in failover")) == {}
    seen_at_mirror = uid_bodies(pop3_)
    assert sorted(s for _, s in seen_at_mirror.values()) == [
        "appended in failover", "before 1", "before 2", "delivered in failover"]

    # a session left open at the mirror is ended when pop1 is back
    idle = imaplib.IMAP4("127.0.0.1", pop2.ports["imapplain"], timeout=30)
    idle.login("alice", "secret")
    idle.select("INBOX")

    three.restart(1)
    assert "event=repl.merge_done mirror=pop2" in pop1.read_log()
    deadline = time.time() + 10
    ended = False
    while time.time() < deadline and not ended:
        try:
            idle.noop()
        except (imaplib.IMAP4.abort, OSError):
            ended = True
            break
        ended = "BYE" in idle.untagged_responses
        time.sleep(0.2)
    assert ended, "the failover session at pop2 was not ended"

    back = uid_bodies(pop1)
    assert back == seen_at_mirror      # same UIDs, same flags, nothing lost
    assert ident_of(pop1) == "pop1"
    wait_verified(pop1)
    # and mail keeps flowing to pop1 and its mirrors
    assert deliver(pop3_, "alice@example.com", msg("after the return")) == {}
    wait_verified(pop2)


def ident_of(node):
    c = imap_at(node)
    try:
        return served_by(c).get("mailbox-pop")
    finally:
        c.logout()


@pytest.fixture
def three_local(cluster):
    c = cluster(3, extra_for={"pop1": "mirrors pop2 pop3\nreplication_ack local\n"})
    c.add_user("alice", home="pop1", password="secret")
    return c


def test_uid_conflict_merges_as_documented(three_local):
    """pop1 gave UID 4 to a message its first mirror never got; pop2,
    serving while pop1 was down, gave UID 4 to another.  Back home, both
    messages exist, under new UIDs above 4 (docs/failover.md)."""
    c3 = three_local
    pop1, pop2, pop3_ = c3[1], c3[2], c3[3]
    for i in range(3):
        assert deliver(pop1, "alice@example.com", msg(f"before {i}")) == {}
    wait_caught_up(pop1, ["pop2", "pop3"])
    wait_mirrorsets([pop2, pop3_], "pop1 pop2 pop3")
    pop2.stop()                         # pop2 never gets the next message
    assert deliver(pop1, "alice@example.com", msg("only at home")) == {}
    wait_caught_up(pop1, ["pop3"])
    pop1.kill9()
    pop2.start()                        # pop1 is gone: pop2 stays behind it
    c3.wait_peer_state(3, "pop1", DOWN, timeout=15)
    c3.wait_peer_state(3, "pop2", {"up"}, timeout=15)
    c = imap_at(pop3_)
    try:
        assert served_by(c).get("mailbox-pop") == "pop2"
        c.select("INBOX")
        typ, data = c.append("INBOX", None, None, msg("only at the mirror"))
        assert typ == "OK" and b"APPENDUID" in data[0] and data[0].split()[2] == b"4]", data
    finally:
        c.logout()

    c3.restart(1)
    back = uid_bodies(pop1)
    subjects = {s: uid for uid, (_, s) in back.items()}
    assert set(subjects) == {"before 0", "before 1", "before 2", "only at home",
                             "only at the mirror"}
    assert subjects["only at home"] > 4 and subjects["only at the mirror"] > 4
    assert subjects["only at home"] != subjects["only at the mirror"]
    assert 4 not in back
    wait_verified(pop1)


def test_home_killed_under_load_then_its_disk_lost(cluster):
    """kill -9 of the home while mail flows (replication_ack mirror, the
    default), then its whole state directory is deleted: every message
    that got a 250 is served by a mirror, a flag set during the failover
    and all of that mail are at the rebuilt home."""
    import threading
    three = cluster(4, extra_for={"pop1": "mirrors pop2 pop3\n"})
    three.add_user("alice", home="pop1", password="secret")
    pop1, pop2, pop3_, pop4 = three[1], three[2], three[3], three[4]
    assert deliver(pop1, "alice@example.com", msg("first")) == {}
    wait_caught_up(pop1, ["pop2", "pop3"])
    wait_mirrorsets([pop2, pop3_, pop4], "pop1 pop2 pop3")
    acked, lock, stop = set(), threading.Lock(), threading.Event()

    def load(k):
        i = 0
        while not stop.is_set():
            subject = f"load {k}-{i}"
            try:
                if deliver(pop1, "alice@example.com", msg(subject, body="x" * 2000 + "\r\n")) == {}:
                    with lock:
                        acked.add(subject)
            except (OSError, smtplib.SMTPException):
                return          # the home is gone
            i += 1

    threads = [threading.Thread(target=load, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    pop1.kill9()
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) > 20, len(acked)
    print("acked", len(acked))
    acked.add("first")
    kill_home(three, seen_by=(2, 3, 4))

    # clients reach pop4, which holds no copy: served by a mirror: every acknowledged message (pop2 has it, or
    # pop3 does: replication_ack needs one mirror)
    at_mirror = {s for _, s in uid_bodies(pop4).values()}
    missing = acked - at_mirror
    if missing:                 # acknowledged by pop3 only: served from there
        pop2.kill9()
        three.wait_peer_state(4, "pop2", DOWN, timeout=15)
        assert missing <= {s for _, s in uid_bodies(pop4).values()}
        three.restart(2, wait_links=False)
        three.wait_peer_state(4, "pop2", {"up"}, timeout=30)
    c = imap_at(pop4)
    try:
        c.select("INBOX")
        typ, data = c.search(None, "HEADER", "Subject", "first")
        assert c.store(data[0].split()[0], "+FLAGS", r"(\Flagged)")[0] == "OK"
    finally:
        c.logout()

    shutil.rmtree(pop1.data)            # the home's disk is lost
    three.restart(1)
    back = uid_bodies(pop1)
    subjects = {s for _, s in back.values()}
    assert acked <= subjects, sorted(acked - subjects)[:10]
    flagged = [f for f, s in back.values() if s == "first"]
    assert flagged and "\\Flagged" in flagged[0]
    assert ident_of(pop1) == "pop1"
    log1 = pop1.read_log()
    assert "event=repl.rebuilt" in log1
    # and it is whole again everywhere
    wait_verified(pop4)


def test_repinned_mirrors_old_copy_dropped_after_new_is_filled(cluster):
    """pop1's mirrors are re-pinned (pop2 pop3 -> pop2 pop4) while it is
    down: at its start pop4 is filled first, then pop3 drops its copy."""
    c = cluster(4, extra_for={"pop1": "mirrors pop2 pop3\n"})
    c.add_user("alice", home="pop1", password="secret")
    pop1, pop3_, pop4 = c[1], c[3], c[4]
    for i in range(5):
        assert deliver(pop1, "alice@example.com", msg(f"m{i}")) == {}
    wait_caught_up(pop1, ["pop2", "pop3"])
    copy3 = os.path.join(pop3_.data, "mirror", "pop1")
    assert os.path.isdir(copy3)
    pop1.stop()
    c.extra_for["pop1"] = "mirrors pop2 pop4\n"
    pop1.extra = c._link_config("pop1", c.extra + "\n" + c.extra_for["pop1"])
    pop1.write_config()
    c.restart(1)
    wait_caught_up(pop1, ["pop2", "pop4"])
    deadline = time.time() + 20
    while os.path.isdir(copy3) and time.time() < deadline:
        time.sleep(0.2)
    assert not os.path.isdir(copy3), pop1.read_log()[-2000:]
    assert "event=repl.copy_dropped origin=pop1" in pop3_.read_log()
    wait_verified(pop1)
    # pop4's copy is complete: it serves alice when pop1 and pop2 are down
    wait_mirrorsets([c[2], pop3_, pop4], "pop1 pop2 pop4")
    c[2].kill9()
    pop1.kill9()
    c.wait_peer_state(4, "pop1", DOWN, timeout=15)
    c.wait_peer_state(4, "pop2", DOWN, timeout=15)
    assert len(uid_bodies(pop4)) == 5


def test_return_after_a_long_failover_merges_in_batches(three):
    """More failover changes than one fetch carries (REPL_BATCH_RECORDS):
    the merge goes on batch after batch and nothing is lost."""
    pop1, pop2, pop3_ = three[1], three[2], three[3]
    assert deliver(pop1, "alice@example.com", msg("before")) == {}
    wait_caught_up(pop1, ["pop2", "pop3"])
    wait_mirrorsets([pop2, pop3_], "pop1 pop2 pop3")
    kill_home(three)
    with smtplib.LMTP("127.0.0.1", pop2.ports["lmtp"], timeout=30) as c:
        for i in range(600):
            assert c.sendmail("s@example.org", ["alice@example.com"],
                              msg(f"failover {i}")) == {}
    three.restart(1)
    assert "event=repl.merge_done mirror=pop2" in pop1.read_log()
    subjects = {s for _, s in uid_bodies(pop1).values()}
    assert subjects == {"before"} | {f"failover {i}" for i in range(600)}
    wait_verified(pop1)
