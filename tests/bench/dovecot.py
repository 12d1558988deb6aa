"""dovecot.py - a private Dovecot instance for `make bench`.

Writes a complete Dovecot 2.3 configuration into a temporary directory,
starts `dovecot -F -c CONF` as a child (its own process group), waits until
the LMTP, POP3 and IMAP listeners answer, and stops it with SIGTERM at the end.
Nothing outside the temporary directory is touched, except that a system
user (default `popbench`) is created once if missing: Dovecot refuses to
deliver mail as root, so the mail is owned by that user.

The configuration is Dovecot's defaults plus what a private instance needs:
  - mail_location = maildir (Dovecot's most common format), mail_fsync =
    optimized (the default: the message file is fsynced before the LMTP 250,
    as popnode fsyncs its LMDB commit before answering);
  - passdb passwd-file, userdb static (one uid); a user's password is
    stored as given by add_user: {PLAIN}, or a crypt(3) hash such as
    {SHA256-CRYPT}$5$... (bench.py gives both servers the same hash);
  - lmtp, pop3 and imap inet listeners on 127.0.0.1 at free ports;
  - ssl = no, disable_plaintext_auth = no;
  - base_dir, state_dir and log_path inside the temporary directory;
  - for IMAP (when dovecot-imapd is installed): room for `max_conns`
    logged-in connections: imap-login in high-performance mode
    (service_count = 0: a few long-lived login processes), process_limit
    of the imap service (one imap process per connection, Dovecot's
    default and recommended setup) and default_process_limit /
    default_client_limit raised, mail_max_userip_connections raised (all
    bench connections come from 127.0.0.1).

Used by bench.py; usable alone for a quick check:
    /usr/bin/python3 tests/bench/dovecot.py   # starts, prints ports, stops
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

DOVECOT = "/usr/sbin/dovecot"
REQUIRED = (DOVECOT, "/usr/lib/dovecot/lmtp", "/usr/lib/dovecot/pop3",
            "/usr/lib/dovecot/pop3-login")
IMAP_REQUIRED = ("/usr/lib/dovecot/imap", "/usr/lib/dovecot/imap-login")


class Unavailable(Exception):
    """Dovecot cannot be run here (not installed, not root...)."""


def missing_reason():
    """None if a private Dovecot can be run, else why not."""
    for path in REQUIRED:
        if not os.access(path, os.X_OK):
            return "%s not installed (dovecot-core, dovecot-lmtpd, dovecot-pop3d)" % path
    if os.geteuid() != 0:
        return "needs root (Dovecot master and a mail uid)"
    return None


def imap_missing_reason():
    """None if Dovecot can serve IMAP here, else why not."""
    for path in IMAP_REQUIRED:
        if not os.access(path, os.X_OK):
            return "%s not installed (dovecot-imapd)" % path
    return None


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_system_user(name):
    """(uid, gid) of system user `name`, creating it if missing."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        cmd = ["useradd", "--system", "--user-group", "--no-create-home",
               "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
        if r.returncode != 0:
            raise Unavailable("useradd %s failed: %s" % (name, r.stdout.strip()))
        pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


def wait_banner(port, prefix, deadline, proc=None):
    """Poll until 127.0.0.1:port greets with `prefix`; False on timeout."""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(2)
                data = b""
                while b"\n" not in data:
                    chunk = s.recv(512)
                    if not chunk:
                        break
                    data += chunk
                if data.startswith(prefix):
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


CONF_TEMPLATE = """\
# Private Dovecot instance written by tests/bench/dovecot.py
instance_name = {instance}
protocols = {protocols}
listen = 127.0.0.1
base_dir = {tmp}/run
state_dir = {tmp}/state
log_path = {tmp}/dovecot.log
info_log_path = {tmp}/dovecot.log
hostname = bench.test
postmaster_address = postmaster@bench.test

ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_format = %Ln

first_valid_uid = {uid}
first_valid_gid = {gid}
mail_uid = {uid}
mail_gid = {gid}
mail_location = maildir:{tmp}/mail/%n
mail_fsync = optimized

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {tmp}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={tmp}/mail/%n
}}

service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""

# Appended when IMAP is served: room for max_conns logged-in connections.
IMAP_TEMPLATE = """
mail_max_userip_connections = {max_conns}
default_process_limit = {process_limit}
default_client_limit = {client_limit}

