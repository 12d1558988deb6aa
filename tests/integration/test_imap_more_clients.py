"""More real IMAP clients against popnode: offlineimap (both ways) and mutt.

offlineimap syncs alice's account to a local Maildir over IMAPS (the
certificate checked against node.cert; a wrong CA file makes it fail):
server messages and flags arrive locally, local flag changes, deletions, new
messages and new folders reach the server, server-side changes arrive on the
next run, and a run with nothing to do changes nothing on either side.

Not STARTTLS: offlineimap 8.0.0 calls imaplib2's starttls() without a CA
file (no certificate check at all), and imaplib2 3.05 then races its reader
thread against its writer on the fresh SSL object; with TLS 1.3 session
tickets arriving right after the handshake it hangs or segfaults in about
one run in four.  IMAPS is what offlineimap users are told to use.

mutt is driven in a private tmux server: it opens INBOX over IMAPS, shows
the index, displays a message body, and its delete + flag + sync reach the
server.  Each test is skipped only when its client binary is missing.
"""
import imaplib
import os
import re
import shutil
import subprocess
import time

import pytest

from mail import deliver, msg

OFFLINEIMAP = shutil.which("offlineimap")
MUTT = shutil.which("mutt")
TMUX = shutil.which("tmux")


# ---------------------------------------------------------------- helpers

def imap_login(node):
    c = imaplib.IMAP4("127.0.0.1", node.ports["imapplain"], timeout=30)
    c.login("alice", "secret")
    return c


def list_mailboxes(c):
    typ, data = c.list('""', "*")
    assert typ == "OK", data
    names = []
    for line in data:
        m = re.match(rb'\(([^)]*)\) (?:"[^"]*"|NIL) (.*)$', line)
        assert m, line
        if b"\\Noselect" in m.group(1):
            continue
        names.append(m.group(2).strip(b'"').decode())
    return sorted(names)


def mailbox_state(c, name):
    """{'uidvalidity','uidnext','modseq','msgs': {uid: (flags, subject)}} via EXAMINE."""
    typ, data = c.select(f'"{name}"', readonly=True)
    assert typ == "OK", (name, data)
    state = {"uidvalidity": c.response("UIDVALIDITY")[1][0],
             "uidnext": c.response("UIDNEXT")[1][0],
             "modseq": c.response("HIGHESTMODSEQ")[1][0]}
    flags, subjects = {}, {}
    typ, data = c.uid("FETCH", "1:*", "(FLAGS)")
    assert typ == "OK", data
    for line in data:
        if line is None:
            continue
        uid = int(re.search(rb"UID (\d+)", line).group(1))
        fl = re.search(rb"FLAGS \(([^)]*)\)", line).group(1).decode().split()
        flags[uid] = frozenset(f for f in fl if f != "\\Recent")
    typ, data = c.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK", data
    for item in data:
        if isinstance(item, tuple):
            uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
            m = re.search(rb"Subject: ([^\r\n]*)", item[1])
            subjects[uid] = m.group(1).decode() if m else ""
    assert set(flags) == set(subjects), (flags, subjects)
    state["msgs"] = {u: (flags[u], subjects[u]) for u in flags}
    c.close()
    return state


def server_state(node):
    c = imap_login(node)
    try:
        return {name: mailbox_state(c, name) for name in list_mailboxes(c)}
    finally:
        c.logout()


def by_subject(mbox):
    """{subject: flags} of one mailbox_state()."""
    return {subj: flags for flags, subj in mbox["msgs"].values()}


# ---------------------------------------------------------------- offlineimap

def maildir_messages(folder):
    """{file name: (uid or None, subdir, info flags, subject, path)} of a Maildir folder."""
    out = {}
    for sub in ("new", "cur"):
        d = os.path.join(folder, sub)
        for name in os.listdir(d):
            path = os.path.join(d, name)
            m = re.search(r",U=(\d+)", name)
            uid = int(m.group(1)) if m else None
            flags = name.split(":2,", 1)[1] if ":2," in name else ""
            with open(path, "rb") as f:
                s = re.search(rb"Subject: ([^\r\n]*)", f.read())
            out[name] = (uid, sub, flags, s.group(1).decode() if s else "", path)
    return out


