"""A real Postfix delivering to popnode over LMTP (docs/lmtp.md, "Postfix").

Each test runs a private Postfix instance that lives entirely in the test's
temp dir: its own config_directory (main.cf, master.cf), queue_directory,
data_directory and maillog_file.  smtpd listens on a free 127.0.0.1 port,
no service is chrooted, and nothing can leave the machine: mydestination
and relayhost are empty, default/relay transports are `error`, the SMTP and
LMTP clients do no DNS, smtpd does no reverse lookups.  The system instance
(/etc/postfix, port 25) is never touched: every postfix(1) command gets
`-c <our config dir>`.

Mail for example.com/example.net goes to popnode through
`virtual_transport = lmtp:unix:<node.lmtp_sock>`; the messages are read
back over POP3.  Tested: delivery with one and two recipients (one LMTP
reply each), an unknown user bounced (the DSN delivered to popnode too),
the docs' address-verification setup refusing unknown users at RCPT, and a
452 (quota) keeping mail queued until a retry delivers it.  The instance is
stopped with `postfix stop` in a fixture finalizer, also when a test fails,
and every process of it (found by its cwd, the queue dir) is waited for.

Skipped only when Postfix is not installed (Debian: package `postfix`).
"""
import os
import re
import smtplib
import subprocess
import time

import pytest

from conftest import free_ports
from mail import pop3, retr_bytes

POSTFIX = "/usr/sbin/postfix"
TOOLS = {"postconf": "/usr/sbin/postconf", "postmap": "/usr/sbin/postmap"}
DEADLINE = 30  # seconds to wait for Postfix to deliver

# A maillog line of Postfix complaining about anything.
PROBLEMS = r"postfix-popnode-test/[\w-]+\[\d+\]: (warning|error|fatal|panic):"

pytestmark = pytest.mark.skipif(not os.path.exists(POSTFIX),
                                reason=f"{POSTFIX} is not installed (Debian package 'postfix')")

