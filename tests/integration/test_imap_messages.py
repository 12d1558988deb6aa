"""IMAP message commands beyond the acceptance tests: big bodies streamed with
bounded memory, many-message FETCH, partial fetches, CHANGEDSINCE/VANISHED,
STORE .SILENT under CONDSTORE, UID EXPUNGE, MOVE with QRESYNC, ESEARCH,
SEARCH BODY/TEXT over decoded (base64, quoted-printable, charset-converted)
text parts, APPEND errors, and a message expunged under a FETCH.  A small raw client
reads literals exactly, so byte counts are checked, not just substrings."""
import base64
import datetime
import imaplib
import re
import socket

from mail import deliver, msg


class Raw:
    """Line/literal-exact IMAP client: cmd() returns (untagged, tagged)."""

    def __init__(self, port, login=True):
        self.s = socket.create_connection(("127.0.0.1", port), 30)
        self.buf = b""
        self.n = 0
        self.line()  # greeting
        if login:
            _, t = self.cmd(b"LOGIN alice secret")
            assert t.startswith(b"OK"), t

    def fill(self):
        chunk = self.s.recv(1 << 20)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        i = self.buf.index(b"\r\n")
        line, self.buf = self.buf[:i], self.buf[i + 2:]
        return line

    def exact(self, n):
        while len(self.buf) < n:
            self.fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def response(self):
        """One response with its literals inlined as (text, [literals])."""
        text, lits = b"", []
        while True:
            line = self.line()
            m = re.search(rb"\{(\d+)\}$", line)
            text += line
            if not m:
                return text, lits
            lits.append(self.exact(int(m.group(1))))
            text += b"<lit>"

    def cmd(self, c, raw_lits=False):
        self.n += 1
        tag = b"t%d" % self.n
        self.s.sendall(tag + b" " + c + b"\r\n")
        untagged = []
        while True:
            text, lits = self.response()
            if text.startswith(tag + b" "):
                return untagged, text[len(tag) + 1:]
            untagged.append((text, lits) if raw_lits else text if not lits else (text, lits))

    def close(self):
        self.s.close()


def ok(t):
    assert t.startswith(b"OK"), t


def test_big_body_streamed_exactly(node):
    body = b"".join(b"line %07d of a big body .........................................\r\n" % i
                    for i in range(40000))  # ~2.9 MB
    m = b"Subject: big\r\nContent-Type: text/plain\r\n\r\n" + body
    assert deliver(node, "alice@example.com", m) == {}
    c = Raw(node.ports["imapplain"])
    ok(c.cmd(b"SELECT INBOX")[1])
    u, t = c.cmd(b"FETCH 1 (RFC822.SIZE BODY.PEEK[])", raw_lits=True)
    ok(t)
    (text, lits), = u
    size = int(re.search(rb"RFC822.SIZE (\d+)", text).group(1))
    u, t = c.cmd(b"FETCH 1 (ENVELOPE BODY.PEEK[1]<0.4>)")
    ok(t)
    assert "imap.fetch_parse" not in node.read_log()  # LMTP stored the structure
    assert len(lits[0]) == size and lits[0].endswith(m)
    # partial windows across the prefix/body boundary and at the end
    u, t = c.cmd(b"FETCH 1 (BODY.PEEK[]<10.100> BODY.PEEK[TEXT]<2000000.5000000>)", raw_lits=True)
    ok(t)
    (text, lits), = u
    assert lits[0] == lits[0][:100] and len(lits[0]) == 100
    assert b"BODY[]<10>" in text and b"BODY[TEXT]<2000000>" in text
    assert lits[1] == body[2000000:]
    # past the end: empty
    u, t = c.cmd(b"FETCH 1 (BODY.PEEK[TEXT]<99999999.10>)", raw_lits=True)
    ok(t)
    assert u[0][1] == [b""] or b'""' in u[0][0]
    c.close()


def test_fetch_many_messages_resumes(node):
    for i in range(60):
        deliver(node, "alice@example.com", msg(f"m{i}", ("x" * 70 + "\r\n") * 200))
    c = Raw(node.ports["imapplain"])
    ok(c.cmd(b"SELECT INBOX")[1])
    u, t = c.cmd(b"UID FETCH 1:* (FLAGS ENVELOPE BODY.PEEK[] BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
                 raw_lits=True)
    ok(t)
    assert len(u) == 60
    for i, (text, lits) in enumerate(u):
        assert text.startswith(b"* %d FETCH (UID %d " % (i + 1, i + 1)), text
        assert lits[1] == b"Subject: m%d\r\n\r\n" % i
        assert lits[0].count(b"x" * 70) == 200
    # without PEEK: \Seen is stored first (one write), then ~850 KB stream
    # from the store callback, through the drained callback
    u, t = c.cmd(b"FETCH 1:* (BODY[])", raw_lits=True)
    ok(t)
    assert len(u) == 60
    for i, (text, lits) in enumerate(u):
        assert text.startswith(b"* %d FETCH (FLAGS (\\Seen \\Recent) BODY[] {" % (i + 1)), text
        assert lits[0].count(b"x" * 70) == 200
    u, t = c.cmd(b"SEARCH UNSEEN")
    assert u == [b"* SEARCH"], u
    c.close()


