"""Real clients: mbsync (isync) both ways, and curl imap://."""
import os
import shutil
import subprocess

import pytest

from mail import deliver, msg


def test_curl_imap(node):
    deliver(node, "alice@example.com", msg("for curl"))
    port = node.ports["imapplain"]
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "-u", "alice:secret",
                        f"imap://127.0.0.1:{port}/INBOX;UID=1"], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert b"Subject: for curl" in r.stdout
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "-u", "alice:secret",
                        f"imap://127.0.0.1:{port}/"], capture_output=True, timeout=30)
    assert r.returncode == 0 and b"INBOX" in r.stdout, r.stderr
    r = subprocess.run(["curl", "-sSk", "--max-time", "20", "-u", "alice:secret",
                        f"imaps://127.0.0.1:{node.ports['imaps']}/INBOX;UID=1"], capture_output=True, timeout=30)
    assert r.returncode == 0 and b"Subject: for curl" in r.stdout, r.stderr


@pytest.mark.skipif(shutil.which("mbsync") is None, reason="isync not installed")
def test_mbsync_both_ways(node, tmpbase):
    for i in range(5):
        deliver(node, "alice@example.com", msg(f"sync{i}"))
    local = os.path.join(tmpbase, "maildir")
    os.makedirs(local)
    rc = os.path.join(tmpbase, "mbsyncrc")
    with open(rc, "w") as f:
        f.write(f"""IMAPAccount t
Host localhost
Port {node.ports['imaps']}
User alice
Pass secret
SSLType IMAPS
CertificateFile {node.cert}

IMAPStore remote
Account t

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel c
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
""")
    def sync():
        r = subprocess.run(["mbsync", "-c", rc, "-a"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
    sync()
    new = os.listdir(os.path.join(local, "INBOX", "new")) + os.listdir(os.path.join(local, "INBOX", "cur"))
    assert len(new) == 5
    assert os.path.isdir(os.path.join(local, "Sent"))
    # local -> remote: a new message in a new local folder
    os.makedirs(os.path.join(local, "Local", "new"))
    os.makedirs(os.path.join(local, "Local", "cur"))
    os.makedirs(os.path.join(local, "Local", "tmp"))
    with open(os.path.join(local, "Local", "new", "1.local:2,S"), "wb") as f:
        f.write(msg("from local"))
    sync()
    import imaplib
    c = imaplib.IMAP4("127.0.0.1", node.ports["imapplain"])
    c.login("alice", "secret")
    typ, data = c.select("Local")
    assert typ == "OK" and data[0] == b"1"
    c.logout()
    sync()  # idempotent