# Every service Postfix needs here, none chrooted (5th column "n").
# Deliberately no smtp/relay/local/virtual client: nothing may go out.
MASTER_CF = """\
# written by tests/integration/test_postfix.py
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

# main.cf, in order; a test's `extra` entries replace or add parameters.
MAIN_CF = [
    ("compatibility_level", "3.6"),
    ("queue_directory", "{queue}"),
    ("data_directory", "{data}"),
    ("maillog_file", "{maillog}"),
    ("maillog_file_prefixes", "{dir}"),
    ("syslog_name", "postfix-popnode-test"),
    ("myhostname", "mx.popnode-test.invalid"),
    ("mydomain", "popnode-test.invalid"),
    ("myorigin", "$myhostname"),
    ("inet_interfaces", "127.0.0.1"),
    ("inet_protocols", "ipv4"),
    ("mynetworks", "127.0.0.0/8"),
    # Nothing is local, nothing is relayed, nothing goes to the network.
    ("mydestination", ""),
    ("local_recipient_maps", ""),
    ("relay_domains", ""),
    ("relayhost", ""),
    ("default_transport", "error:no outside delivery in this test"),
    ("relay_transport", "error:no outside delivery in this test"),
    ("alias_maps", ""),
    ("alias_database", ""),
    ("smtp_dns_support_level", "disabled"),
    ("lmtp_dns_support_level", "disabled"),
    ("smtpd_peername_lookup", "no"),
    ("biff", "no"),
    # No notices to the postmaster (there is none); bounces to the sender
    # are still made (and delivered by popnode when the sender is its user).
    ("notify_classes", ""),
    # What docs/lmtp.md describes: popnode serves these domains over LMTP.
    ("virtual_mailbox_domains", "example.com example.net"),
    ("virtual_transport", "lmtp:unix:{lmtp_sock}"),
]


class Postfix:
    """A private Postfix instance under `base`/postfix."""

    def __init__(self, base, node, extra=()):
        self.dir = os.path.join(base, "postfix")
        self.conf = os.path.join(self.dir, "etc")
        self.queue = os.path.realpath(os.path.join(self.dir, "spool"))
        self.data = os.path.join(self.dir, "lib")
        self.maillog = os.path.join(self.dir, "maillog")
        self.port = free_ports(1)[0]
        self.running = False
        os.makedirs(self.conf)
        # root:root 0755, as `postfix check` wants it; `postfix check`
        # (post-install create-missing) then makes the queue subdirectories
        # and data_directory with the owners Postfix needs.
        os.makedirs(self.queue, 0o755)
        os.chmod(self.queue, 0o755)
        params = dict(MAIN_CF)
        params.update(extra)
        fmt = dict(queue=self.queue, data=self.data, maillog=self.maillog, dir=self.dir,
                   lmtp_sock=node.lmtp_sock)
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write("# written by tests/integration/test_postfix.py\n")
            for k, v in params.items():
                f.write(f"{k} = {v.format(**fmt)}\n")
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port))
        # Our files really are the configuration in use.
        assert "127.0.0.1:%d" % self.port in self.cmd("postconf", "-M").stdout
        assert self.cmd("postconf", "-h", "queue_directory").stdout.strip() == self.queue

    def cmd(self, *args, check=True):
        """`postfix -c <conf> ARGS`, or `postconf|postmap -c <conf> ARGS`."""
        if args[0] in TOOLS:
            argv = [TOOLS[args[0]], "-c", self.conf, *args[1:]]
        else:
            argv = [POSTFIX, "-c", self.conf, *args]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} -> {r.returncode}\n{r.stdout}{r.stderr}\n"
                                 + self.read_log())
        return r

    def start(self):
        self.cmd("check")
        self.running = True  # from here on, always try to stop
        self.cmd("start")
        self.wait_smtp()
        return self

    def wait_smtp(self, timeout=15):
        deadline = time.time() + timeout
        while True:
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=5) as s:
                    if s.noop()[0] == 250:
                        return
            except (OSError, smtplib.SMTPException):
                if time.time() > deadline:
                    raise AssertionError("Postfix smtpd did not answer:\n" + self.read_log())
            time.sleep(0.1)

    def pids(self):
        """Processes of this instance: Postfix daemons chdir to the queue."""
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.readlink(f"/proc/{pid}/cwd") == self.queue:
                    found.append(int(pid))
            except OSError:
                pass
        return found

    def stop(self):
        """postfix stop, then wait until every process of ours is gone."""
        if not self.running:
            return
        self.running = False
        r = self.cmd("stop", check=False)
        deadline = time.time() + 10
        while self.pids() and time.time() < deadline:
            time.sleep(0.1)
        left = self.pids()
        for pid in left:  # only if `postfix stop` failed (or hung): by id
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        assert r.returncode == 0 and not left, \
            f"postfix stop -> {r.returncode} {r.stdout}{r.stderr}, left: {left}"

    def read_log(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def queued(self, queue):
        """Queue files in one of our queues (incoming, active, deferred...)."""
        return [f for _, _, files in os.walk(os.path.join(self.queue, queue)) for f in files]

    def smtp(self):
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
        s.ehlo("client.popnode-test.invalid")
        return s


@pytest.fixture
def postfix(tmpbase, node):
    """Factory: postfix(extra main.cf, start) -> private Postfix for `node`."""
    instances = []

    def make(extra=(), start=True):
        p = Postfix(tmpbase, node, extra)
        instances.append(p)
        return p.start() if start else p

    try:
        yield make
    finally:
        for p in instances:
            p.stop()


def message(subject, to, sender="sender@example.org"):
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@popnode-test.invalid>\r\n"
            f"\r\nThis is {subject}.\r\n").encode()


def mailbox(node, user, password, want=1):
    """All messages in user's INBOX as served by POP3, or None if fewer than `want`."""
    p = pop3(node, user, password)
    try:
        count, _ = p.stat()
        return [retr_bytes(p, i) for i in range(1, count + 1)] if count >= want else None
    finally:
        p.quit()


def wait_for(what, cond, pf, node):
    deadline = time.time() + DEADLINE
    while True:
        got = cond()
        if got:
            return got
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n--- maillog:\n{pf.read_log()}"
                                 f"\n--- popnode log:\n{node.read_log()[-4000:]}")
        time.sleep(0.2)


def subject(m):
    found = re.search(rb"^Subject: (.*?)\r$", m, re.M)
    return found.group(1).decode() if found else None


# Postfix's cleanup warns when the queue file's time stamp is ahead of the
# clock (a loaded machine, coarse file system times): about the host, not
# about popnode.
HOST_NOISE = ("file system clock is", "resetting file time stamps")


def log_lines(pf, pattern):
    return [l for l in pf.read_log().splitlines()
            if re.search(pattern, l) and not any(n in l for n in HOST_NOISE)]