service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  # high-performance mode: each login process serves many connections
  service_count = 0
  process_min_avail = {cpus}
  client_limit = {client_limit}
}}
service imap {{
  # one imap process per logged-in connection (the default)
  process_limit = {process_limit}
}}
"""


class Dovecot:
    """One private Dovecot; use as a context manager or call stop()."""

    def __init__(self, mail_user="popbench", parent_dir=None, imap=True, max_conns=6000):
        reason = missing_reason()
        if reason:
            raise Unavailable(reason)
        self.imap_reason = imap_missing_reason() if imap else "not asked for"
        self.imap = self.imap_reason is None
        self.max_conns = max_conns
        self.uid, self.gid = ensure_system_user(mail_user)
        self.mail_user = mail_user
        self.tmp = tempfile.mkdtemp(prefix="bench-dovecot-", dir=parent_dir)
        # mkdtemp makes it 0700: the mail uid and dovenull must get in.
        os.chmod(self.tmp, 0o755)
        ports = set()
        while len(ports) < 3:
            ports.add(free_port())
        self.lmtp_port, self.pop3_port, self.imap_port = sorted(ports)
        if not self.imap:
            self.imap_port = None
        self.conf = os.path.join(self.tmp, "dovecot.conf")
        self.users = {}
        self.proc = None
        self.log = None

    # -- setup -----------------------------------------------------------

    def add_user(self, name, password, scheme="PLAIN"):
        """Add a passwd-file entry (the file is re-read when it changes).
        password is the plain password, or with scheme="SHA256-CRYPT" (or
        another Dovecot scheme) the hash in that scheme."""
        self.add_users([name], password, scheme)

    def add_users(self, names, password, scheme="PLAIN"):
        """add_user for many names, one rewrite of the file."""
        for s in [password, scheme] + list(names):
            if ":" in s or "\n" in s or "}" in scheme:
                raise ValueError("bad user, password or scheme")
        for name in names:
            self.users[name] = "{%s}%s" % (scheme, password)
        path = os.path.join(self.tmp, "users")
        with open(path + ".new", "w") as f:
            for u, p in sorted(self.users.items()):
                f.write("%s:%s::::::\n" % (u, p))
        os.chmod(path + ".new", 0o644)
        os.replace(path + ".new", path)

    def start(self, timeout=20.0):
        mail = os.path.join(self.tmp, "mail")
        os.makedirs(mail, exist_ok=True)
        os.chown(mail, self.uid, self.gid)
        if not os.path.exists(os.path.join(self.tmp, "users")):
            self.add_user("postmaster", "unused-" + os.urandom(6).hex())
        with open(self.conf, "w") as f:
            f.write(CONF_TEMPLATE.format(
                instance="popbench-dovecot-%d" % os.getpid(), tmp=self.tmp,
                uid=self.uid, gid=self.gid, lmtp_port=self.lmtp_port,
                pop3_port=self.pop3_port,
                protocols="lmtp pop3 imap" if self.imap else "lmtp pop3"))
            if self.imap:
                f.write(IMAP_TEMPLATE.format(
                    imap_port=self.imap_port, max_conns=self.max_conns,
                    process_limit=self.max_conns + 100,
                    client_limit=2 * self.max_conns + 1000,
                    cpus=os.cpu_count() or 1))
        self.log = open(os.path.join(self.tmp, "dovecot.stderr"), "w")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        ok = (wait_banner(self.lmtp_port, b"220", deadline, self.proc)
              and wait_banner(self.pop3_port, b"+OK", deadline, self.proc)
              and (not self.imap or wait_banner(self.imap_port, b"* OK", deadline, self.proc)))
        if not ok:
            tail = self.log_tail()
            self.stop()
            raise RuntimeError("dovecot did not become ready:\n" + tail)
        return self

    def log_tail(self, lines=20):
        out = []
        for name in ("dovecot.stderr", "dovecot.log"):
            path = os.path.join(self.tmp, name)
            try:
                with open(path, errors="replace") as f:
                    out += ["%s: %s" % (name, l.rstrip()) for l in f.readlines()[-lines:]]
            except OSError:
                pass
        return "\n".join(out)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    # -- teardown --------------------------------------------------------

    def stop(self, timeout=10.0):
        """SIGTERM the master, wait; SIGKILL its process group if needed."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    pass
            # Children that outlived the master are in its process group.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None

    def cleanup(self, keep=False):
        self.stop()
        if self.tmp and not keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False


if __name__ == "__main__":
    reason = missing_reason()
    if reason:
        print("dovecot unavailable:", reason)
        raise SystemExit(0)
    with Dovecot() as d:
        d.add_user("bench1", "secret")
        d.start()
        print("dovecot pid %d lmtp %d pop3 %d imap %s dir %s"
              % (d.pid, d.lmtp_port, d.pop3_port, d.imap_port or d.imap_reason, d.tmp))