def local_by_subject(folder):
    return {subj: (uid, flags, path)
            for uid, _, flags, subj, path in maildir_messages(folder).values()}


def local_folders(root):
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        if {"cur", "new", "tmp"} <= set(dirnames):
            found.append(os.path.relpath(dirpath, root))
        dirnames[:] = [d for d in dirnames if d not in ("cur", "new", "tmp")]
    return sorted(found)


def local_snapshot(root):
    snap = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                snap[os.path.relpath(path, root)] = f.read()
    return snap


CHANGE_RE = re.compile(r"^(Copy message|Adding flag|Deleting flag|Deleting \d+ messages?|"
                       r"Creating folder|Creating new Local Status)", re.M)


@pytest.mark.skipif(OFFLINEIMAP is None, reason="offlineimap not installed (Debian: offlineimap3)")
def test_offlineimap_both_ways(node, tmpbase):
    # Server side before the first sync: INBOX with flags, and a folder
    # tree created by another client.
    subjects = ["oi seen", "oi answered", "oi plain", "oi later seen", "oi server gone"]
    for s in subjects:
        assert deliver(node, "alice@example.com", msg(s, body=f"Body of {s}.\r\n")) == {}
    c = imap_login(node)
    c.select("INBOX")
    assert c.uid("STORE", "1", "+FLAGS", r"(\Seen)")[0] == "OK"
    assert c.uid("STORE", "2", "+FLAGS", r"(\Answered \Flagged)")[0] == "OK"
    assert c.create("Remote/Sub")[0] == "OK"
    assert c.append("Remote/Sub", r"(\Seen)", None,
                    msg("oi remote sub", body="In a subfolder.\r\n"))[0] == "OK"
    c.logout()

    local = os.path.join(tmpbase, "maildir")
    meta = os.path.join(tmpbase, "oimeta")
    home = os.path.join(tmpbase, "home")
    os.makedirs(local)
    os.makedirs(home)
    conf = os.path.join(tmpbase, "offlineimaprc")
    with open(conf, "w") as f:
        f.write(f"""[general]
accounts = t
metadata = {meta}
ui = basic
maxsyncaccounts = 1

[Account t]
localrepository = L
remoterepository = R

[Repository L]
type = Maildir
localfolders = {local}
sep = /

[Repository R]
type = IMAP
remotehost = localhost
remoteport = {node.ports['imaps']}
ssl = yes
sslcacertfile = {node.cert}
remoteuser = alice
remotepass = secret
createfolders = True
expunge = yes
""")
    env = dict(os.environ, HOME=home)

    def sync(cfg=conf):
        cmd = [OFFLINEIMAP, "-c", cfg, "-o", "-u", "basic"]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=30,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"offlineimap timed out; output:\n{e.stdout}{e.stderr}\n"
                                 f"popnode log:\n{node.read_log()[-6000:]}") from None
        out = r.stdout + r.stderr
        assert (r.returncode == 0 and "ERROR" not in out) == (cfg == conf), out
        return out

    # 0. the certificate is really checked: another CA file fails, and
    # nothing is written locally
    other = os.path.join(tmpbase, "other")
    os.makedirs(other)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", os.path.join(other, "key.pem"),
                    "-out", os.path.join(other, "cert.pem"), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    badconf = os.path.join(tmpbase, "offlineimaprc.bad")
    with open(conf) as f, open(badconf, "w") as g:
        g.write(f.read().replace(node.cert, os.path.join(other, "cert.pem"))
                .replace(meta, meta + ".bad"))
    out = sync(badconf)
    assert "CERTIFICATE_VERIFY_FAILED" in out, out
    assert os.listdir(local) == []

    # 1. server -> local: folders, messages, flags
    out = sync()
    assert "Finished account 't'" in out, out
    assert local_folders(local) == ["Archive", "Drafts", "INBOX", "Junk", "Remote", "Remote/Sub",
                                    "Sent", "Trash"], local_folders(local)
    inbox = os.path.join(local, "INBOX")
    lm = local_by_subject(inbox)
    assert sorted(lm) == sorted(subjects), lm
    assert {s: (u, fl) for s, (u, fl, _) in lm.items()} == {
        "oi seen": (1, "S"), "oi answered": (2, "FR"), "oi plain": (3, ""),
        "oi later seen": (4, ""), "oi server gone": (5, "")}
    with open(lm["oi plain"][2], "rb") as f:
        body = f.read()
    assert b"Body of oi plain." in body and b"Delivered-To: alice@example.com" in body
    sub = local_by_subject(os.path.join(local, "Remote", "Sub"))
    assert {s: fl for s, (_, fl, _) in sub.items()} == {"oi remote sub": "S"}

    # 2. changes on both sides
    def reflag(subject, flags):
        path = lm[subject][2]
        name = os.path.basename(path).split(":2,")[0] + ":2," + flags
        os.rename(path, os.path.join(inbox, "cur", name))
    reflag("oi plain", "F")          # add \Flagged
    reflag("oi answered", "F")       # remove \Answered
    os.unlink(lm["oi seen"][2])      # delete locally -> expunged on the server
    with open(os.path.join(inbox, "new", "1700000000.P1Q1.localhost"), "wb") as f:
        f.write(msg("oi local new", body="Written locally.\r\n"))
    # offlineimap creates every level of a new nested folder on the server,
    # so the parent must be a Maildir too or it aborts the run.
    deep = os.path.join(local, "Local", "Deep")
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(deep, d))
        os.makedirs(os.path.join(local, "Local", d))
    with open(os.path.join(deep, "cur", "1700000001.P1Q2.localhost:2,S"), "wb") as f:
        f.write(msg("oi local deep", body="In a new local folder.\r\n"))

    assert deliver(node, "alice@example.com", msg("oi delivered later")) == {}
    c = imap_login(node)
    c.select("INBOX")
    assert c.uid("STORE", "4", "+FLAGS", r"(\Seen)")[0] == "OK"
    assert c.uid("STORE", "5", "+FLAGS", r"(\Deleted)")[0] == "OK"
    assert c.expunge()[0] == "OK"
    assert c.create("Remote/Sub2")[0] == "OK"
    c.logout()

    sync()
    st = server_state(node)
    assert sorted(st) == ["Archive", "Drafts", "INBOX", "Junk", "Local", "Local/Deep", "Remote",
                          "Remote/Sub", "Remote/Sub2", "Sent", "Trash"], sorted(st)
    assert by_subject(st["INBOX"]) == {
        "oi answered": {"\\Flagged"}, "oi plain": {"\\Flagged"}, "oi later seen": {"\\Seen"},
        "oi local new": set(), "oi delivered later": set()}, st["INBOX"]
    assert by_subject(st["Local/Deep"]) == {"oi local deep": {"\\Seen"}}
    assert by_subject(st["Remote/Sub"]) == {"oi remote sub": {"\\Seen"}}
    c = imap_login(node)
    c.select("INBOX", readonly=True)
    uid = [u for u, (_, s) in st["INBOX"]["msgs"].items() if s == "oi local new"][0]
    typ, data = c.uid("FETCH", str(uid), "(BODY.PEEK[])")
    assert typ == "OK" and b"Written locally." in data[0][1], data
    c.logout()

    lm = local_by_subject(inbox)
    assert {s: fl for s, (_, fl, _) in lm.items()} == {
        "oi answered": "F", "oi plain": "F", "oi later seen": "S", "oi local new": "",
        "oi delivered later": ""}, lm
    # the uploaded message now carries its server UID (UIDPLUS APPENDUID)
    assert lm["oi local new"][0] == uid, lm
    assert "Remote/Sub2" in local_folders(local)

    # 3. nothing changed: a new run changes nothing anywhere
    before_local, before_server = local_snapshot(local), server_state(node)
    out = sync()
    assert not CHANGE_RE.search(out), out
    assert local_snapshot(local) == before_local
    assert server_state(node) == before_server
    assert not os.path.exists(os.path.join(home, ".offlineimap"))
    assert os.path.isdir(meta)