def test_postfix_delivers_over_lmtp_unix_socket(node, postfix):
    pf = postfix()
    with pf.smtp() as s:
        assert s.sendmail("sender@example.org", ["alice@example.com"],
                          message("pf one", "alice@example.com")) == {}
        assert s.sendmail("sender@example.org", ["alice@example.com", "bob@example.net"],
                          message("pf two", "alice@example.com, bob@example.net")) == {}
        # Postfix accepts it (it does not know the users: popnode does),
        # then popnode refuses it at RCPT and Postfix bounces it to the
        # sender, bob, whose mailbox is popnode's too.
        assert s.sendmail("bob@example.net", ["nobody@example.com"],
                          message("pf unknown", "nobody@example.com", "bob@example.net")) == {}

    alice = wait_for("alice's 2 messages", lambda: mailbox(node, "alice", "secret", 2), pf, node)
    bob = wait_for("bob's message and the bounce", lambda: mailbox(node, "bob", "hunter2", 2),
                   pf, node)
    assert len(alice) == 2 and len(bob) == 2

    # Delivery order between the two queue files is Postfix's business.
    assert sorted(subject(m) for m in alice) == ["pf one", "pf two"]
    for m in alice:
        # popnode's two lines first, then Postfix's Received: header
        assert m.startswith(b"Return-Path: <sender@example.org>\r\n"
                            b"Delivered-To: alice@example.com\r\nReceived: from "), m[:300]
        assert b"by mx.popnode-test.invalid (Postfix)" in m
        assert m.endswith(f"\r\nThis is {subject(m)}.\r\n".encode())

    two = [m for m in bob if subject(m) == "pf two"]
    assert len(two) == 1
    assert two[0].startswith(b"Return-Path: <sender@example.org>\r\n"
                             b"Delivered-To: bob@example.net\r\nReceived: from ")

    # The bounce: a DSN from the null sender, naming popnode's 550 5.1.1.
    dsn = [m for m in bob if m is not two[0]]
    assert len(dsn) == 1
    d = dsn[0]
    assert d.startswith(b"Return-Path: <>\r\nDelivered-To: bob@example.net\r\n"), d[:300]
    assert subject(d) == "Undelivered Mail Returned to Sender"
    assert b"Content-Type: multipart/report; report-type=delivery-status" in d
    assert b"Final-Recipient: rfc822; nobody@example.com" in d
    assert b"Status: 5.1.1" in d
    assert re.search(rb"Diagnostic-Code: smtp; 550 5\.1\.1", d), d
    assert b"Subject: pf unknown" in d  # the returned message

    # Postfix's side: every recipient went over LMTP to the unix socket and
    # got its own reply; the second message's two recipients in one LMTP
    # transaction (same queue id, one reply each after DATA).
    # (for a unix socket Postfix logs relay=<myhostname>[<socket path>])
    relay = r"relay=mx\.popnode-test\.invalid\[" + re.escape(node.lmtp_sock) + r"\]"
    sent = log_lines(pf, rf"postfix-popnode-test/lmtp\[\d+\]: .* {relay}, .*status=sent "
                         r"\(250 2\.0\.0 <")
    assert len(sent) == 4, pf.read_log()  # alice x2, bob, and the bounce to bob
    qid = {}
    for l in sent:
        m = re.search(r": ([0-9A-F]+): to=<([^>]+)>.*Saved as uid (\d+)", l)
        assert m, l
        qid.setdefault(m.group(1), []).append(m.group(2))
    assert sorted(map(sorted, qid.values())) == [["alice@example.com"],
                                                 ["alice@example.com", "bob@example.net"],
                                                 ["bob@example.net"]]
    bounced = log_lines(pf, r"to=<nobody@example\.com>.*status=bounced")
    assert len(bounced) == 1, pf.read_log()
    assert re.search(rf"{relay}, .*said: 550 5\.1\.1 <nobody@example\.com>", bounced[0]), \
        bounced[0]
    # Nothing was deferred or sent anywhere else.
    assert not log_lines(pf, r"status=deferred"), pf.read_log()
    assert len(log_lines(pf, r" relay=")) == len(log_lines(pf, relay)) == 5, pf.read_log()

    # A clean setup: Postfix complained about nothing.
    assert not log_lines(pf, PROBLEMS), pf.read_log()

    # popnode's side: its log has the four deliveries.
    assert len(re.findall(r"event=lmtp\.deliver .*result=ok", node.read_log())) == 4


def rcpt_reply(pf, rcpt):
    """(code, text) Postfix's smtpd gives RCPT TO:<rcpt> in a fresh session."""
    with pf.smtp() as s:
        assert s.mail("sender@example.org")[0] == 250
        return s.rcpt(rcpt)


