"""popctl drain / undrain on one node (docs/anycast.md, "Drain"): IMAP
clients are told BYE [UNAVAILABLE] once their command in flight is done
(at once when idle or in IDLE), POP3 sessions run to their end, drain
--wait reports when no client is left, and the state survives a restart
until undrained."""
import json
import os
import poplib
import socket
import subprocess
import time
import urllib.request

import pytest


def status(node):
    with urllib.request.urlopen("http://127.0.0.1:%d/status" % node.ports["http"],
                                timeout=5) as r:
        return json.loads(r.read())


def imap_login(node):
    s = socket.create_connection(("127.0.0.1", node.ports["imapplain"]), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"* OK")
    s.sendall(b"a LOGIN alice secret\r\n")
    assert f.readline().startswith(b"a OK")
    return s, f


def test_drain_and_undrain(node):
    idle_s, idle_f = imap_login(node)          # authenticated, no command
    in_idle_s, in_idle_f = imap_login(node)    # inside IDLE
    in_idle_s.sendall(b"b SELECT INBOX\r\n")
    while not in_idle_f.readline().startswith(b"b OK"):
        pass
    in_idle_s.sendall(b"c IDLE\r\n")
    assert in_idle_f.readline().startswith(b"+ ")
    pop = poplib.POP3("127.0.0.1", node.ports["pop3plain"])
    pop.user("alice")
    pop.pass_("secret")

    r = node.popctl("drain")
    assert "drained: yes" in r.stdout
    mfile = os.path.join(node.data, "maintenance")
    assert os.path.exists(mfile)
    assert status(node)["drained"] is True
    # both IMAP clients are told to go, with the reason code, and closed
    for f in (idle_f, in_idle_f):
        line = f.readline()
        assert line.startswith(b"* BYE [UNAVAILABLE]"), line
        assert f.readline() == b""
    # POP3 is told too, and closed: nothing it marked is deleted
    with pytest.raises(poplib.error_proto, match=r"SYS/TEMP.*drained"):
        pop.stat()
    pop.sock.close()

    # a client that connects after the drain (a unicast address, a late
    # SYN) is served, and drain --wait waits for it to leave
    late = poplib.POP3("127.0.0.1", node.ports["pop3plain"])
    late.user("alice")
    late.pass_("secret")
    waiter = subprocess.Popen([node_popctl(node), "-s", node.sock, "drain", "--wait"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    assert waiter.poll() is None, "drain --wait returned while a POP3 client is connected"
    assert late.stat()[0] == 0
    late.quit()
    out, err = waiter.communicate(timeout=10)
    assert waiter.returncode == 0, err
    assert "POP is empty" in out and "1 client session left" in err

    # IMAP too
    s, f = imap_login(node)
    s.sendall(b"d NOOP\r\n")
    assert f.readline().startswith(b"d OK")
    idle_s.close()
    in_idle_s.close()
    s.close()

    # drained survives a restart
    node.restart()
    assert status(node)["drained"] is True
    assert "drained:     yes" in node.popctl("status").stdout
    r = node.popctl("undrain")
    assert "drained: no" in r.stdout
    assert not os.path.exists(mfile)
    assert status(node)["drained"] is False
    node.restart()
    assert status(node)["drained"] is False


def node_popctl(node):
    from conftest import POPCTL
    return POPCTL
