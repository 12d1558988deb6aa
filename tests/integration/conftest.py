"""Integration test harness: real bin/popnode processes on loopback.

Each test gets a fresh node (own temp dir, free ports, self-signed cert,
production config file) through the `node` fixture.  Processes are
always stopped and temp dirs removed, also when a test fails.
"""
import os
import signal
import socket
import subprocess
import tempfile
import shutil
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
POPNODE = os.environ.get("POPNODE_BIN", os.path.join(ROOT, "bin", "popnode"))
POPCTL = os.environ.get("POPCTL_BIN", os.path.join(ROOT, "bin", "popctl"))


def proc_gone(pid):
    """No thread of pid still runs.  A killed process's main thread shows
    "Z" while its other threads may still be on their way out (one in an
    fsync, say); its files, listening sockets included, are closed only
    when the last one is gone."""
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return True
    for t in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, t), "rb") as f:
                data = f.read()
        except OSError:
            continue
        close = data.rfind(b")")
        if close >= 0 and data[close + 2:close + 3] not in (b"Z", b"X"):
            return False
    return True


def free_ports(n):
    """n distinct free loopback ports (all held open while choosing)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def make_cert(d):
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)
    return cert, key


class Node:
    """One popnode process with its config, ports and data dir."""

    def __init__(self, base, name="t1", extra=""):
        self.dir = os.path.join(base, name)
        os.makedirs(self.dir, exist_ok=True)
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "control.sock")
        self.lmtp_sock = os.path.join(self.dir, "lmtp.sock")
        self.log = os.path.join(self.dir, "popnode.log")
        self.cert, self.key = make_cert(self.dir)
        names = ("lmtp", "pop3", "pop3plain", "pop3s", "http", "imap", "imapplain", "imaps")
        self.ports = dict(zip(names, free_ports(len(names))))
        self.conf = os.path.join(self.dir, "popnode.conf")
        self.extra = extra
        self.proc = None
        self.write_config()

    def write_config(self):
        p = self.ports
        lines = f"""# written by tests/integration/conftest.py
node_id {os.path.basename(self.dir)}
data_dir {self.data}
log {self.log}
log_level debug
tls_cert {self.cert}
tls_key {self.key}
control_socket {self.sock}
domain example.com
domain example.net
map_size 512M
listen lmtp 127.0.0.1:{p['lmtp']}
listen lmtp unix:{self.lmtp_sock}
listen pop3 127.0.0.1:{p['pop3']}
listen pop3 127.0.0.1:{p['pop3plain']} plaintext-auth
listen pop3s 127.0.0.1:{p['pop3s']}
listen http 127.0.0.1:{p['http']}
listen imap 127.0.0.1:{p['imap']}
listen imap 127.0.0.1:{p['imapplain']} plaintext-auth
listen imaps 127.0.0.1:{p['imaps']}
""".splitlines()
        # a single-valued directive in `extra` replaces the default one
        extra = [l for l in self.extra.splitlines() if l.strip()]
        overridden = {l.split()[0] for l in extra if l.split()[0] not in ("listen", "domain")}
        lines = [l for l in lines if not l or l.split()[0] not in overridden]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines + extra) + "\n")

    def start(self, wait=True):
        assert self.proc is None
        self.stderr = open(os.path.join(self.dir, "stderr.log"), "ab")
        self.proc = subprocess.Popen([POPNODE, "-c", self.conf], stdout=self.stderr,
                                     stderr=self.stderr, stdin=subprocess.DEVNULL)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"popnode exited {self.proc.returncode}:\n" + self.read_stderr())
            if os.path.exists(self.sock):
                try:
                    with socket.create_connection(("127.0.0.1", self.ports["lmtp"]), 0.5):
                        pass
                    r = self.popctl("status", check=False)
                    if r.returncode == 0:
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        raise AssertionError("popnode did not become ready:\n" + self.read_stderr())

    def read_stderr(self):
        try:
            with open(os.path.join(self.dir, "stderr.log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=40):
        """Stop the process and return its exit code (negative: signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self.stderr.close()
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    def popctl(self, *args, input=None, check=True):
        r = subprocess.run([POPCTL, "-s", self.sock, *args], input=input, capture_output=True,
                           text=True, timeout=30)
        if check and r.returncode != 0:
            raise AssertionError(f"popctl {' '.join(args)} -> {r.returncode}\n{r.stdout}{r.stderr}")
        return r

    def add_user(self, name, password="secret", quota=None):
        args = ["user", "add", name, "--password-stdin"]
        if quota is not None:
            args += ["--quota", str(quota)]
        return self.popctl(*args, input=password + "\n")


@pytest.fixture
def tmpbase():
    d = tempfile.mkdtemp(prefix="popnode-test-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def make_node(tmpbase):
    """Factory: make_node(name, extra_config) -> started Node."""
    nodes = []

    def make(name="t1", extra="", start=True):
        n = Node(tmpbase, name, extra)
        nodes.append(n)
        if start:
            n.start()
        return n

    yield make
    for n in nodes:
        rc = n.stop()
        # A node a test left running must shut down cleanly on SIGTERM;
        # under ASan a leak or error makes the exit code non-zero.
        if rc not in (None, 0, -signal.SIGKILL):
            raise AssertionError(f"node {n.dir} exited {rc}:\n" + n.read_stderr())


@pytest.fixture
def node(make_node):
    """A started node with user alice (password 'secret') and bob."""
    n = make_node()
    n.add_user("alice", "secret")
    n.add_user("bob", "hunter2")
    return n