def test_postfix_address_verification_rejects_unknown_at_rcpt(node, postfix, tmpbase):
    """docs/lmtp.md's main.cf: Postfix asks popnode at RCPT time.

    Uses the docs' settings except for the negative cache: with
    `address_verify_negative_cache = no` Postfix never remembers a failed
    probe, so smtpd can never see it and answers every unknown address with
    `450 4.1.1 ... Address verification in progress` (temporary, forever).
    Negative results must be cached, with a short expiry so a new user gets
    mail soon (2s here to keep the test short).
    """
    table = os.path.join(tmpbase, "postfix", "popnode_domains")
    pf = postfix({
        "virtual_mailbox_maps": f"hash:{table}",
        "smtpd_recipient_restrictions":
            "permit_mynetworks, reject_unauth_destination, reject_unverified_recipient",
        "unverified_recipient_reject_code": "550",
        "address_verify_negative_expire_time": "2s",
        "message_size_limit": "52428800",
        "virtual_destination_recipient_limit": "100",
        # Our client is 127.0.0.1: keep it out of mynetworks, or
        # permit_mynetworks would let it skip the check.
        "mynetworks": "192.0.2.1/32",
        # only to keep the test short (smtpd polls the verify service every 3s)
        "address_verify_poll_delay": "1s",
    }, start=False)
    # As in the docs: a catch-all table of popnode's domains, built with postmap.
    with open(table, "w") as f:
        f.write("@example.com        popnode\n@example.net        popnode\n")
    pf.cmd("postmap", f"hash:{table}")
    pf.start()

    for unknown in ("nobody@example.com", "carol@example.com"):
        code, text = rcpt_reply(pf, unknown)
        # refused by Postfix with popnode's own reply to the probe
        assert code == 550, f"{text}\n{pf.read_log()}"
        assert text.startswith(b"5.1.1 <" + unknown.encode() + b">: Recipient address rejected")
        assert b"said: 550 5.1.1 <" + unknown.encode() + b"> no such user" in text, text

    with pf.smtp() as s:
        assert s.mail("sender@example.org")[0] == 250
        code, text = s.rcpt("alice@example.com")
        assert code == 250, f"{text}\n{pf.read_log()}"
        code, text = s.rcpt("nobody@example.com")
        assert code == 550, f"{text}\n{pf.read_log()}"
        code, text = s.data(message("pf verified", "alice@example.com"))
        assert code == 250, f"{text}\n{pf.read_log()}"

    got = wait_for("alice's message", lambda: mailbox(node, "alice", "secret"), pf, node)
    assert len(got) == 1 and subject(got[0]) == "pf verified"
    assert got[0].startswith(b"Return-Path: <sender@example.org>\r\n"
                             b"Delivered-To: alice@example.com\r\n")

    # A user created after a refused probe gets mail once the negative
    # entry has expired.
    node.add_user("carol", "pw-carol")
    wait_for("carol to be accepted",
             lambda: rcpt_reply(pf, "carol@example.com")[0] == 250, pf, node)
    with pf.smtp() as s:
        assert s.sendmail("sender@example.org", ["carol@example.com"],
                          message("pf carol", "carol@example.com")) == {}
    got = wait_for("carol's message", lambda: mailbox(node, "carol", "pw-carol"), pf, node)
    assert [subject(m) for m in got] == ["pf carol"]

    # Refused, never queued: no bounce for the unknown addresses.
    log = pf.read_log()
    assert not log_lines(pf, PROBLEMS), log
    assert not log_lines(pf, r"status=bounced"), log
    assert len(log_lines(pf, r"smtpd\[\d+\]: \w+: reject: RCPT .*: 550 5\.1\.1 "
                             r"<nobody@example\.com>")) == 2, log


def test_postfix_keeps_mail_queued_on_452_and_retries(node, postfix):
    """docs/lmtp.md: a 452/451 from popnode makes Postfix keep the message."""
    node.add_user("dave", "pw-dave", quota=100)  # smaller than any message
    pf = postfix()
    with pf.smtp() as s:
        assert s.sendmail("sender@example.org", ["dave@example.com"],
                          message("pf full", "dave@example.com")) == {}

    deferred = wait_for("the deferral", lambda: log_lines(
        pf, r"to=<dave@example\.com>, .*status=deferred \(.*said: 452 4\.2\.2 "
            r"<dave@example\.com> mailbox full"), pf, node)
    assert len(deferred) == 1
    wait_for("the queue file in deferred/", lambda: pf.queued("deferred"), pf, node)
    assert mailbox(node, "dave", "pw-dave") is None  # nothing stored

    node.popctl("user", "set", "dave", "--quota", "unlimited")
    pf.cmd("flush")  # retry now instead of after minimal_backoff_time
    got = wait_for("dave's message", lambda: mailbox(node, "dave", "pw-dave"), pf, node)
    assert [subject(m) for m in got] == ["pf full"]
    assert got[0].startswith(b"Return-Path: <sender@example.org>\r\n"
                             b"Delivered-To: dave@example.com\r\n")
    assert len(log_lines(pf, r"to=<dave@example\.com>, .*status=sent \(250 2\.0\.0 ")) == 1
    wait_for("an empty queue", lambda: not any(
        pf.queued(q) for q in ("incoming", "active", "deferred")), pf, node)
    assert not log_lines(pf, r"status=bounced"), pf.read_log()
    assert not log_lines(pf, PROBLEMS), pf.read_log()
