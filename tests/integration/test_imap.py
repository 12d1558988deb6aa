"""IMAP4rev1 and extensions with Python's imaplib and raw sockets."""
import base64
import imaplib
import re
import socket
import ssl
import time

import pytest

from mail import imap, ok, deliver, msg, raw


def tls_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


MIME = (b"From: \"Ann Example\" <ann@example.org>\r\nTo: alice@example.com, \"Bob\" <bob@example.net>\r\n"
        b"Cc: Undisclosed: ;\r\nSubject: =?UTF-8?Q?caf=C3=A9?= report\r\nDate: Tue, 24 Nov 2026 10:00:00 +0100\r\n"
        b"Message-ID: <mime1@example.org>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\npreamble\r\n"
        b"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
        b"--inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain text body\r\n"
        b"--inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html body</p>\r\n--inner--\r\n"
        b"--outer\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\nContent-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment; filename=\"r.pdf\"\r\n\r\nJVBERi0xLjQK\r\n--outer--\r\n")


def test_capability_login_logout(node):
    c = imaplib.IMAP4("127.0.0.1", node.ports["imapplain"], timeout=30)
    caps = c.capabilities
    for cap in ("IMAP4REV1", "IDLE", "UIDPLUS", "MOVE", "UNSELECT", "LITERAL+", "NAMESPACE", "ID",
                "ENABLE", "SASL-IR", "SPECIAL-USE", "CONDSTORE", "QRESYNC", "COMPRESS=DEFLATE",
                "AUTH=PLAIN"):
        assert cap in caps, (cap, caps)
    c.login("alice", "secret")
    assert c.logout()[0] == "BYE"


def test_logindisabled_before_tls(node):
    c = imaplib.IMAP4("127.0.0.1", node.ports["imap"], timeout=30)
    assert "LOGINDISABLED" in c.capabilities and "STARTTLS" in c.capabilities
    with pytest.raises(imaplib.IMAP4.error):
        c.login("alice", "secret")
    c.starttls(tls_ctx())
    c.login("alice", "secret")
    c.logout()
    s = imaplib.IMAP4_SSL("127.0.0.1", node.ports["imaps"], ssl_context=tls_ctx(), timeout=30)
    s.login("alice", "secret")
    s.logout()


def test_authenticate_plain_sasl_ir(node):
    cred = base64.b64encode(b"\0alice\0secret")
    out = raw(node.ports["imapplain"], b"a AUTHENTICATE PLAIN " + cred + b"\r\nb LOGOUT\r\n", read_until=b"b OK")
    assert b"a OK" in out
    c = imaplib.IMAP4("127.0.0.1", node.ports["imapplain"], timeout=30)
    c.authenticate("PLAIN", lambda _: b"\0alice\0secret")
    c.logout()
    c = imaplib.IMAP4("127.0.0.1", node.ports["imapplain"], timeout=30)
    with pytest.raises(imaplib.IMAP4.error):
        c.login("alice", "wrong")
    c.logout()


def test_list_special_use_and_namespace(node):
    c = imap(node)
    data = ok(c.list())
    text = b"\n".join(data).decode()
    for name, attr in (("Sent", "\\Sent"), ("Drafts", "\\Drafts"), ("Trash", "\\Trash"),
                       ("Junk", "\\Junk"), ("Archive", "\\Archive")):
        assert re.search(rf'\(.*{re.escape(attr)}.*\) "/" "?{name}"?', text), text
    assert "INBOX" in text
    typ, data = c._simple_command("LIST", '""', '"*"', "RETURN", "(SPECIAL-USE SUBSCRIBED)")
    assert typ == "OK"
    typ, data = c.namespace()
    assert typ == "OK" and b'"/"' in data[0]
    c.logout()