# ---------------------------------------------------------------- mutt

class Tmux:
    """A private tmux server (own socket, no user config) running one command."""

    def __init__(self, base):
        self.sock = os.path.join(base, "tmux.sock")
        self.started = False

    def run(self, *args, check=True):
        r = subprocess.run([TMUX, "-f", "/dev/null", "-S", self.sock, *args],
                           capture_output=True, text=True, timeout=20)
        if check:
            assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r

    def start(self, command):
        # remain-on-exit before the command starts: the last screen stays
        # readable even if the client exits at once
        self.started = True
        self.run("start-server", ";", "set-option", "-g", "remain-on-exit", "on", ";",
                 "new-session", "-d", "-s", "t", "-x", "150", "-y", "40", command)

    def screen(self):
        return self.run("capture-pane", "-p", "-t", "t").stdout

    def keys(self, *keys):
        self.run("send-keys", "-t", "t", *keys)

    def wait(self, pred, what, timeout=20):
        deadline = time.time() + timeout
        while True:
            scr = self.screen()
            if pred(scr):
                return scr
            if time.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}; screen:\n{scr}")
            time.sleep(0.1)

    def stop(self):
        if self.started:
            self.run("kill-server", check=False)
            self.started = False


def index_flags(screen, subject):
    """The %Z status column of the index line showing subject, or None."""
    for line in screen.splitlines():
        m = re.match(r"^\s*\d+ (.{3}) .*\s" + re.escape(subject) + r"\s*$", line)
        if m:
            return m.group(1)
    return None


