"""Mail forwarding between POPs (docs/lmtp.md "Forwarding mail",
docs/link-deliver.md): LMTP at pop1 for users homed at pop2, on a real
two-POP cluster linked over mutual TLS (cluster.py, free ports).

alice is homed at pop1, carol at pop2; both exist in both directories.
"""
import json
import os
import shutil
import re
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from cluster import cluster  # noqa: F401  (the fixture)
from mail import lmtp, msg, pop3, retr_bytes


def status(node):
    url = f"http://127.0.0.1:{node.ports['http']}/status"
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def forward_counts(node):
    return status(node)["roaming"]["forward"]


def mailbox(node, user, password):
    """Every message of user's INBOX at node, as POP3 serves it."""
    p = pop3(node, user, password)
    try:
        n = p.stat()[0]
        return [retr_bytes(p, i) for i in range(1, n + 1)]
    finally:
        p.quit()


def messages(node, user):
    """The message count of user in node's directory (popctl user show)."""
    out = node.popctl("user", "show", user).stdout
    return int(re.search(r"^messages:\s*(\d+)", out, re.M).group(1))


def prefix(sender, rcpt):
    return f"Return-Path: <{sender}>\r\nDelivered-To: {rcpt}\r\n".encode()


def wait_log(node, pattern, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if re.search(pattern, node.read_log()):
            return
        time.sleep(0.1)
    raise AssertionError(f"no /{pattern}/ in {node.dir} log:\n" + node.read_log()[-3000:])


@pytest.fixture
def two(cluster):
    c = cluster(2)
    c.add_user("alice", home="pop1", password="secret")
    c.add_user("carol", home="pop2", password="carolpw")
    return c


def test_forward_to_home(two):
    pop1, pop2 = two[1], two[2]
    m = msg("for carol", body="Hello carol.\r\n.a line with a leading dot\r\n")
    with lmtp(pop1) as c:
        c.ehlo_or_helo_if_needed()
        assert c.mail("sender@example.org")[0] == 250
        assert c.rcpt("Carol+news@example.com") == (250, b"2.1.5 <Carol+news@example.com> recipient ok")
        code, text = c.data(m)
        assert code == 250, text
        assert re.fullmatch(rb"2\.0\.0 <Carol\+news@example\.com> Saved as uid \d+ \(home POP pop2\)",
                            text), text
    # stored at the home, byte for byte, with the prefix a local delivery writes
    got = mailbox(pop2, "carol", "carolpw")
    assert got == [prefix("sender@example.org", "Carol+news@example.com") + m]
    # and not at the front
    assert messages(pop1, "carol") == 0
    assert forward_counts(pop1)["rcpts"] == 1
    assert forward_counts(pop2)["received"] == 1
    assert re.search(r"event=forward\.deliver via=pop1 user=carol uid=\d+ size=\d+ result=ok",
                     pop2.read_log())


def test_local_and_remote_in_one_transaction(two):
    pop1, pop2 = two[1], two[2]
    m = msg("both")
    with lmtp(pop1) as c:
        c.ehlo_or_helo_if_needed()
        assert c.mail("")[0] == 250                       # null sender
        assert c.rcpt("carol@example.com")[0] == 250
        assert c.rcpt("alice@example.com")[0] == 250
        assert c.rcpt("carol+dup@example.net")[0] == 250  # same mailbox again
        assert c.rcpt("nobody@example.com")[0] == 550
        # one reply per accepted recipient, in RCPT order
        code, text = c.data(m)
        assert code == 250 and text.startswith(b"2.0.0 <carol@example.com>") \
            and text.endswith(b"(home POP pop2)"), text
        code, text = c.getreply()
        assert code == 250 and text.startswith(b"2.0.0 <alice@example.com> Saved as uid"), text
        assert b"home POP" not in text
        code, text = c.getreply()
        assert code == 250 and text.startswith(b"2.0.0 <carol+dup@example.net>"), text
        assert c.noop()[0] == 250
    assert mailbox(pop1, "alice", "secret") == [prefix("", "alice@example.com") + m]
    # the duplicate is stored once; the first address is the Delivered-To
    assert mailbox(pop2, "carol", "carolpw") == [prefix("", "carol@example.com") + m]
    assert forward_counts(pop1)["rcpts"] == 2
    assert forward_counts(pop2)["received"] == 1


def test_home_down_then_back(two):
    """Home down and no mirror of it to fail over to (pop1 lost its copy
    of pop2; docs/failover.md): 451 4.4.1 for that recipient only."""
    pop1, pop2 = two[1], two[2]
    pop1.stop()
    pop2.kill9()
    shutil.rmtree(os.path.join(pop1.data, "mirror", "pop2"), ignore_errors=True)
    pop1.start()
    # pop1 serves its own users once its start-up check gave up on pop2
    # (replication_startup_wait, docs/replication.md)
    two.wait_serving(pop1)
    with lmtp(pop1) as c:
        c.ehlo_or_helo_if_needed()
        assert c.mail("s@example.org")[0] == 250
        assert c.rcpt("alice@example.com")[0] == 250
        code, text = c.rcpt("carol@example.com")
        assert code == 451, text
        assert text == b"4.4.1 <carol@example.com> home POP pop2 unreachable, try later"
        code, text = c.data(msg("while pop2 was down"))
        assert code == 250 and b"alice@example.com" in text, text
        assert c.noop()[0] == 250       # no further reply was pending
    assert forward_counts(pop1)["failed"] == 1
    assert len(mailbox(pop1, "alice", "secret")) == 1

    two.restart(2)
    m = msg("after pop2 came back")
    with lmtp(pop1) as c:
        assert c.sendmail("s@example.org", ["carol@example.com"], m) == {}
    assert mailbox(pop2, "carol", "carolpw") == [prefix("s@example.org", "carol@example.com") + m]


def test_home_silent_after_rcpt(two):
    """The home stops answering between RCPT and the final dot: the link
    notices (no PING answer within link_timeout), the forward fails, and
    only that recipient gets 451 4.4.1."""
    pop1, pop2 = two[1], two[2]
    with lmtp(pop1) as c:
        c.ehlo_or_helo_if_needed()
        assert c.mail("s@example.org")[0] == 250
        assert c.rcpt("alice@example.com")[0] == 250
        assert c.rcpt("carol@example.com")[0] == 250
        os.kill(pop2.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.time()
            code, text = c.data(msg("into the void"))
            assert code == 250 and b"alice@example.com" in text, text
            code, text = c.getreply()
            assert code == 451, text
            assert text.startswith(b"4.4.1 <carol@example.com>") and b"pop2" in text, text
            assert time.time() - t0 < 20
        finally:
            os.kill(pop2.proc.pid, signal.SIGCONT)
    assert forward_counts(pop1)["failed"] == 1
    two.wait_links()
    m = msg("after the pause")
    with lmtp(pop1) as c:
        assert c.sendmail("s@example.org", ["carol@example.com"], m) == {}
    # The first message was never acknowledged; carol has the second (and,
    # at worst, the first too: a duplicate, never a loss).
    got = mailbox(pop2, "carol", "carolpw")
    assert got[-1] == prefix("s@example.org", "carol@example.com") + m
    assert len(got) in (1, 2)


def test_big_message_byte_exact(two):
    """Several MB: far more than a stream window and the output watermark,
    so the front refills the stream as the home drains it."""
    pop1, pop2 = two[1], two[2]
    line = b"".join(bytes([33 + (i % 90)]) for i in range(998))
    body = b"".join(line[i % 7:] + line[:i % 7] + b"\r\n" for i in range(5000))  # ~5 MB
    m = b"From: s@example.org\r\nSubject: big\r\n\r\n" + body
    with lmtp(pop1) as c:
        assert c.sendmail("s@example.org", ["carol@example.com"], m) == {}
    got = mailbox(pop2, "carol", "carolpw")
    assert len(got) == 1
    assert got[0] == prefix("s@example.org", "carol@example.com") + m


def test_many_recipients_split(two):
    """30 recipients at one home: more than one request may carry
    (FORWARD_RCPTS_MAX = 24), so two requests; every recipient answered in
    RCPT order."""
    pop1, pop2 = two[1], two[2]
    h = subprocess.run(["openssl", "passwd", "-6", "pw"], capture_output=True, text=True,
                       check=True).stdout.strip()
    users = [f"u{i:02d}" for i in range(30)]
    for u in users:
        two.add_user(u, home="pop2", hash_=h)
    m = msg("to many")
    with lmtp(pop1) as c:
        c.ehlo_or_helo_if_needed()
        assert c.mail("s@example.org")[0] == 250
        for u in users:
            assert c.rcpt(f"{u}@example.com")[0] == 250
        replies = [c.data(m)] + [c.getreply() for _ in users[1:]]
    for u, (code, text) in zip(users, replies):
        assert code == 250 and text.startswith(f"2.0.0 <{u}@example.com> Saved".encode()), text
    for u in users:
        assert messages(pop2, u) == 1
    assert mailbox(pop2, "u29", "pw") == [prefix("s@example.org", "u29@example.com") + m]
    sizes = re.findall(r"event=forward\.receive peer=pop1 via=pop1 rcpts=(\d+)", pop2.read_log())
    assert sorted(map(int, sizes)) == [6, 24]
    assert forward_counts(pop2)["received"] == 30


def test_disabled_at_home(two):
    """The home's answer decides: a user disabled there gets 550 5.2.1
    (at RCPT if the front already knows, else after DATA from the home)."""
    pop1, pop2 = two[1], two[2]
    two.add_user("eve", home="pop2", password="x")
    pop2.popctl("user", "set", "eve", "--disable")
    with lmtp(pop1) as c:
        c.ehlo_or_helo_if_needed()
        assert c.mail("s@example.org")[0] == 250
        assert c.rcpt("alice@example.com")[0] == 250
        code, text = c.rcpt("eve@example.com")
        if code == 250:
            code, text = c.data(msg("to eve"))
            assert code == 250 and b"alice" in text
            code, text = c.getreply()
            assert text.endswith(b"(home POP pop2)"), text
        else:
            assert c.data(msg("to eve"))[0] == 250
        assert code == 550 and text.startswith(b"5.2.1 <eve@example.com>"), text
    assert messages(pop2, "eve") == 0


def lmtp_raw_until_dot(node, rcpts, body=b"Subject: raw\r\n\r\nraw\r\n"):
    """An LMTP session over a raw socket, sent up to and including the
    final dot; returns the socket (replies not read beyond the 354)."""
    s = socket.create_connection(("127.0.0.1", node.ports["lmtp"]), 10)
    s.settimeout(30)
    f = s.makefile("rb")
    assert f.readline().startswith(b"220")
    cmds = [b"LHLO t", b"MAIL FROM:<s@example.org>"] + [b"RCPT TO:<%s>" % r for r in rcpts]
    s.sendall(b"".join(c + b"\r\n" for c in cmds))
    while not f.readline().startswith(b"250 "):   # the LHLO reply
        pass
    for _ in range(1 + len(rcpts)):
        assert f.readline().startswith(b"250 ")
    s.sendall(b"DATA\r\n")
    assert f.readline().startswith(b"354")
    s.sendall(body + b".\r\n")
    return s, f


def test_client_gone_while_forwarding(two):
    """The MTA disconnects while the forward waits for the home: the
    forward is cancelled, nothing is left behind, pop1 serves on (and
    exits cleanly at the end, which under ASan also means no leak)."""
    pop1, pop2 = two[1], two[2]
    os.kill(pop2.proc.pid, signal.SIGSTOP)
    try:
        s, f = lmtp_raw_until_dot(pop1, [b"carol@example.com", b"alice@example.com"])
        time.sleep(0.3)
        f.close()
        s.close()
        wait_log(pop1, r"event=forward\.cancelled home=pop2 rcpts=1")
        wait_log(pop1, r"event=lmtp\.deliver session=\d+ user=alice .*result=ok.* client=gone")
    finally:
        os.kill(pop2.proc.pid, signal.SIGCONT)
    two.wait_links()
    m = msg("next one")
    with lmtp(pop1) as c:
        assert c.sendmail("s@example.org", ["carol@example.com"], m) == {}
    assert mailbox(pop2, "carol", "carolpw")[-1] == prefix("s@example.org", "carol@example.com") + m
    assert len(mailbox(pop1, "alice", "secret")) == 1


def test_shutdown_waits_for_forward(two):
    """SIGTERM at the front while a forward is in flight: the transaction
    is finished (carol 451 4.4.1 once the link gives up on the silent
    home, alice 250), then 421, then a clean exit."""
    pop1, pop2 = two[1], two[2]
    os.kill(pop2.proc.pid, signal.SIGSTOP)
    try:
        s, f = lmtp_raw_until_dot(pop1, [b"alice@example.com", b"carol@example.com"])
        time.sleep(0.3)
        pop1.proc.send_signal(signal.SIGTERM)
        r1, r2, r3 = f.readline(), f.readline(), f.readline()
        assert r1.startswith(b"250 2.0.0 <alice@example.com> Saved as uid"), r1
        assert r2.startswith(b"451 4.4.1 <carol@example.com>") and b"pop2" in r2, r2
        assert r3.startswith(b"421 4.3.2"), r3
        f.close()
        s.close()
        assert pop1.proc.wait(30) == 0
    finally:
        os.kill(pop2.proc.pid, signal.SIGCONT)
    pop1.stop()
    assert "shutdown.timeout" not in pop1.read_log()


def test_home_refuses_too_big(cluster):
    """The home's limit is smaller than the front's: it refuses at the
    headers (413) and resets the stream while the body is still being
    sent; the MTA gets 451 4.4.1 naming the home, never a 250."""
    c = cluster(2, extra_for={"pop2": "max_message_size 1M"})
    c.add_user("carol", home="pop2", password="carolpw")
    pop1, pop2 = c[1], c[2]
    m = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 2100     # ~2 MB
    with lmtp(pop1) as s:
        s.ehlo_or_helo_if_needed()
        assert s.mail("s@example.org")[0] == 250
        assert s.rcpt("carol@example.com")[0] == 250
        code, text = s.data(m)
        assert code == 451, text
        assert text == (b"4.4.1 <carol@example.com> home POP pop2 refused the message "
                        b"(status 413), try later")
        assert s.noop()[0] == 250
    assert messages(pop2, "carol") == 0
    assert re.search(r"event=forward\.refused peer=pop1 via=pop1 status=413", pop2.read_log())
    # the link is fine afterwards
    with lmtp(pop1) as s:
        assert s.sendmail("s@example.org", ["carol@example.com"], msg("small")) == {}
    assert messages(pop2, "carol") == 1