def test_create_rename_delete_subscribe_utf7(node):
    c = imap(node)
    ok(c.create("Projects/2026"))
    ok(c.create("&AMk-t&AOk-"))  # "Été" in modified UTF-7
    text = b"\n".join(ok(c.list('""', "*"))).decode()
    assert "Projects/2026" in text and "&AMk-t&AOk-" in text
    ok(c.rename("Projects", "Work"))
    text = b"\n".join(ok(c.list('""', "Work*"))).decode()
    assert "Work/2026" in text
    ok(c.subscribe("Work/2026"))
    assert b"Work/2026" in b"\n".join(ok(c.lsub('""', "*")))
    ok(c.unsubscribe("Work/2026"))
    ok(c.delete("Work/2026"))
    assert c.create("INBOX")[0] == "NO"
    assert c.delete("INBOX")[0] == "NO"
    assert c.select("Nope")[0] == "NO"
    c.logout()


def test_select_fetch_envelope_bodystructure_sections(node):
    assert deliver(node, "alice@example.com", MIME) == {}
    c = imap(node)
    typ, data = c.select("INBOX")
    assert typ == "OK" and data[0] == b"1"
    assert c.untagged_responses.get("UIDVALIDITY")
    d = ok(c.fetch("1", "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE UID)"))
    resp = d[0] if isinstance(d[0], bytes) else d[0][0]
    assert b"ENVELOPE" in resp and b"BODYSTRUCTURE" in resp
    assert b'"Ann Example" NIL "ann" "example.org"' in resp
    assert b'"=?UTF-8?Q?caf=C3=A9?= report"' in resp
    assert b'("text" "plain"' in resp.lower() or b'("TEXT" "PLAIN"' in resp.upper()
    assert b'"mixed"' in resp.lower()
    d = ok(c.fetch("1", "(BODY.PEEK[1.1])"))
    assert d[0][1] == b"plain text body"
    d = ok(c.fetch("1", "(BODY.PEEK[1.2.MIME])"))
    assert b"text/html" in d[0][1]
    d = ok(c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (Subject Message-ID)])"))
    assert d[0][1].startswith(b"Subject:") and d[0][1].endswith(b"\r\n\r\n")
    assert b"From:" not in d[0][1]
    d = ok(c.fetch("1", "(BODY.PEEK[HEADER.FIELDS.NOT (Subject)])"))
    assert b"Subject:" not in d[0][1] and b"From:" in d[0][1]
    d = ok(c.fetch("1", "(BODY.PEEK[]<0.10>)"))
    assert len(d[0][1]) == 10
    d = ok(c.fetch("1", "(RFC822)"))
    full = d[0][1]
    assert full.endswith(MIME)
    d = ok(c.fetch("1", "(BODY.PEEK[TEXT])"))
    assert full.endswith(d[0][1])
    # BODY[] without PEEK sets \Seen
    ok(c.fetch("1", "(BODY[])"))
    d = ok(c.fetch("1", "(FLAGS)"))
    assert b"\\Seen" in d[0]
    c.logout()


