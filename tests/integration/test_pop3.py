"""POP3 with Python's poplib (plain, STLS, POP3S), curl and raw bytes."""
import poplib
import socket
import ssl
import subprocess
import time

import pytest

from mail import deliver, msg, pop3, raw, retr_bytes


def tls_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def fill(node, n=3, user="alice"):
    for i in range(n):
        assert deliver(node, f"{user}@example.com", msg(f"m{i}", f"body {i}\r\n")) == {}


def test_stat_list_uidl_top(node):
    fill(node, 3)
    p = pop3(node)
    count, total = p.stat()
    assert count == 3
    _, listing, _ = p.list()
    sizes = [int(l.split()[1]) for l in listing]
    assert sum(sizes) == total
    assert p.list(2).split()[2] == str(sizes[1]).encode()
    _, uidls, _ = p.uidl()
    uids = [l.split()[1] for l in uidls]
    assert len(set(uids)) == 3
    _, top, _ = p.top(1, 0)
    assert b"Subject: m0" in b"\r\n".join(top)
    assert b"body 0" not in b"\r\n".join(top)
    _, top, _ = p.top(1, 1)
    assert top[-1] == b"body 0"
    with pytest.raises(poplib.error_proto):
        p.retr(4)
    with pytest.raises(poplib.error_proto):
        p.retr(0)
    p.quit()


def test_uidl_stable_across_sessions_and_restart(node):
    fill(node, 2)
    p = pop3(node)
    first = p.uidl()[1]
    p.quit()
    node.restart()
    fill(node, 1)
    p = pop3(node)
    again = p.uidl()[1]
    assert again[:2] == first
    p.quit()


def test_dele_rset_quit_semantics(node):
    fill(node, 3)
    p = pop3(node)
    p.dele(1)
    with pytest.raises(poplib.error_proto):
        p.retr(1)
    assert p.stat()[0] == 2
    p.rset()
    assert p.stat()[0] == 3
    p.dele(2)
    p.quit()
    p = pop3(node)
    assert p.stat()[0] == 2
    subjects = [retr_bytes(p, i) for i in (1, 2)]
    assert b"Subject: m0" in subjects[0] and b"Subject: m2" in subjects[1]
    p.quit()


def test_dropped_connection_deletes_nothing(node):
    fill(node, 2)
    p = pop3(node)
    p.dele(1)
    p.dele(2)
    p.close()  # no QUIT
    time.sleep(0.3)
    p = pop3(node)
    assert p.stat()[0] == 2
    p.quit()


def test_second_session_in_use(node):
    p = pop3(node)
    q = poplib.POP3("127.0.0.1", node.ports["pop3plain"], timeout=10)
    q.user("alice")
    with pytest.raises(poplib.error_proto) as e:
        q.pass_("secret")
    assert b"[IN-USE]" in e.value.args[0]
    q.quit()
    p.quit()
    # lock released after QUIT
    pop3(node).quit()


def test_wrong_password(node):
    q = poplib.POP3("127.0.0.1", node.ports["pop3plain"], timeout=30)
    q.user("alice")
    with pytest.raises(poplib.error_proto) as e:
        q.pass_("wrong")
    assert b"[AUTH]" in e.value.args[0]
    q.quit()
    q = poplib.POP3("127.0.0.1", node.ports["pop3plain"], timeout=30)
    q.user("nosuchuser")
    with pytest.raises(poplib.error_proto):
        q.pass_("secret")
    q.quit()


def test_plaintext_refused_before_stls(node):
    q = poplib.POP3("127.0.0.1", node.ports["pop3"], timeout=10)
    caps = q.capa()
    assert "STLS" in caps
    assert "USER" not in caps
    with pytest.raises(poplib.error_proto) as e:
        q.user("alice")
    assert b"TLS" in e.value.args[0]
    q.stls(tls_ctx())
    caps = q.capa()
    assert "STLS" not in caps and "USER" in caps
    q.user("alice")
    q.pass_("secret")
    assert q.stat()[0] == 0
    q.quit()


def test_pop3s(node):
    fill(node, 1)
    p = poplib.POP3_SSL("127.0.0.1", node.ports["pop3s"], context=tls_ctx(), timeout=10)
    p.user("alice")
    p.pass_("secret")
    assert p.stat()[0] == 1
    assert b"Subject: m0" in retr_bytes(p, 1)
    p.quit()


def test_auth_plain(node):
    import base64
    out = raw(node.ports["pop3plain"],
              b"AUTH PLAIN " + base64.b64encode(b"\0alice\0secret") + b"\r\nSTAT\r\nQUIT\r\n",
              read_until=b"+OK 0 0", timeout=10)
    assert b"+OK 0 0" in out
    out = raw(node.ports["pop3plain"], b"AUTH PLAIN\r\n", read_until=b"+ ", timeout=10)
    assert b"+ " in out


def test_curl_pop3(node):
    fill(node, 2)
    port = node.ports["pop3plain"]
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "-u", "alice:secret",
                        f"pop3://127.0.0.1:{port}/"], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip().splitlines()) == 2
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "-u", "alice:secret",
                        f"pop3://127.0.0.1:{port}/2"], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert b"Subject: m1" in r.stdout
    # curl over POP3S and STLS (--ssl-reqd), certificate not verified (-k)
    r = subprocess.run(["curl", "-sSk", "--max-time", "20", "-u", "alice:secret",
                        f"pop3s://127.0.0.1:{node.ports['pop3s']}/1"], capture_output=True, timeout=30)
    assert r.returncode == 0 and b"Subject: m0" in r.stdout, r.stderr
    r = subprocess.run(["curl", "-sSk", "--ssl-reqd", "--max-time", "20", "-u", "alice:secret",
                        f"pop3://127.0.0.1:{node.ports['pop3']}/1"], capture_output=True, timeout=30)
    assert r.returncode == 0 and b"Subject: m0" in r.stdout, r.stderr


def test_garbage_and_long_lines(node):
    out = raw(node.ports["pop3plain"], b"A" * 50000 + b"\r\nNOOP\r\n", read_until=b"-ERR", timeout=10)
    assert b"-ERR" in out
    # read until the server closes after QUIT
    out = raw(node.ports["pop3plain"], bytes(range(256)) + b"\r\nQUIT\r\n", read_until=b"\0", timeout=10)
    assert b"-ERR" in out
    assert out.splitlines()[-1].startswith(b"+OK")  # QUIT still answered
    out = raw(node.ports["pop3plain"], b"BOGUS\r\n" * 20, read_until=b"too many", timeout=10)
    assert b"too many" in out
    pop3(node).quit()


def test_retr_byte_exact_binary_ish(node):
    body = "caf\u00e9 8bit \u00fc\r\n" + "".join(f".{i}\r\n" for i in range(50)) + "no final newline"
    m = msg("8bit", "").rstrip(b"\r\n") + b"\r\n\r\n" + body.encode()
    assert deliver(node, "alice@example.com", m) == {}
    p = pop3(node)
    got = retr_bytes(p, 1)
    assert m.replace(b"no final newline", b"no final newline\r\n") in got
    p.quit()
