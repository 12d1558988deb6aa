"""Config checking, bad configs, and the README's dev mode."""
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import POPCTL, POPNODE, ROOT


def run(*args, **kw):
    return subprocess.run([POPNODE, *args], capture_output=True, text=True, timeout=30, **kw)


def test_check_good_config(make_node):
    n = make_node(start=False)
    r = run("-c", n.conf, "--check")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("bad,reason", [
    ("max_sessions abc", "max_sessions"),
    ("no_such_directive 1", "no_such_directive"),
    ("listen pop3 999.1.1.1:110", "listen"),
    ("listen lmtp 0.0.0.0:2424", "plaintext"),
    ("listen pop3 127.0.0.1:2525 no-starttls", "plaintext"),
])
def test_bad_config_file_line(make_node, bad, reason):
    n = make_node(start=False)
    with open(n.conf) as f:
        lines = f.read().splitlines()
    lines.insert(3, bad)
    with open(n.conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = run("-c", n.conf, "--check")
    assert r.returncode == 2
    assert r.stderr.startswith(f"{n.conf}:4: "), r.stderr
    assert reason in r.stderr
    r = run("-c", n.conf)
    assert r.returncode == 2


def test_missing_config():
    r = run("-c", "/nonexistent/popnode.conf")
    assert r.returncode == 2
    assert "/nonexistent/popnode.conf" in r.stderr


def test_example_config_checks():
    r = run("-c", os.path.join(ROOT, "deploy/examples/popnode.conf"), "--check")
    # the example names production cert paths that don't exist here: it must
    # get past parsing and fail only on those, or pass.
    assert r.returncode in (0, 2)
    assert ":" in r.stderr or r.returncode == 0
    if r.returncode == 2:
        assert "cert" in r.stderr or "key" in r.stderr, r.stderr


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), 0.3):
            return True
    except OSError:
        return False


def test_dev_mode(tmpbase):
    # the fixed dev ports must be free for this test
    if any(port_open(p) for p in (10024, 10110, 10995, 10080)):
        pytest.skip("dev ports in use")
    d = os.path.join(tmpbase, "dev")
    p = subprocess.Popen([POPNODE, "--dev", d], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the banner is printed once the node serves (demo user made)
        banner = p.stdout.readline()
        assert "running" in banner, banner + p.stderr.read()
        assert os.path.exists(os.path.join(d, "cert.pem"))
        import smtplib, poplib, ssl
        with smtplib.LMTP("127.0.0.1", 10024) as c:
            assert c.sendmail("x@y.org", ["demo@anything.example"], b"Subject: dev\r\n\r\nhi\r\n") == {}
        q = poplib.POP3("127.0.0.1", 10110)
        q.user("demo")
        q.pass_("demo")
        assert q.stat()[0] == 1
        q.quit()
        ctx = ssl.create_default_context(cafile=os.path.join(d, "cert.pem"))
        q = poplib.POP3_SSL("localhost", 10995, context=ctx)
        q.user("demo")
        q.pass_("demo")
        q.quit()
        r = subprocess.run([POPCTL, "--dev", d, "user", "list"], capture_output=True, text=True)
        assert r.returncode == 0 and "demo" in r.stdout
    finally:
        p.send_signal(signal.SIGTERM)
        # read through the same buffered pipe objects readline() used
        out, err = p.stdout.read(), p.stderr.read()
        p.wait(30)
    assert p.returncode == 0, err
    out = banner + out
    assert "demo" in out and "10024" in out
