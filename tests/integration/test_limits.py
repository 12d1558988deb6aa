"""Configurable limits: sessions per IP, auth failures per IP."""
import poplib
import socket
import time

import pytest

from mail import pop3


def test_sessions_per_ip(make_node):
    n = make_node(extra="max_sessions_per_ip 3")
    n.add_user("alice", "secret")
    socks = []
    try:
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", n.ports["pop3plain"]), 5)
            assert s.recv(100).startswith(b"+OK")
            socks.append(s)
        s = socket.create_connection(("127.0.0.1", n.ports["pop3plain"]), 5)
        data = s.recv(100)
        assert data.startswith(b"-ERR") and b"too many" in data
        s.close()
    finally:
        for s in socks:
            s.close()
    time.sleep(0.3)
    pop3(n).quit()


def test_auth_failures_delay_then_block(make_node):
    n = make_node(extra="auth_fail_delay_after 2\nauth_fail_delay_ms 300\nauth_fail_max 4\nauth_fail_window 60")
    n.add_user("alice", "secret")
    times = []
    for i in range(4):
        q = poplib.POP3("127.0.0.1", n.ports["pop3plain"], timeout=30)
        q.user("alice")
        t0 = time.time()
        with pytest.raises(poplib.error_proto):
            q.pass_("wrong")
        times.append(time.time() - t0)
        q.close()
    assert times[2] >= 0.25 and times[3] >= 0.55, times
    q = poplib.POP3("127.0.0.1", n.ports["pop3plain"], timeout=30)
    q.user("alice")
    with pytest.raises(poplib.error_proto) as e:
        q.pass_("secret")  # right password, but the address is blocked
    assert b"too many" in e.value.args[0] or b"[AUTH]" in e.value.args[0]
    q.close()


def test_idle_timeout_says_goodbye(make_node):
    n = make_node(extra="idle_timeout 1")
    for port, want in ((n.ports["lmtp"], b"421 4.4.2"), (n.ports["pop3plain"], b"-ERR")):
        s = socket.create_connection(("127.0.0.1", port), 10)
        data = b""
        t0 = time.time()
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        assert want in data, data
        assert 0.8 < time.time() - t0 < 8


def test_client_that_never_reads_is_dropped(make_node):
    """A peer that pipelines commands but never reads must not pin a session."""
    import json
    import urllib.request
    n = make_node(extra="idle_timeout 1")
    s = socket.create_connection(("127.0.0.1", n.ports["pop3plain"]), 10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    sent = 0
    try:
        for _ in range(4000):
            sent += s.send(b"CAPA\r\n" * 100)
    except BlockingIOError:
        pass
    deadline = time.time() + 15
    active = None
    while time.time() < deadline:
        st = json.load(urllib.request.urlopen(f"http://127.0.0.1:{n.ports['http']}/status", timeout=5))
        active = st["sessions"]["pop3"]
        if active == 0:
            break
        time.sleep(0.3)
    s.close()
    assert sent > 0 and active == 0, f"session still open after the write timeout (sent {sent})"