def test_seen_set_by_fetch_and_reported(node):
    deliver(node, "alice@example.com", msg("s"))
    c = Raw(node.ports["imapplain"])
    ok(c.cmd(b"ENABLE CONDSTORE")[1])
    ok(c.cmd(b"SELECT INBOX")[1])
    u, t = c.cmd(b"FETCH 1 (BODY[TEXT])")
    ok(t)
    text = u[0][0] if isinstance(u[0], tuple) else u[0]
    assert b"\\Seen" in text and b"MODSEQ" in text, u
    # already seen: no FLAGS item unless asked
    u, t = c.cmd(b"FETCH 1 (RFC822.TEXT)")
    ok(t)
    text = u[0][0] if isinstance(u[0], tuple) else u[0]
    assert b"FLAGS" not in text, u
    c.close()


def test_store_silent_condstore_and_changedsince(node):
    for i in range(3):
        deliver(node, "alice@example.com", msg(f"c{i}"))
    c = Raw(node.ports["imapplain"])
    u, t = c.cmd(b"SELECT INBOX (CONDSTORE)")
    ok(t)
    hms = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"\n".join(u)).group(1))
    u, t = c.cmd(b"STORE 2 +FLAGS.SILENT (\\Answered)")
    ok(t)
    assert len(u) == 1 and re.match(rb"\* 2 FETCH \(MODSEQ \(\d+\)\)", u[0]), u
    u, t = c.cmd(b"STORE 1:3 -FLAGS.SILENT (\\Flagged)")  # nothing changes
    ok(t)
    assert u == [], u
    u, t = c.cmd(b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % hms)
    ok(t)
    assert len(u) == 1 and b"UID 2" in u[0] and b"\\Answered" in u[0] and b"MODSEQ" in u[0], u
    # UNCHANGEDSINCE: 2 changed after hms, 1 and 3 did not
    u, t = c.cmd(b"UID STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS (\\Flagged)" % hms)
    assert t.startswith(b"OK [MODIFIED 2]"), t
    assert sum(b"\\Flagged" in x for x in u) == 2, u
    # UNCHANGEDSINCE 0 always fails
    u, t = c.cmd(b"STORE 1,3 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)")
    assert t.startswith(b"OK [MODIFIED 1,3]"), t
    # SEARCH MODSEQ: (MODSEQ n) is the highest of the matches
    u, t = c.cmd(b"SEARCH MODSEQ %d" % (hms + 1))
    ok(t)
    assert re.match(rb"\* SEARCH 1 2 3 \(MODSEQ \d+\)$", u[0]), u
    c.close()


def test_expunge_variants_and_vanished(node):
    for i in range(6):
        deliver(node, "alice@example.com", msg(f"e{i}"))
    c = Raw(node.ports["imapplain"])
    ok(c.cmd(b"SELECT INBOX")[1])
    ok(c.cmd(b"STORE 1:6 +FLAGS.SILENT (\\Deleted)")[1])
    u, t = c.cmd(b"UID EXPUNGE 2,4")
    ok(t)
    assert u == [b"* 4 EXPUNGE", b"* 2 EXPUNGE"], u  # highest first
    u, t = c.cmd(b"FETCH 1:* (UID)")
    assert [re.search(rb"UID (\d+)", x).group(1) for x in u] == [b"1", b"3", b"5", b"6"]
    # QRESYNC: VANISHED instead of EXPUNGE, and VANISHED (EARLIER) on fetch
    ok(c.cmd(b"ENABLE QRESYNC")[1])
    u, t = c.cmd(b"SELECT INBOX")
    ok(t)
    hms = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"\n".join(u)).group(1))
    u, t = c.cmd(b"UID EXPUNGE 5:6")
    ok(t)
    assert u == [b"* VANISHED 5:6"], u
    u, t = c.cmd(b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % hms)
    ok(t)
    assert u[0] == b"* VANISHED (EARLIER) 5:6", u
    u, t = c.cmd(b"FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)")
    assert t.startswith(b"BAD"), t
    # CLOSE expunges silently
    u, t = c.cmd(b"CLOSE")
    ok(t)
    assert u == [], u
    u, t = c.cmd(b"EXAMINE INBOX")
    assert b"* 0 EXISTS" in u, u
    c.close()


