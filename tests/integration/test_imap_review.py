"""IMAP review regressions: resource limits a logged-in client could abuse
(LIST reference x patterns memory, SEARCH holding the event loop, text
search keys without bound)."""
import socket
import threading
import time

from test_imap_session import Raw


def test_list_long_reference_is_refused_quickly(node):
    """The reference used to be concatenated to every pattern for every
    mailbox name (a 60 KB reference with 3500 patterns cost 1.2 GB and 6 s
    for one LIST); now a reference + pattern over 1 KB is refused."""
    c = Raw(node.ports["imapplain"])
    ref = b"x" * 60000
    pats = b" ".join([b"%"] * 3500)
    t = time.time()
    c.send(b"a LIST {%d+}\r\n" % len(ref) + ref + b" (" + pats + b")\r\n")
    out = c.until(b"a ")
    assert out.startswith(b"a BAD") and b"too long" in out, out
    assert time.time() - t < 2
    # a sensible reference with many patterns still works
    c.cmd(b"b CREATE dir/sub")
    out = c.cmd(b'c LIST "dir/" (' + b" ".join([b"%"] * 500) + b")")
    assert b'"/" "dir/sub"\r\n' in out and out.endswith(b"c OK LIST completed\r\n"), out
    assert out.count(b"* LIST") == 1, out
    # the longest accepted reference + pattern: 1024 bytes
    ref = b"r" * 1023
    out = c.cmd(b'd LIST "' + ref + b'" "%"')
    assert b"d OK" in out, out
    out = c.cmd(b'e LIST "' + ref + b'" "%%"')
    assert b"e BAD" in out, out
    c.close()


def _fill(c, line_bytes=1000, lines=200):
    """One big message, COPYed onto itself until the quota stops it
    (bodies are shared, so this is cheap on disk)."""
    body = b"Subject: big\r\n\r\n" + (b"x" * line_bytes + b"\r\n") * lines
    c.send(b"A APPEND INBOX {%d+}\r\n" % len(body) + body + b"\r\n")
    assert b"A OK" in c.until(b"A ")
    c.cmd(b"S SELECT INBOX")
    for i in range(14):
        if b"OVERQUOTA" in c.cmd(b"C%d COPY 1:* INBOX" % i):
            break


def test_search_text_does_not_hold_the_loop(node):
    """A SEARCH over hundreds of MB of text ran in one go (its per-step
    batches were resumed at once by the core loop): every other session
    waited for it."""
    a = Raw(node.ports["imapplain"])
    _fill(a)
    b = Raw(node.ports["imapplain"])
    lat = []
    done = threading.Event()

    def poke():
        time.sleep(0.05)
        i = 0
        while not done.is_set() and i < 50:
            t1 = time.time()
            b.cmd(b"n%d NOOP" % i)
            lat.append(time.time() - t1)
            i += 1

    th = threading.Thread(target=poke)
    t = time.time()
    th.start()
    # starts with the filler's byte, so no skip-ahead makes the scan cheap
    out = a.cmd(b"Q SEARCH BODY xnomatchzz")
    took = time.time() - t
    done.set()
    th.join()
    assert out.endswith(b"Q OK Search completed\r\n"), out
    assert took > 0.2, f"search too fast to tell ({took:.3f}s)"
    assert lat, "no NOOP completed"
    assert lat[0] < took / 2, (took, lat)
    a.close()
    b.close()


def test_search_text_key_limit(node):
    c = Raw(node.ports["imapplain"])
    m = b"Subject: x\r\n\r\nhello\r\n"
    c.send(b"A APPEND INBOX {%d+}\r\n" % len(m) + m + b"\r\n")
    assert b"A OK" in c.until(b"A ")
    c.cmd(b"s SELECT INBOX")
    # 64 text keys (flat: nesting is limited separately)
    keys = b" ".join(b"BODY hello" for i in range(63)) + b" TEXT hello"
    out = c.cmd(b"a SEARCH " + keys)
    assert b"* SEARCH 1\r\n" in out and b"a OK" in out, out
    out = c.cmd(b"b SEARCH " + keys + b" HEADER subject x")
    assert b"b NO [LIMIT]" in out, out
    c.close()


def test_idle_client_that_does_not_read_is_not_buffered_without_bound(node):
    """Every change was written at once to an idling session's output, read
    or not: flag changes made by another session piled up in memory (all
    of it then reached the client when it read again)."""
    a = Raw(node.ports["imapplain"])
    m = b"Subject: x\r\n\r\nhello\r\n"
    a.send(b"A APPEND INBOX {%d+}\r\n" % len(m) + m + b"\r\n")
    assert b"A OK" in a.until(b"A ")
    a.cmd(b"S SELECT INBOX")
    for i in range(12):
        out = a.cmd(b"C%d COPY 1:* INBOX" % i)
    assert b"* 4096 EXISTS" in out, out
    a.close()
    # an idler with a small receive window that stops reading
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(60)
    s.connect(("127.0.0.1", node.ports["imapplain"]))
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"L LOGIN alice secret\r\nS SELECT INBOX\r\nI IDLE\r\n")
    while not f.readline().startswith(b"+"):
        pass
    b = Raw(node.ports["imapplain"])
    b.cmd(b"s SELECT INBOX")
    for i in range(160):
        op = b"+" if i % 2 == 0 else b"-"
        out = b.cmd(b"t%d STORE 1:* %sFLAGS.SILENT (\\Flagged)" % (i, op))
        assert b"OK" in out, out
    # unbounded: 160 x 4096 FETCH lines (~25 MB) were queued for the
    # idler; bounded: about TRANSPORT_OUTPUT_HIGH, the socket buffers and
    # one catch-up sync of the 4096 messages
    s.sendall(b"DONE\r\n")
    got = 0
    while True:
        line = f.readline()
        assert line, "EOF"
        got += len(line)
        if line.startswith(b"I "):
            break
    assert line.startswith(b"I OK"), line
    assert got < 8 * 1024 * 1024, got
    s.close()
    b.close()