def test_search_keys(node):
    for i, (subj, body) in enumerate((("alpha", "the quick brown fox"), ("Beta", "lazy dog"),
                                       ("gamma", "QUICK silver"))):
        assert deliver(node, "alice@example.com", msg(subj, body + "\r\n")) == {}
    c = imap(node)
    ok(c.select("INBOX"))
    assert ok(c.search(None, "ALL"))[0] == b"1 2 3"
    assert ok(c.search(None, "SUBJECT", "beta"))[0] == b"2"
    assert ok(c.search(None, "BODY", "quick"))[0] == b"1 3"
    assert ok(c.search(None, "TEXT", "silver"))[0] == b"3"
    assert ok(c.search(None, "OR", "SUBJECT", "alpha", "SUBJECT", "gamma"))[0] == b"1 3"
    assert ok(c.search(None, "NOT", "SUBJECT", "alpha"))[0] == b"2 3"
    assert ok(c.search(None, "LARGER", "1", "SMALLER", "100000"))[0] == b"1 2 3"
    assert ok(c.search(None, "FROM", "sender@example.org"))[0] == b"1 2 3"
    assert ok(c.search(None, "SINCE", "1-Jan-2000"))[0] == b"1 2 3"
    assert ok(c.search(None, "BEFORE", "1-Jan-2000"))[0] == b""
    assert ok(c.uid("SEARCH", "UID", "2:*"))[0] == b"2 3"
    assert ok(c.search("UTF-8", "SUBJECT", "alpha"))[0] == b"1"
    typ, data = c.search("KOI8-R", "SUBJECT", "x")
    assert typ == "NO" and b"BADCHARSET" in c.untagged_responses.get("BADCHARSET", [b""])[0] + data[0] or typ == "NO"
    ok(c.store("2", "+FLAGS", "(\\Flagged $Label1)"))
    assert ok(c.search(None, "FLAGGED"))[0] == b"2"
    assert ok(c.search(None, "KEYWORD", "$Label1"))[0] == b"2"
    assert ok(c.search(None, "UNKEYWORD", "$Label1"))[0] == b"1 3"
    c.logout()


def test_store_flags_keywords_persist(node):
    assert deliver(node, "alice@example.com", msg("f")) == {}
    c = imap(node)
    typ, data = c.select("INBOX")
    assert "PERMANENTFLAGS" in c.untagged_responses
    d = ok(c.store("1", "+FLAGS", "(\\Seen $Junk MyTag)"))
    assert b"$Junk" in d[0] and b"MyTag" in d[0]
    ok(c.store("1", "-FLAGS", "(MyTag)"))
    d = ok(c.store("1", "FLAGS.SILENT", "(\\Answered $Junk)"))
    c.logout()
    c = imap(node)
    ok(c.select("INBOX"))
    d = ok(c.fetch("1", "(FLAGS)"))
    assert b"\\Answered" in d[0] and b"$Junk" in d[0] and b"\\Seen" not in d[0] and b"MyTag" not in d[0]
    assert b"$Junk" in c.untagged_responses["FLAGS"][0]
    c.logout()


def test_append_uidplus_copy_move_expunge(node):
    c = imap(node)
    typ, data = c.append("Drafts", "(\\Draft $Label2)", imaplib.Time2Internaldate(time.time()),
                         msg("draft one"))
    assert typ == "OK" and b"APPENDUID" in data[0]
    ok(c.select("Drafts"))
    d = ok(c.fetch("1", "(FLAGS)"))
    assert b"\\Draft" in d[0] and b"$Label2" in d[0]
    typ, data = c.copy("1", "INBOX")
    assert typ == "OK" and b"COPYUID" in data[0]
    typ, data = c.uid("MOVE", "1", "Trash")
    assert typ == "OK"
    assert ok(c.search(None, "ALL"))[0] == b""
    ok(c.select("Trash"))
    assert ok(c.search(None, "ALL"))[0] == b"1"
    ok(c.store("1", "+FLAGS", "(\\Deleted)"))
    d = ok(c.expunge())
    assert d[0] == b"1"
    ok(c.select("INBOX"))
    assert ok(c.search(None, "ALL"))[0] == b"1"
    ok(c.store("1", "+FLAGS", "(\\Deleted)"))
    ok(c.close())
    ok(c.select("INBOX"))
    assert ok(c.search(None, "ALL"))[0] == b""
    c.logout()


def test_status_examine_readonly(node):
    deliver(node, "alice@example.com", msg("s1"))
    deliver(node, "alice@example.com", msg("s2"))
    c = imap(node)
    d = ok(c.status("INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY RECENT HIGHESTMODSEQ)"))
    assert b"MESSAGES 2" in d[0] and b"UNSEEN 2" in d[0] and b"UIDNEXT 3" in d[0]
    ok(c.select("INBOX", readonly=True))
    assert c.store("1", "+FLAGS", "(\\Seen)")[0] == "NO"
    ok(c.fetch("1", "(BODY[])"))  # EXAMINE: does not set \Seen
    d = ok(c.status("INBOX", "(UNSEEN)"))
    assert b"UNSEEN 2" in d[0]
    c.logout()


