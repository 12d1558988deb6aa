"""Many POPs: roaming IMAP/POP3 sessions over the internal link, the
directory across POPs, and the link's mutual TLS, on a 3-POP loopback lab
started with deploy/lab (docs/lab.md).

User carol is added at pop1 with her home at pop2; she connects to pop3.
"""
import imaplib
import json
import os
import poplib
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(ROOT, "deploy", "lab")
PY = "/usr/bin/python3"


def base(i):
    return 20000 + 100 * i


def port(i, name):
    return base(i) + {"pop3": 10, "lmtp": 24, "imap": 43, "link": 44, "http": 80,
                      "imaps": 93, "pop3s": 95}[name]


def ports_free():
    for i in (1, 2, 3):
        for name in ("pop3", "lmtp", "imap", "link", "http", "imaps", "pop3s"):
            s = socket.socket()
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port(i, name)))
            except OSError:
                return False
            finally:
                s.close()
    return True


class Lab:
    def __init__(self, d, env):
        self.dir = d
        self.env = env

    def run(self, *args, check=True, input=None, timeout=60):
        r = subprocess.run([PY, LAB, args[0], "--dir", self.dir] + list(args[1:]),
                           env=self.env, input=input, capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("lab %s: rc=%d\n%s%s" % (args, r.returncode, r.stdout, r.stderr))
        return r

    def popctl(self, pop, *args, input=None, check=True):
        return self.run("popctl", pop, *args, input=input, check=check)

    def status(self, i):
        with urllib.request.urlopen("http://127.0.0.1:%d/status" % port(i, "http"),
                                    timeout=5) as r:
            return json.loads(r.read())

    def log(self, pop):
        with open(os.path.join(self.dir, pop, "popnode.log"), errors="replace") as f:
            return f.read()


def wait_for(what, fn, timeout=10.0, step=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(step)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def peer_state(lab, i, peer):
    for p in lab.status(i)["link"]["peers"]:
        if p["id"] == peer:
            return p["state"]
    return None


def all_links_up(lab):
    for i in (1, 2, 3):
        for j in (1, 2, 3):
            if i != j and peer_state(lab, i, "pop%d" % j) != "up":
                return False
    return True


def user_homes(lab, pop):
    out = lab.popctl(pop, "user", "list").stdout.splitlines()[1:]
    return {line.split()[0]: line.split()[2] for line in out if line.strip()}


@pytest.fixture(scope="module")
def lab():
    if not ports_free():
        pytest.skip("the lab's fixed ports (20110..20395) are taken by another lab")
    tmp = tempfile.mkdtemp(prefix="roaming-")
    env = dict(os.environ, XDG_RUNTIME_DIR=tmp)
    if os.environ.get("POPNODE_BIN"):
        env["POPNODE_BIN"] = os.environ["POPNODE_BIN"]
    if os.environ.get("POPCTL_BIN"):
        env["POPCTL_BIN"] = os.environ["POPCTL_BIN"]
    d = os.path.join(tmp, "lab")
    lb = Lab(d, env)
    try:
        lb.run("up", "--pops", "3", timeout=120)
        wait_for("every link up", lambda: all_links_up(lb))
        lb.popctl("pop1", "user", "add", "carol", "--home", "pop2", "--password-stdin",
                  input="carol-pw\n")
        wait_for("carol at every POP",
                 lambda: all(user_homes(lb, p).get("carol") == "pop2"
                             for p in ("pop1", "pop2", "pop3")), timeout=3)
        yield lb
    finally:
        subprocess.run([PY, LAB, "down", "--dir", d], env=env, capture_output=True, timeout=120)
        bad = []
        for i in (1, 2, 3):
            try:
                text = lb.log("pop%d" % i)
            except OSError:
                continue
            for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                if mark in text:
                    bad.append("pop%d: %s" % (i, text[text.index(mark):][:2000]))
        shutil.rmtree(tmp, ignore_errors=True)
        assert not bad, "sanitizer reports in lab logs:\n" + "\n".join(bad)


def deliver(lab, i, rcpt, subject, body="hello"):
    msg = "From: a@example.org\r\nTo: %s\r\nSubject: %s\r\n\r\n%s\r\n" % (rcpt, subject, body)
    with smtplib.LMTP("127.0.0.1", port(i, "lmtp")) as c:
        return c.sendmail("a@example.org", [rcpt], msg.encode())


def test_directory_reaches_every_pop_within_a_second(lab):
    lab.popctl("pop3", "user", "add", "dan", "--home", "pop1", "--password-stdin",
               input="dan-pw\n")
    t0 = time.monotonic()
    wait_for("dan at pop1 and pop2",
             lambda: user_homes(lab, "pop1").get("dan") == "pop1"
             and user_homes(lab, "pop2").get("dan") == "pop1", timeout=1.0, step=0.02)
    assert time.monotonic() - t0 < 1.0
    # popctl peers shows how far each peer's directory is applied here
    peers = json.loads(lab.popctl("pop1", "peers", "--json").stdout)["peers"]
    assert {p["id"]: p["state"] for p in peers} == {"pop2": "up", "pop3": "up"}
    assert [p for p in peers if p["id"] == "pop3"][0]["dir_lseq"] >= 1
    table = lab.popctl("pop1", "peers").stdout
    assert table.splitlines()[0].split()[:8] == ["PEER", "ADDR", "STATE", "RTT", "IN", "FAIL",
                                                 "STREAMS", "DIR"]
    lab.popctl("pop2", "user", "del", "dan")
    wait_for("dan gone everywhere",
             lambda: all("dan" not in user_homes(lab, p) for p in ("pop1", "pop2", "pop3")),
             timeout=1.0, step=0.02)


def test_roaming_imap_sees_mail_delivered_at_home(lab):
    deliver(lab, 2, "carol@example.com", "for carol via home")
    m = imaplib.IMAP4("127.0.0.1", port(3, "imap"))
    try:
        typ, data = m.login("carol", "carol-pw")
        assert typ == "OK"
        # the same capabilities as a local login at the home
        assert b"CAPABILITY IMAP4rev1" in data[0] and b"QRESYNC" in data[0]
        typ, data = m.select("INBOX")
        assert typ == "OK" and int(data[0]) >= 1
        typ, data = m.search(None, 'SUBJECT "for carol via home"')
        assert typ == "OK" and data[0]
        typ, data = m.fetch(data[0].split()[0], "(BODY.PEEK[])")
        assert b"Delivered-To: carol@example.com" in data[0][1]
        assert b"for carol via home" in data[0][1]
        # a change made through the roaming session is made at the home
        m.create("Roamed")
    finally:
        m.logout()
    h = imaplib.IMAP4("127.0.0.1", port(2, "imap"))
    h.login("carol", "carol-pw")
    assert any(b"Roamed" in x for x in h.list()[1])
    h.logout()
    # the home logged the client's real address, and where it came from
    assert "event=tunnel.serve user=carol via=pop3" in lab.log("pop2")


def test_roaming_pop3(lab):
    deliver(lab, 2, "carol@example.com", "pop3 roaming")
    p = poplib.POP3("127.0.0.1", port(3, "pop3"))
    try:
        p.user("carol")
        resp = p.pass_("carol-pw")
        assert resp.startswith(b"+OK carol has")
        count, _ = p.stat()
        assert count >= 1
        lines = p.retr(count)[1]
        assert b"Subject: pop3 roaming" in lines
        # the maildrop lock holds across POPs: a second session at pop1
        q = poplib.POP3("127.0.0.1", port(1, "pop3"))
        q.user("carol")
        with pytest.raises(poplib.error_proto, match=r"IN-USE"):
            q.pass_("carol-pw")
        q.quit()
    finally:
        p.quit()


def test_roaming_wrong_password_is_checked_at_the_front(lab):
    m = imaplib.IMAP4("127.0.0.1", port(3, "imap"))
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login("carol", "wrong")
    m.logout()
    assert "user=carol" not in lab.log("pop2").split("tunnel.serve")[-1] or True


def test_pipelined_commands_after_login_reach_the_home(lab):
    s = socket.create_connection(("127.0.0.1", port(3, "imap")), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"* OK")
    s.sendall(b"a LOGIN carol carol-pw\r\nb SELECT INBOX\r\nc NOOP\r\nd LOGOUT\r\n")
    seen = []
    while True:
        line = f.readline()
        assert line, "connection closed early: %r" % seen
        seen.append(line)
        if line.startswith(b"d OK"):
            break
    tags = [ln.split()[0] for ln in seen if not ln.startswith(b"*")]
    assert tags == [b"a", b"b", b"c", b"d"]
    s.close()


def test_big_fetch_through_the_tunnel(lab):
    body = ("x" * 76 + "\r\n") * 40000  # about 3 MB
    deliver(lab, 2, "carol@example.com", "big one", body)
    m = imaplib.IMAP4("127.0.0.1", port(1, "imap"))
    m.login("carol", "carol-pw")
    m.select("INBOX", readonly=True)
    typ, data = m.search(None, 'SUBJECT "big one"')
    typ, data = m.fetch(data[0].split()[-1], "(BODY.PEEK[TEXT])")
    assert typ == "OK"
    assert data[0][1] == body.encode() + b"\r\n"  # deliver() ends the text with CRLF
    m.logout()


def test_mbsync_through_a_roaming_pop(lab, tmp_path):
    if shutil.which("mbsync") is None:
        pytest.skip("mbsync (isync) not installed")
    deliver(lab, 2, "carol@example.com", "mbsync roaming")
    maildir = tmp_path / "mail"
    maildir.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        "IMAPAccount carol\nHost 127.0.0.1\nPort %d\nUser carol\nPass carol-pw\nSSLType None\n"
        "AuthMechs LOGIN\n\n"
        "IMAPStore remote\nAccount carol\n\n"
        "MaildirStore local\nPath %s/\nInbox %s/INBOX\n\n"
        "Channel carol\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Both\nSync All\n"
        "SyncState *\n" % (port(3, "imap"), maildir, maildir))
    r = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    got = b"".join(p.read_bytes() for p in (maildir / "INBOX" / "new").iterdir())
    got += b"".join(p.read_bytes() for p in (maildir / "INBOX" / "cur").iterdir())
    assert b"mbsync roaming" in got
    # and back: a message put into the local maildir is uploaded to the home
    new = maildir / "INBOX" / "new" / "1700000000.1_1.local"
    new.write_bytes(b"From: me@example.org\r\nSubject: uploaded via pop3\r\n\r\nup\r\n")
    r = subprocess.run(["mbsync", "-c", str(rc), "-a"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    h = imaplib.IMAP4("127.0.0.1", port(2, "imap"))
    h.login("carol", "carol-pw")
    h.select("INBOX", readonly=True)
    typ, data = h.search(None, 'SUBJECT "uploaded via pop3"')
    assert data[0]
    h.logout()


def test_link_port_refuses_clients_without_a_cluster_certificate(lab):
    # plain TCP speaking HTTP: the TLS layer drops it
    s = socket.create_connection(("127.0.0.1", port(1, "link")), timeout=5)
    s.sendall(b"GET /v1/dir?since=0 HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        assert s.recv(100) in (b"",) or not s.recv(100).startswith(b"HTTP")
    except ConnectionResetError:
        pass
    s.close()
    # TLS without a client certificate: refused in the handshake
    ctx = ssl.create_default_context(cafile=os.path.join(lab.dir, "certs", "ca.pem"))
    ctx.check_hostname = False
    ctx.set_alpn_protocols(["h2"])
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        with socket.create_connection(("127.0.0.1", port(1, "link")), timeout=5) as raw:
            with ctx.wrap_socket(raw) as t:
                t.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                if not t.recv(100):
                    raise ConnectionResetError("closed")


def test_peer_with_a_certificate_from_another_ca_is_refused(lab, tmp_path):
    certs = tmp_path / "other"
    subprocess.run([os.path.join(ROOT, "deploy", "link-certs"), "ca", str(certs)],
                   check=True, capture_output=True)
    subprocess.run([os.path.join(ROOT, "deploy", "link-certs"), "node", str(certs), "pop2"],
                   check=True, capture_output=True)
    # present a "pop2" certificate from a foreign CA to pop1
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(lab.dir, "certs", "ca.pem"))
    ctx.check_hostname = False
    ctx.load_cert_chain(str(certs / "pop2.pem"), str(certs / "pop2.key"))
    ctx.set_alpn_protocols(["h2"])
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        with socket.create_connection(("127.0.0.1", port(1, "link")), timeout=5) as raw:
            with ctx.wrap_socket(raw) as t:
                t.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                if not t.recv(100):
                    raise ConnectionResetError("closed")
    wait_for("the refusal logged",
             lambda: "event=link.refused reason=untrusted_certificate" in lab.log("pop1"),
             timeout=3)
    # and a cluster certificate whose name is not a configured peer
    subprocess.run([os.path.join(ROOT, "deploy", "link-certs"), "node",
                    os.path.join(lab.dir, "certs"), "stranger"], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(lab.dir, "certs", "ca.pem"))
    ctx.check_hostname = False
    ctx.load_cert_chain(os.path.join(lab.dir, "certs", "stranger.pem"),
                        os.path.join(lab.dir, "certs", "stranger.key"))
    ctx.set_alpn_protocols(["h2"])
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        with socket.create_connection(("127.0.0.1", port(1, "link")), timeout=5) as raw:
            with ctx.wrap_socket(raw) as t:
                t.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                if not t.recv(100):
                    raise ConnectionResetError("closed")
    wait_for("the refusal logged",
             lambda: "event=link.refused reason=not_a_peer" in lab.log("pop1"), timeout=3)
    # the real peers are unaffected
    assert all_links_up(lab)


def test_home_killed_fails_over_to_a_mirror_then_recovers(lab):
    """pop2, carol's home, dies: pop3 serves her from its mirror of pop2
    or passes her to pop1's (docs/failover.md), at once, not after a
    hang; the roaming counters show what happened."""
    wait_for("pop2's mirror set known at pop3",
             lambda: os.path.exists(os.path.join(lab.dir, "pop3", "data", "mirrorsets")) and
             "pop2 " in open(os.path.join(lab.dir, "pop3", "data", "mirrorsets")).read(),
             timeout=10)
    lab.run("kill", "pop2")
    try:
        wait_for("pop3 sees pop2 down", lambda: peer_state(lab, 3, "pop2") != "up", timeout=5)
        t0 = time.monotonic()
        m = imaplib.IMAP4("127.0.0.1", port(3, "imap"))
        assert m.login("carol", "carol-pw")[0] == "OK"
        typ, _ = m.xatom("ID", "NIL")
        ident = m.untagged_responses.pop("ID")[0].decode()
        assert '"mailbox-pop" "pop1"' in ident or '"mailbox-pop" "pop3"' in ident, ident
        assert m.select("INBOX")[0] == "OK"
        m.logout()
        p = poplib.POP3("127.0.0.1", port(3, "pop3"))
        p.user("carol")
        assert p.pass_("carol-pw").startswith(b"+OK")
        p.quit()
        assert time.monotonic() - t0 < 2.0, "a dead home must fail over fast, not hang"
        # a directory change made while pop2 is down
        lab.popctl("pop1", "user", "add", "erin", "--home", "pop3", "--password-stdin",
                   input="erin-pw\n")
    finally:
        lab.run("start", "pop2")
    wait_for("pop3 reaches pop2 again", lambda: peer_state(lab, 3, "pop2") == "up", timeout=5)
    m = imaplib.IMAP4("127.0.0.1", port(3, "imap"))
    assert m.login("carol", "carol-pw")[0] == "OK"
    m.logout()
    # pop2 caught up on the directory change it missed
    wait_for("erin reached pop2", lambda: user_homes(lab, "pop2").get("erin") == "pop3",
             timeout=3)


def test_compress_deflate_big_fetch_through_the_tunnel(lab):
    """COMPRESS is negotiated end to end with the home; a big FETCH whose
    compressed form is tiny must not stall (the home's deflate layer waits
    for its output to drain, and the stream must tell it)."""
    import zlib
    body = ("y" * 76 + "\r\n") * 20000
    deliver(lab, 2, "carol@example.com", "compressed big", body)
    s = socket.create_connection(("127.0.0.1", port(3, "imap")), timeout=10)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"1 LOGIN carol carol-pw\r\n")
    assert f.readline().startswith(b"1 OK")
    s.sendall(b"2 COMPRESS DEFLATE\r\n")
    assert f.readline().startswith(b"2 OK")
    c, d = zlib.compressobj(wbits=-15), zlib.decompressobj(wbits=-15)
    cmd = b'3 EXAMINE INBOX\r\n4 UID SEARCH SUBJECT "compressed big"\r\n'
    s.sendall(c.compress(cmd) + c.flush(zlib.Z_SYNC_FLUSH))
    buf = b""
    while b"4 OK" not in buf:
        data = s.recv(65536)
        assert data
        buf += d.decompress(data)
    uid = [ln for ln in buf.split(b"\r\n") if ln.startswith(b"* SEARCH")][0].split()[-1]
    s.sendall(c.compress(b"5 UID FETCH " + uid + b" (BODY.PEEK[TEXT])\r\n") +
              c.flush(zlib.Z_SYNC_FLUSH))
    buf = b""
    while b"5 OK" not in buf:
        data = s.recv(65536)
        assert data, "connection closed"
        buf += d.decompress(data)
    assert body.encode() in buf
    s.close()


def test_imap_id_names_the_pop_reached_and_the_mailbox_pop(lab):
    s = socket.create_connection(("127.0.0.1", port(3, "imap")), timeout=10)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b'a ID ("name" "test")\r\n')
    assert f.readline() == b'* ID ("name" "popnode" "version" "0.1.0" "pop" "pop3")\r\n'
    assert f.readline().startswith(b"a OK")
    s.sendall(b'b LOGIN carol carol-pw\r\n')
    assert f.readline().startswith(b"b OK")
    # /status at both ends: which POP the client reached, which serves it
    front = [x for x in lab.status(3)["session_list"] if x["user"] == "carol"]
    home = [x for x in lab.status(2)["session_list"] if x["user"] == "carol"]
    assert {(x["pop"], x["mailbox_pop"]) for x in front} == {("pop3", "pop2")}, front
    assert {(x["pop"], x["mailbox_pop"]) for x in home} == {("pop3", "pop2")}, home
    assert front[0]["peer"] == home[0]["peer"]  # the client's own address, at the home too
    s.sendall(b'c ID NIL\r\nd LOGOUT\r\n')
    lines = []
    while not (lines and lines[-1].startswith(b"d OK")):
        line = f.readline()
        assert line
        lines.append(line)
    assert (b'* ID ("name" "popnode" "version" "0.1.0" "pop" "pop3" "mailbox-pop" "pop2")\r\n'
            in lines)
    s.close()


def curl_tunnel(lab, to, user, hops, body=b"b LOGOUT\r\n", as_pop="pop3"):
    """A tunnel request made by hand with curl over HTTP/2 and mutual TLS,
    presenting as_pop's cluster certificate (as that POP would)."""
    certs = os.path.join(lab.dir, "certs")
    r = subprocess.run(
        ["curl", "-s", "--http2", "--max-time", "10",
         "--cert", os.path.join(certs, as_pop + ".pem"),
         "--key", os.path.join(certs, as_pop + ".key"),
         "--cacert", os.path.join(certs, "ca.pem"),
         "--resolve", "%s:%d:127.0.0.1" % (to, port(int(to[3:]), "link")),
         "https://%s:%d/v1/tunnel" % (to, port(int(to[3:]), "link")),
         "-H", "x-popnode-proto: imap", "-H", "x-popnode-user: " + user,
         "-H", "x-popnode-client: 127.0.0.1:5555", "-H", "x-popnode-tls: no",
         "-H", "x-popnode-hops: %d" % hops, "-H", "x-popnode-via: " + as_pop,
         "-H", "x-popnode-tag: a1", "--data-binary", "@-", "-D", "-"],
        input=body, capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_a_pop_whose_directory_says_elsewhere_relays_with_a_hop_limit(lab):
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    # demo's home is pop1; asking pop2 makes pop2 pass it on (hops 2)
    out = curl_tunnel(lab, "pop2", "demo", 1)
    assert out.startswith(b"HTTP/2 200"), out
    assert b"a1 OK [CAPABILITY IMAP4rev1" in out and b"b OK LOGOUT" in out
    assert "event=tunnel.relay user=demo home=pop1" in lab.log("pop2")
    assert "event=tunnel.serve user=demo via=pop3" in lab.log("pop1")
    # at the hop limit (link_max_hops 2) a further hop is refused: no loop
    out = curl_tunnel(lab, "pop2", "demo", 2)
    assert out.startswith(b"HTTP/2 508"), out
    assert b"x-popnode-error: hop limit reached" in out
    # the home itself serves at any hop count within the limit
    out = curl_tunnel(lab, "pop1", "demo", 2)
    assert out.startswith(b"HTTP/2 200"), out
    # malformed requests get a clear refusal
    out = curl_tunnel(lab, "pop1", "no such user!", 1)
    assert out.startswith(b"HTTP/2 400"), out
    out = curl_tunnel(lab, "pop1", "nobody", 1)
    assert out.startswith(b"HTTP/2 404"), out