def test_move_copy_uidplus(node):
    for i in range(3):
        deliver(node, "alice@example.com", msg(f"mv{i}"))
    c = Raw(node.ports["imapplain"])
    ok(c.cmd(b"SELECT INBOX")[1])
    u, t = c.cmd(b"COPY 1:3 Archive")
    assert re.match(rb"OK \[COPYUID \d+ 1:3 1:3\]", t), t
    u, t = c.cmd(b"UID MOVE 2 Trash")
    ok(t)
    assert re.match(rb"\* OK \[COPYUID \d+ 2 1\]", u[0]) and u[1] == b"* 2 EXPUNGE", u
    u, t = c.cmd(b"MOVE 1 Nope")
    assert t.startswith(b"NO [TRYCREATE]"), t
    u, t = c.cmd(b"COPY 9 Archive")
    assert t.startswith(b"BAD"), t
    u, t = c.cmd(b"UID COPY 99 Archive")  # unknown UIDs: nothing to do
    ok(t)
    ok(c.cmd(b"EXAMINE INBOX")[1])
    u, t = c.cmd(b"MOVE 1 Trash")
    assert t.startswith(b"NO"), t
    c.close()


def test_esearch_and_search_text(node):
    for i, body in enumerate(("apple pie", "banana split", "apple crumble", "cherry")):
        deliver(node, "alice@example.com", msg(f"s{i}", body + "\r\n"))
    c = Raw(node.ports["imapplain"])
    ok(c.cmd(b"SELECT INBOX")[1])
    u, t = c.cmd(b"SEARCH RETURN (MIN MAX COUNT ALL) BODY apple")
    ok(t)
    assert re.match(rb'\* ESEARCH \(TAG "t\d+"\) MIN 1 MAX 3 COUNT 2 ALL 1,3$', u[0]), u
    u, t = c.cmd(b"UID SEARCH RETURN (COUNT) NOT BODY apple")
    assert re.match(rb'\* ESEARCH \(TAG "t\d+"\) UID COUNT 2$', u[0]), u
    u, t = c.cmd(b"SEARCH CHARSET UTF-8 HEADER Message-ID s2@test")
    assert u == [b"* SEARCH 3"], u
    u, t = c.cmd(b"SEARCH CHARSET ISO-2022-JP TEXT x")
    assert t.startswith(b"NO [BADCHARSET"), t
    u, t = c.cmd(b"SEARCH 2:3 SUBJECT s")
    assert u == [b"* SEARCH 2 3"], u
    c.close()


def _mime(subject, parts):
    """A multipart/mixed message; parts are (headers, encoded body)."""
    out = ("From: sender@example.org\r\nTo: alice@example.com\r\nSubject: %s\r\n"
           "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=b=\"\r\n\r\n"
           % subject).encode()
    for hdr, body in parts:
        out += b"--=b=\r\n" + hdr.encode() + b"\r\n\r\n" + body + b"\r\n"
    return out + b"--=b=--\r\n"


def test_search_decoded_text_parts(node):
    utf8_text = "Rendez-vous \u00e0 Z\u00fcrich : Gr\u00fc\u00dfe von \u00c5sa\r\n" * 3
    b64 = base64.encodebytes(utf8_text.encode()).replace(b"\n", b"\r\n").rstrip()
    m1 = _mime("one", [
        ("Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64", b64),
        ("Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64",
         base64.b64encode(b"hiddenword inside an attachment"))])
    qp = (b"Cr=E8me br=FBl=E9e au caf=E9 =E0 Montr=E9al, l'=E9t=E9 dernier, avec =\r\n"
          b"Fran=E7ois.")
    m2 = _mime("two", [("Content-Type: text/plain; charset=ISO-8859-1\r\n"
                        "Content-Transfer-Encoding: quoted-printable", qp)])
    m3 = msg("three", "Plain ASCII body about Zurich and cafes.\r\n")
    for m in (m1, m2, m3):
        assert deliver(node, "alice@example.com", m) == {}

    c = imaplib.IMAP4("127.0.0.1", node.ports["imapplain"], timeout=30)
    c.login("alice", "secret")
    c.select("INBOX")

    def search(key, text):
        c.literal = text.encode()
        typ, data = c.search("UTF-8", key)
        assert typ == "OK", (key, text, data)
        return [int(x) for x in data[0].split()]

    # decoded words, any case, in base64 UTF-8 and QP ISO-8859-1 parts
    assert search("BODY", "z\u00fcrich") == [1]
    assert search("BODY", "GR\u00dc\u00dfE VON \u00c5SA") == [1]
    assert search("TEXT", "Gr\u00fc\u00dfe") == [1]
    assert search("BODY", "cr\u00e8me br\u00fbl\u00e9e") == [2]
    assert search("BODY", "CR\u00c8ME BR\u00dbL\u00c9E") == [2]
    assert search("TEXT", "Montr\u00e9al") == [2]
    assert search("BODY", "avec Fran\u00e7ois") == [2]  # across a soft line break
    assert search("BODY", "zurich") == [3]
    assert search("TEXT", "caf") == [2, 3]
    # not by their encoded forms
    assert search("BODY", b64[:16].decode()) == []
    assert search("TEXT", b64[20:36].decode()) == []
    assert search("BODY", "caf=E9") == []
    assert search("TEXT", "Montr=E9al") == []
    assert search("BODY", "=\r\nFran") == []
    # attachments are not text; MIME headers are not body text
    assert search("BODY", "hiddenword") == []
    assert search("TEXT", "hiddenword") == []
    assert search("BODY", "octet-stream") == []
    assert search("TEXT", "multipart/mixed") == [1, 2]
    # the plain imaplib form (no CHARSET) still works
    typ, data = c.search(None, "BODY", "rendez-vous")
    assert typ == "OK" and data == [b"1"], data
    typ, data = c.uid("SEARCH", "TEXT", "ASCII")
    assert typ == "OK" and len(data[0].split()) == 1, data
    c.logout()
    # the structures stored at delivery were used, nothing was parsed
    log = node.read_log()
    assert "imap.search_parse" not in log and "imap.search_mime" not in log


