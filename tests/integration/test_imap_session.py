"""IMAP session core: LIST forms, AUTHENTICATE continuation, reselect, STARTTLS
injection, shutdown/BYE, EXPUNGE during IDLE, sequence numbers across sessions."""
import base64
import socket
import ssl
import time

from mail import deliver, msg


class Raw:
    def __init__(self, port, login=True):
        self.s = socket.create_connection(("127.0.0.1", port), 10)
        self.f = self.s.makefile("rb")
        self.greeting = self.f.readline()
        if login:
            self.cmd(b"L LOGIN alice secret")

    def send(self, data):
        self.s.sendall(data)

    def cmd(self, line, tag=None):
        """Send one command, return every line up to its tagged reply."""
        tag = tag or line.split(b" ", 1)[0]
        self.s.sendall(line + b"\r\n")
        return self.until(tag + b" ")

    def until(self, prefix):
        out = []
        while True:
            line = self.f.readline()
            if not line:
                raise AssertionError(b"EOF after " + b"".join(out))
            out.append(line)
            if line.startswith(prefix):
                return b"".join(out)

    def close(self):
        self.s.close()


def test_list_forms(node):
    c = Raw(node.ports["imapplain"])
    assert b'(\\Noselect) "/" ""' in c.cmd(b'a LIST "" ""')
    c.cmd(b"b CREATE a/b/c")
    c.cmd(b"c DELETE a/b")
    out = c.cmd(b'd LIST "" "a/%"')
    assert b'* LIST (\\Noselect \\HasChildren) "/" "a/b"' in out, out
    out = c.cmd(b'e LIST "" "%"')
    assert b'"/" "a"\r\n' in out and b"a/b" not in out and b"INBOX" in out, out
    out = c.cmd(b'f LIST "a/" "*"')
    assert b"a/b/c" in out and b"\\HasNoChildren" in out, out
    c.cmd(b"g SUBSCRIBE gone/x")
    out = c.cmd(b'h LIST (SUBSCRIBED) "" "*"')
    assert b'(\\NonExistent \\Subscribed) "/" "gone/x"' in out, out
    out = c.cmd(b'i LIST (SPECIAL-USE) "" "*" RETURN (CHILDREN)')
    assert b"\\Sent" in out and b"INBOX" not in out and b"a/b/c" not in out, out
    out = c.cmd(b'j LIST "" "*" RETURN (STATUS (MESSAGES UIDNEXT))')
    assert b'* STATUS "INBOX" (MESSAGES 0 UIDNEXT 1)' in out, out
    out = c.cmd(b'k LSUB "" "*"')
    assert b"gone/x" in out and b"j OK" not in out and b"k OK" in out, out
    out = c.cmd(b'l LIST "" "inbox"')
    assert b'"/" "INBOX"' in out, out
    c.close()


def test_authenticate_continuation_and_cancel(node):
    c = Raw(node.ports["imapplain"], login=False)
    c.send(b"a AUTHENTICATE PLAIN\r\n")
    assert c.f.readline().startswith(b"+")
    c.send(b"*\r\n")
    assert c.f.readline().startswith(b"a BAD")
    c.send(b"b AUTHENTICATE PLAIN\r\n")
    assert c.f.readline().startswith(b"+")
    c.send(base64.b64encode(b"\0alice\0secret") + b"\r\n")
    line = c.f.readline()
    assert line.startswith(b"b OK [CAPABILITY") and b"AUTH=" not in line, line
    assert b"c OK" in c.cmd(b"c NOOP")
    c.close()


def test_reselect_closed_condstore(node):
    deliver(node, "alice@example.com", msg("r1"))
    c = Raw(node.ports["imapplain"])
    out = c.cmd(b"a SELECT INBOX (CONDSTORE)")
    assert b"HIGHESTMODSEQ" in out and b"[READ-WRITE]" in out and b"* 1 RECENT" in out, out
    assert b"PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)" in out, out
    out = c.cmd(b"b EXAMINE INBOX")
    assert b"[CLOSED]" in out and b"[READ-ONLY]" in out and b"PERMANENTFLAGS ()" in out, out
    assert b"d OK" in c.cmd(b"d UNSELECT")
    assert b"e BAD" in c.cmd(b"e FETCH 1 (FLAGS)")
    out = c.cmd(b"f STATUS INBOX (MESSAGES RECENT SIZE)")
    assert b"MESSAGES 1 RECENT 0 SIZE" in out, out
    c.close()


def test_starttls_discards_injected_plaintext(node):
    s = socket.create_connection(("127.0.0.1", node.ports["imap"]), 10)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"a STARTTLS\r\nb LOGIN alice secret\r\n")
    assert f.readline().startswith(b"a OK")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    t = ctx.wrap_socket(s)
    t.sendall(b"c CAPABILITY\r\n")
    data = b""
    while b"c OK" not in data:
        data += t.recv(4096)
    assert b"b OK" not in data and b"b NO" not in data and b"AUTH=PLAIN" in data, data
    t.close()


def test_expunge_during_idle_and_seq_consistency(node):
    for i in range(3):
        deliver(node, "alice@example.com", msg(f"e{i}"))
    a = Raw(node.ports["imapplain"])
    a.cmd(b"a SELECT INBOX")
    b = Raw(node.ports["imapplain"])
    b.cmd(b"b SELECT INBOX")
    b.cmd(b"c STORE 2 +FLAGS.SILENT (\\Deleted)")
    # FETCH must not show the expunge; NOOP does
    b.cmd(b"d EXPUNGE")
    out = a.cmd(b"e FETCH 1:3 (UID)")
    assert b"EXPUNGE" not in out and b"* 3 FETCH" in out, out
    out = a.cmd(b"f NOOP")
    assert b"* 2 EXPUNGE" in out, out
    out = a.cmd(b"g FETCH 2 (UID)")
    assert b"UID 3" in out, out
    a.send(b"h IDLE\r\n")
    assert a.f.readline().startswith(b"+")
    b.cmd(b"i STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.cmd(b"j EXPUNGE")
    t0 = time.time()
    line = a.f.readline()
    while b"FETCH" in line:
        line = a.f.readline()
    assert line.startswith(b"* 1 EXPUNGE"), line
    assert time.time() - t0 < 1.0
    a.send(b"DONE\r\n")
    assert a.f.readline().startswith(b"h OK")
    a.close()
    b.close()


def test_shutdown_says_bye(node):
    c = Raw(node.ports["imapplain"])
    c.cmd(b"a SELECT INBOX")
    node.stop()
    data = c.f.read()
    assert b"* BYE" in data, data
    c.close()