@pytest.mark.skipif(MUTT is None or TMUX is None, reason="mutt or tmux not installed")
def test_mutt_in_tmux(node, tmpbase):
    for i, s in enumerate(["mutt one", "mutt two", "mutt three"]):
        body = f"This is the body of message {s}, line {i}.\r\n"
        assert deliver(node, "alice@example.com", msg(s, body=body)) == {}
    home = os.path.join(tmpbase, "mutthome")
    os.makedirs(home)
    port = node.ports["imaps"]
    muttrc = os.path.join(tmpbase, "muttrc")
    with open(muttrc, "w") as f:
        f.write(f"""set imap_user = alice
set imap_pass = secret
set certificate_file = {node.cert}
set ssl_force_tls = yes
set ssl_verify_host = yes
set header_cache = ""
set message_cachedir = ""
set folder = "imaps://alice@localhost:{port}/"
set spoolfile = "+INBOX"
set record = ""
set postponed = ""
set mbox = ""
set move = no
set delete = yes
set quit = yes
set mark_old = no
set sort = mailbox-order
set wait_key = no
set imap_check_subscribed = no
""")
    url = f"imaps://alice@localhost:{port}/INBOX"
    rcfile = os.path.join(tmpbase, "mutt.rc")
    t = Tmux(tmpbase)
    try:
        t.start(f"env HOME={home} LANG=C.UTF-8 LC_ALL=C.UTF-8 {MUTT} -n -F {muttrc} -f {url}; "
                f"echo $? > {rcfile}.tmp && mv {rcfile}.tmp {rcfile}")
        t.wait(lambda s: all(index_flags(s, x) is not None
                             for x in ("mutt one", "mutt two", "mutt three")), "the index")
        t.keys("=", "Enter")                       # first entry (UID 1), open it
        t.wait(lambda s: "This is the body of message mutt one, line 0." in s, "the pager")
        t.keys("q")                                # back to the index
        t.wait(lambda s: index_flags(s, "mutt one") is not None and "body of message" not in s,
               "the index after the pager")
        t.keys("d")                                # delete it; cursor moves to "mutt two"
        t.wait(lambda s: "D" in (index_flags(s, "mutt one") or ""), "the D mark")
        t.keys("F")                                # flag "mutt two"
        t.wait(lambda s: "!" in (index_flags(s, "mutt two") or ""), "the ! mark")
        t.keys("$")                                # sync: STORE + EXPUNGE
        t.wait(lambda s: index_flags(s, "mutt one") is None, "the expunge")
        t.keys("q")
        deadline = time.time() + 20
        while not os.path.exists(rcfile):
            assert time.time() < deadline, "mutt did not quit:\n" + t.screen()
            time.sleep(0.1)
        with open(rcfile) as f:
            assert f.read().strip() == "0", t.screen()
    finally:
        t.stop()

    st = server_state(node)["INBOX"]
    subj = by_subject(st)
    assert "mutt one" not in subj, st
    assert subj["mutt two"] == {"\\Flagged"}, st
    assert subj["mutt three"] == set(), st
