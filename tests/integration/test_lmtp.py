"""LMTP ingress with Python's smtplib.LMTP, swaks and raw bytes."""
import os
import shutil
import smtplib
import socket
import subprocess

import pytest

from mail import deliver, lmtp, msg, pop3, raw, retr_bytes


def test_deliver_and_read_back(node):
    m = msg("first")
    assert deliver(node, "alice@example.com", m) == {}
    p = pop3(node)
    count, size = p.stat()
    assert count == 1
    got = retr_bytes(p, 1)
    # Return-Path and Delivered-To are added in front, body byte-exact
    assert got.startswith(b"Return-Path: <sender@example.org>\r\nDelivered-To: alice@example.com\r\n")
    assert got.endswith(m)
    assert size == len(got)
    p.quit()


def test_multi_recipient_one_reply_each(node):
    # smtplib's sendmail reads one reply after DATA; LMTP sends one per
    # recipient, so drive the transaction by hand.
    with lmtp(node) as c:
        c.ehlo_or_helo_if_needed()
        c.mail("s@example.org")
        assert c.rcpt("alice@example.com")[0] == 250
        assert c.rcpt("nobody@example.com")[0] == 550
        assert c.rcpt("bob@example.net")[0] == 250
        code, text = c.data(msg("multi"))
        assert code == 250 and b"alice@example.com" in text
        code, text = c.getreply()
        assert code == 250 and b"bob@example.net" in text
        assert c.noop()[0] == 250
    for user, pw in (("alice", "secret"), ("bob", "hunter2")):
        p = pop3(node, user, pw)
        assert p.stat()[0] == 1
        assert b"Subject: multi" in retr_bytes(p, 1)
        p.quit()


def test_unknown_user_and_foreign_domain(node):
    with lmtp(node) as c:
        c.ehlo_or_helo_if_needed()
        c.mail("s@example.org")
        code, text = c.rcpt("nobody@example.com")
        assert code == 550 and text.startswith(b"5.1.1")
        code, text = c.rcpt("alice@elsewhere.test")
        assert code == 550
        code, _ = c.rcpt("Alice+tag@EXAMPLE.com")
        assert code == 250


def test_pipelined_session_raw(node):
    m = b"Subject: piped\r\n\r\nline\r\n"
    data = (b"LHLO test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<alice@example.com>\r\n"
            b"RCPT TO:<nobody@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n" + m +
            b".\r\nQUIT\r\n")
    out = raw(node.ports["lmtp"], data, read_until=b"221")
    lines = out.decode().split("\r\n")
    assert lines[0].startswith("220 ")
    assert any(l.startswith("250-PIPELINING") or l == "250 PIPELINING" for l in lines)
    assert any("ENHANCEDSTATUSCODES" in l for l in lines)
    assert any("8BITMIME" in l for l in lines)
    assert any("SIZE" in l for l in lines)
    assert sum(1 for l in lines if l.startswith("354")) == 1
    after = lines[[i for i, l in enumerate(lines) if l.startswith("354")][0] + 1:]
    # one reply per accepted recipient (alice, bob), in order, then 221
    assert after[0].startswith("250 ") and "alice@example.com" in after[0]
    assert after[1].startswith("250 ") and "bob@example.com" in after[1]
    assert after[2].startswith("221")


def test_two_megabyte_message(node):
    body = "".join(f"line {i:08d} " + "x" * 60 + "\r\n" for i in range(2 * 1024 * 1024 // 76 + 1))
    m = msg("big", body)
    assert len(m) > 2 * 1024 * 1024 - 200
    assert deliver(node, "alice@example.com", m) == {}
    p = pop3(node)
    assert retr_bytes(p, 1).endswith(m)
    p.quit()


def test_dot_stuffing_round_trip(node):
    body = ".leading dot\r\n..two dots\r\n.\r\nx\r\n. \r\n"
    m = msg("dots", body)
    assert deliver(node, "alice@example.com", m) == {}
    p = pop3(node)
    assert retr_bytes(p, 1).endswith(m)
    p.quit()


def test_quota_exceeded_452(make_node):
    n = make_node()
    n.add_user("small", "pw", quota=4000)
    assert deliver(n, "small@example.com", msg("fits", "a" * 1000 + "\r\n")) == {}
    with lmtp(n) as c:
        c.ehlo_or_helo_if_needed()
        c.mail("s@example.org")
        assert c.rcpt("small@example.com")[0] == 250
        code, resp = c.data(msg("too big", "b" * 5000 + "\r\n"))
        assert code == 452 and resp.startswith(b"4.2.2")


def test_message_size_limit_552(make_node):
    n = make_node(extra="max_message_size 10K")
    n.add_user("alice", "secret")
    with lmtp(n) as c:
        c.ehlo_or_helo_if_needed()
        c.mail("s@example.org")
        assert c.rcpt("alice@example.com")[0] == 250
        code, _ = c.data(msg("huge", "y" * 20000 + "\r\n"))
        assert code == 552
        # the session goes on
        assert c.noop()[0] == 250
    with lmtp(n) as c:
        c.ehlo_or_helo_if_needed()
        code, _ = c.mail("s@example.org", ["SIZE=50000"])
        assert code == 552
    p = pop3(n)
    assert p.stat()[0] == 0
    p.quit()


def test_oversized_line_and_garbage(node):
    out = raw(node.ports["lmtp"], b"LHLO x\r\n" + b"A" * 100000 + b"\r\nNOOP\r\n", read_until=b"250 2.0.0")
    assert b"500" in out
    out = raw(node.ports["lmtp"], bytes(range(256)) * 4 + b"\r\nNOOP\r\n", read_until=b"250 2.0.0")
    assert b"500" in out or b"502" in out
    # node still serves
    assert deliver(node, "alice@example.com", msg("after garbage")) == {}


def test_bad_sequence(node):
    out = raw(node.ports["lmtp"], b"LHLO x\r\nRCPT TO:<alice@example.com>\r\nDATA\r\nQUIT\r\n",
              read_until=b"221")
    lines = out.decode().split("\r\n")
    assert any(l.startswith("503") for l in lines)


def test_unix_socket_delivery(node):
    s = socket.socket(socket.AF_UNIX)
    s.connect(node.lmtp_sock)
    c = smtplib.LMTP()
    c.sock = s
    c.file = None
    code, _ = c.getreply()
    assert code == 220
    assert c.sendmail("s@example.org", ["bob@example.com"], msg("via unix")) == {}
    c.quit()
    p = pop3(node, "bob", "hunter2")
    assert p.stat()[0] == 1
    p.quit()


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
def test_swaks(node):
    r = subprocess.run(["swaks", "--protocol", "LMTP", "--server", f"127.0.0.1:{node.ports['lmtp']}",
                        "--to", "alice@example.com", "--from", "s@example.org",
                        "--header", "Subject: via swaks"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    p = pop3(node)
    assert b"Subject: via swaks" in retr_bytes(p, 1)
    p.quit()


def test_store_failure_is_451_never_250(make_node):
    # a full store: map size so small that a big message cannot fit
    n = make_node(extra="map_size 1M\nmax_message_size 8M")
    n.add_user("alice", "secret", quota=0)
    with lmtp(n) as c:
        c.ehlo_or_helo_if_needed()
        c.mail("s@example.org")
        assert c.rcpt("alice@example.com")[0] == 250
        code, _ = c.data(msg("does not fit", "z" * 70 + "\r\n") * 30000)
        assert code == 451
    p = pop3(n)
    assert p.stat()[0] == 0
    p.quit()