def test_append_errors_and_appenduid(node):
    c = Raw(node.ports["imapplain"])
    m = b"Subject: a\r\n\r\nbody\r\n"
    u, t = c.cmd(b"APPEND Nope {%d+}\r\n" % len(m) + m)
    assert t.startswith(b"NO [TRYCREATE]"), t
    u, t = c.cmd(b'APPEND INBOX (\\Seen $Forwarded) "05-Mar-2026 10:11:12 +0100" {%d+}\r\n'
                 % len(m) + m)
    mm = re.match(rb"OK \[APPENDUID (\d+) (\d+)\]", t)
    assert mm, t
    ok(c.cmd(b"SELECT INBOX")[1])
    u, t = c.cmd(b"UID FETCH %s (FLAGS INTERNALDATE BODYSTRUCTURE)" % mm.group(2))
    ok(t)
    # the structure was stored with the message: FETCH did not parse it
    assert "imap.fetch_parse" not in node.read_log()
    assert b"\\Seen" in u[0] and b"$Forwarded" in u[0], u
    assert b'INTERNALDATE "' in u[0] and b'"text" "plain"' in u[0].replace(b"TEXT", b"text"), u
    when = re.search(rb'INTERNALDATE "([^"]+)"', u[0]).group(1).decode()
    given = datetime.datetime.strptime("05-Mar-2026 10:11:12 +0100", "%d-%b-%Y %H:%M:%S %z")
    got = datetime.datetime.strptime(when.strip(), "%d-%b-%Y %H:%M:%S %z")
    assert got.timestamp() == given.timestamp(), when
    c.close()


def test_append_over_quota(make_node):
    n = make_node("q1")
    n.add_user("carol", quota=100)
    c = Raw(n.ports["imapplain"], login=False)
    ok(c.cmd(b"LOGIN carol secret")[1])
    m = b"Subject: q\r\n\r\n" + b"x" * 500 + b"\r\n"
    u, t = c.cmd(b"APPEND INBOX {%d+}\r\n" % len(m) + m)
    assert t.startswith(b"NO [OVERQUOTA]"), t
    c.close()


def test_fetch_after_other_session_expunged(node):
    for i in range(2):
        deliver(node, "alice@example.com", msg(f"x{i}"))
    a = Raw(node.ports["imapplain"])
    b = Raw(node.ports["imapplain"])
    ok(a.cmd(b"SELECT INBOX")[1])
    ok(b.cmd(b"SELECT INBOX")[1])
    ok(b.cmd(b"STORE 1 +FLAGS (\\Deleted)")[1])
    ok(b.cmd(b"EXPUNGE")[1])
    # a may not see the EXPUNGE during FETCH: the number stays valid
    u, t = a.cmd(b"FETCH 1:2 (UID BODY.PEEK[])", raw_lits=True)
    assert t.startswith(b"NO [EXPUNGEISSUED]"), t
    assert [x[0] for x in u] == [b"* 2 FETCH (UID 2 BODY[] {170}<lit>)"], u
    u, t = a.cmd(b"FETCH 1 (UID FLAGS)")  # answered from the view
    assert len(u) == 1 and u[0].startswith(b"* 1 FETCH (UID 1 FLAGS ("), u
    ok(t)
    u, t = a.cmd(b"NOOP")
    assert b"* 1 EXPUNGE" in u, u
    u, t = a.cmd(b"FETCH 1 (UID)")
    assert u == [b"* 1 FETCH (UID 2)"], u
    a.close()
    b.close()
