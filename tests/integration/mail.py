"""Small client helpers shared by the integration tests."""
import imaplib
import poplib
import smtplib
import socket


def lmtp(node):
    return smtplib.LMTP("127.0.0.1", node.ports["lmtp"], timeout=30)


def deliver(node, rcpts, body, sender="sender@example.org"):
    """Deliver one message; returns smtplib's refused dict ({} = all 250)."""
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    with lmtp(node) as c:
        return c.sendmail(sender, rcpts, body)


def msg(subject="hello", body="Hello, world.\r\n", extra=""):
    return (f"From: sender@example.org\r\nTo: alice@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@test>\r\n{extra}\r\n{body}").encode()


def imap(node, user="alice", password="secret"):
    """A plaintext IMAP session (the test node's "imapplain" port), logged in."""
    c = imaplib.IMAP4("127.0.0.1", node.ports["imapplain"], timeout=30)
    c.login(user, password)
    return c


def ok(r):
    """The data of an imaplib reply, which must be OK."""
    typ, data = r
    assert typ == "OK", (typ, data)
    return data


def pop3(node, user="alice", password="secret", port="pop3plain"):
    p = poplib.POP3("127.0.0.1", node.ports[port], timeout=30)
    p.user(user)
    p.pass_(password)
    return p


def retr_bytes(p, n):
    """RETR n and return the message bytes as served (CRLF line ends)."""
    _, lines, _ = p.retr(n)
    return b"\r\n".join(lines) + b"\r\n"


def raw(port, send=b"", read_until=None, timeout=5):
    """Open a raw TCP session, send bytes, return what came back."""
    s = socket.create_connection(("127.0.0.1", port), timeout)
    try:
        data = s.recv(4096)
        if send:
            s.sendall(send)
        s.settimeout(timeout)
        while read_until is not None and read_until not in data:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
        return data
    finally:
        s.close()