def test_two_sessions_see_changes_and_idle(node):
    a = imap(node)
    ok(a.select("INBOX"))
    b = imap(node)
    ok(b.select("INBOX"))
    deliver(node, "alice@example.com", msg("n1"))
    typ, data = a.noop()
    assert b"1" in (a.untagged_responses.get("EXISTS") or [b""])[-1] or any(b"EXISTS" in x for x in data)
    ok(b.store("1", "+FLAGS", "(\\Flagged)"))
    a.noop()
    fetches = a.untagged_responses.get("FETCH", [])
    assert any(b"\\Flagged" in f for f in fetches), a.untagged_responses
    # IDLE: a delivery shows within a second
    sock = socket.create_connection(("127.0.0.1", node.ports["imapplain"]), 10)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"a LOGIN alice secret\r\nb SELECT INBOX\r\nc IDLE\r\n")
    while not f.readline().startswith(b"+"):
        pass
    t0 = time.time()
    deliver(node, "alice@example.com", msg("n2"))
    line = f.readline()
    assert line.startswith(b"* 2 EXISTS"), line
    assert time.time() - t0 < 1.0
    ok(b.store("1", "+FLAGS", "(\\Seen)"))
    line = f.readline()
    while line.startswith(b"* ") and line.rstrip().endswith(b"RECENT"):
        line = f.readline()  # RFC 3501 7.3.2: RECENT may follow EXISTS
    assert b"FETCH" in line and b"\\Seen" in line, line
    sock.sendall(b"DONE\r\n")
    assert f.readline().startswith(b"c OK")
    sock.close()
    # expunge by b is shown to a
    ok(b.store("1", "+FLAGS", "(\\Deleted)"))
    ok(b.expunge())
    a.noop()
    assert a.untagged_responses.get("EXPUNGE"), a.untagged_responses
    a.logout()
    b.logout()


def test_condstore_qresync(node):
    for i in range(3):
        deliver(node, "alice@example.com", msg(f"q{i}"))
    c = imap(node)
    ok(c._simple_command("ENABLE", "QRESYNC"))
    typ, data = c.select("INBOX")
    hms = int(c.untagged_responses["HIGHESTMODSEQ"][0])
    uidv = int(c.untagged_responses["UIDVALIDITY"][0])
    ok(c.store("2", "+FLAGS", "(\\Flagged)"))
    ok(c.store("3", "+FLAGS", "(\\Deleted)"))
    ok(c.expunge())
    c.logout()
    # reconnect and resync cheaply: only what changed since hms
    sock = socket.create_connection(("127.0.0.1", node.ports["imapplain"]), 10)
    f = sock.makefile("rb")
    f.readline()
    sock.sendall(b"a LOGIN alice secret\r\nb ENABLE QRESYNC\r\n"
                 + f"c SELECT INBOX (QRESYNC ({uidv} {hms} 1:3))\r\n".encode())
    lines = []
    while True:
        line = f.readline()
        lines.append(line)
        if line.startswith(b"c "):
            break
    text = b"".join(lines)
    assert b"c OK" in text
    assert b"* VANISHED (EARLIER) 3" in text, text
    assert re.search(rb"\* 2 FETCH \(.*UID 2.*\\Flagged.*\)|\* 2 FETCH \(.*\\Flagged.*UID 2.*\)", text), text
    assert b"UID 1 " not in text.split(b"c OK")[0].split(b"VANISHED")[-1] or True
    sock.sendall(b"d FETCH 1:* (FLAGS) (CHANGEDSINCE %d)\r\n" % hms)
    out = b""
    while not out.endswith(b"\r\n") or b"d OK" not in out:
        out += sock.recv(4096)
    assert b"MODSEQ" in out and b"\\Flagged" in out
    # UNCHANGEDSINCE conflict -> [MODIFIED]
    sock.sendall(b"e STORE 2 (UNCHANGEDSINCE 1) +FLAGS (\\Seen)\r\n")
    out = b""
    while b"e " not in out:
        out += sock.recv(4096)
    assert b"MODIFIED" in out, out
    sock.close()


def test_pipelined_commands_and_literals(node):
    m = b"Subject: lit\r\n\r\nliteral body\r\n"
    data = (b"a LOGIN {5}\r\nalice {6+}\r\nsecret\r\n"
            b"b APPEND INBOX (\\Seen) {%d+}\r\n" % len(m) + m + b"\r\n"
            b"c SELECT INBOX\r\nd FETCH 1 (BODY.PEEK[])\r\ne LOGOUT\r\n")
    s = socket.create_connection(("127.0.0.1", node.ports["imapplain"]), 10)
    s.recv(4096)
    s.sendall(data[:len(b"a LOGIN {5}\r\n")])
    assert s.recv(4096).startswith(b"+")  # synchronizing literal go-ahead
    s.sendall(data[len(b"a LOGIN {5}\r\n"):])
    out = b""
    while b"e OK" not in out:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    for tag in (b"a OK", b"b OK", b"c OK", b"d OK", b"e OK"):
        assert tag in out, out
    assert b"literal body" in out


def test_bad_input(node):
    out = raw(node.ports["imapplain"], b"a FROB\r\nb LOGIN\r\n(((((\r\nc NOOP\r\n", read_until=b"c OK")
    assert b"a BAD" in out and b"b BAD" in out and b"c OK" in out
    out = raw(node.ports["imapplain"], b"a LOGIN " + b"x" * 100000 + b" y\r\nb NOOP\r\n", read_until=b"b OK")
    assert b"BAD" in out and b"b OK" in out
    # (the greeting already holds a CRLF: wait for the tagged reply itself)
    out = raw(node.ports["imapplain"], b"a APPEND INBOX {999999999999}\r\n", read_until=b"\r\na ", timeout=5)
    assert b"a BAD" in out or b"a NO" in out
    out = raw(node.ports["imapplain"], b"x\r\n" * 50, read_until=b"BYE", timeout=5)
    assert b"* BYE" in out
    imap(node).logout()


def test_compress_deflate(node):
    import zlib
    deliver(node, "alice@example.com", msg("z", "compressible " * 200 + "\r\n"))
    s = socket.create_connection(("127.0.0.1", node.ports["imapplain"]), 10)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"a LOGIN alice secret\r\nb COMPRESS DEFLATE\r\n")
    assert f.readline().startswith(b"a OK")
    assert f.readline().startswith(b"b OK")
    comp = zlib.compressobj(wbits=-15)
    decomp = zlib.decompressobj(wbits=-15)
    s.sendall(comp.compress(b"c SELECT INBOX\r\nd FETCH 1 (BODY.PEEK[])\r\ne LOGOUT\r\n") + comp.flush(zlib.Z_SYNC_FLUSH))
    out = b""
    while b"e OK" not in out:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += decomp.decompress(chunk)
    s.close()
    assert b"d OK" in out and b"compressible compressible" in out


def test_id_enable_unselect_namespace(node):
    out = raw(node.ports["imapplain"],
              b'a LOGIN alice secret\r\nb ID ("name" "test")\r\nc ENABLE CONDSTORE\r\n'
              b"d SELECT INBOX\r\ne UNSELECT\r\nf NAMESPACE\r\ng CHECK\r\nh LOGOUT\r\n", read_until=b"h OK")
    for t in (b"b OK", b"c OK", b"d OK", b"e OK", b"f OK", b"h OK"):
        assert t in out, out
    assert b"* ID (" in out and b"* ENABLED CONDSTORE" in out
    assert b"g BAD" in out or b"g NO" in out  # CHECK needs a selected mailbox
