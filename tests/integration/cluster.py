"""Several real popnode processes linked over the internal link (HTTP/2
over mutual TLS), on free loopback ports, for tests that need more than
one POP (mail forwarding, roaming sessions, directory sync).

Unlike deploy/lab, nothing here uses fixed ports, so any number of these
clusters can run at the same time (other tests, other helpers' labs).

    from cluster import cluster        # the pytest fixture (a factory)

    def test_x(cluster):
        c = cluster(3)                 # pop1..pop3 started, links up
        c.add_user("carol", home="pop2", password="pw")  # at every POP
        c[1].ports["lmtp"]             # each POP is a conftest.Node
        c[2].kill9(); ...; c.restart(2)

Certificates come from deploy/link-certs (one CA per cluster, a
certificate per POP).  Each POP is a conftest.Node (own dir, config,
data, log, control socket, listeners on free ports) whose config gets the
link lines: link_listen on a free port, link_ca/cert/key, one `peer` line
per other POP, and short link timers so a dead POP is noticed in about
three seconds.  Processes are always stopped (SIGTERM, then SIGKILL after
40 s, waited for), also when a test fails; a POP that does not exit 0 on
the final SIGTERM fails the test, as with conftest's make_node.
"""
import json
import os
import random
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import Node

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LINK_CERTS = os.path.join(ROOT, "deploy", "link-certs")

# Ports come from here, below the kernel's ephemeral range (32768..): the
# POPs dial each other while they start, and a dial's ephemeral source
# port must never be one a POP is about to listen on.  Above deploy/lab's
# fixed ports (20000 + 100 * i) is avoided too.
PORT_RANGE = (10000, 19999)


def cluster_ports(n):
    """n distinct ports in PORT_RANGE that are free on loopback now (all
    held open while choosing)."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            port = random.randint(*PORT_RANGE)
            if port in ports:
                continue
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            socks.append(s)
            ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


# Link timers for tests: notice a dead peer within ~3 s, reopen a breaker
# quickly.  Any of them can be overridden through `extra`.
LINK_DEFAULTS = {
    "link_timeout": "2s",
    "link_ping_interval": "1s",
    "link_breaker_cooloff": "2s",
}


class Cluster:
    """POPs pop1..popN; c[i] (1-based) or c["popI"] is the Node."""

    def __init__(self, base, n, extra="", extra_for=None):
        if n < 1:
            raise ValueError("a cluster needs at least one POP")
        self.base = base
        self.certs = os.path.join(base, "link-certs")
        self.names = [f"pop{i}" for i in range(1, n + 1)]
        self._run([LINK_CERTS, "ca", self.certs])
        for name in self.names:
            self._run([LINK_CERTS, "node", self.certs, name])
        self.extra, self.extra_for = extra, extra_for or {}
        self.nodes = {name: Node(base, name) for name in self.names}
        self.pick_ports()

    def pick_ports(self):
        """Give every POP fresh ports (listeners and link) and rewrite the
        configs."""
        per = None
        for node in self.nodes.values():
            per = list(node.ports)
        ports = iter(cluster_ports(len(self.names) * (len(per) + 1)))
        self.link_ports = {name: next(ports) for name in self.names}
        for name, node in self.nodes.items():
            node.ports = {k: next(ports) for k in per}
            node.link_port = self.link_ports[name]
            more = self.extra_for.get(name, "")
            node.extra = self._link_config(name, self.extra + "\n" + more)
            node.write_config()

    @staticmethod
    def _run(argv):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} -> {r.returncode}\n{r.stdout}{r.stderr}")

    def _link_config(self, name, extra):
        extra_lines = [l for l in extra.splitlines() if l.strip()]
        # A single-valued directive given twice (for all, then for one
        # POP): the last one wins.
        multi = ("listen", "domain", "peer")
        last = {l.split()[0]: i for i, l in enumerate(extra_lines)}
        extra_lines = [l for i, l in enumerate(extra_lines)
                       if l.split()[0] in multi or last[l.split()[0]] == i]
        given = {l.split()[0] for l in extra_lines}
        lines = [
            f"link_listen 127.0.0.1:{self.link_ports[name]}",
            f"link_ca {self.certs}/ca.pem",
            f"link_cert {self.certs}/{name}.pem",
            f"link_key {self.certs}/{name}.key",
        ]
        lines += [f"peer {p} 127.0.0.1:{self.link_ports[p]}" for p in self.names if p != name]
        lines += [f"{k} {v}" for k, v in LINK_DEFAULTS.items() if k not in given]
        return "\n".join(lines + extra_lines) + "\n"

    def __getitem__(self, key):
        return self.nodes[key if isinstance(key, str) else f"pop{key}"]

    def __iter__(self):
        return iter(self.nodes[n] for n in self.names)

    def __len__(self):
        return len(self.names)

    def running(self):
        return [n for n in self if n.proc is not None and n.proc.poll() is None]

    # ---- processes ------------------------------------------------------

    def start(self, wait_links=True, attempts=3):
        """Start every POP that is not running; wait until each is ready
        and (wait_links) the links between all are up.  If a port was
        taken meanwhile (another test), start over on new ports."""
        for attempt in range(attempts):
            for node in self:
                if node.proc is None:
                    node.start(wait=False)
            try:
                for node in self:
                    node.wait_ready()
                break
            except AssertionError as e:
                if "Address already in use" not in str(e) or attempt + 1 == attempts:
                    raise
                self.stop()
                self.pick_ports()
        if wait_links:
            self.wait_links()
            for node in self:
                self.wait_serving(node)
        return self

    def restart(self, key, wait_links=True):
        """Start POP key again (after kill9/stop) and wait until the links
        between it and every running POP are up (and it serves its
        users)."""
        node = self[key]
        if node.proc is not None:
            node.stop()
        node.start()
        if wait_links:
            self.wait_links()
            self.wait_serving(node)
        return node

    @staticmethod
    def wait_serving(node, timeout=30):
        """Until node has done its start-up check against its mirrors
        (docs/replication.md, "Generation and the lost disk") and serves
        its own users.  A node without that check passes at once."""
        deadline = time.time() + timeout
        while True:
            r = node.popctl("status", "--json", check=False)
            try:
                serving = json.loads(r.stdout).get("replication_serving")
            except ValueError:
                serving = None
            if serving is None or serving.get("ready", True):
                return
            if time.time() > deadline:
                raise AssertionError(f"{node_name(node)} not serving after {timeout}s: "
                                     f"{serving}")
            time.sleep(0.05)

    def stop(self, timeout=40):
        """SIGTERM every POP at once, wait for each (SIGKILL after
        timeout s); {name: exit code, None if it was not running}.  (A
        second SIGTERM would make popnode skip its graceful shutdown, so
        each gets exactly one.)"""
        rcs = {}
        for node in self:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + timeout
        for name in self.names:
            node = self.nodes[name]
            if node.proc is None:
                rcs[name] = None
                continue
            try:
                rcs[name] = node.proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                node.proc.kill()
                rcs[name] = node.proc.wait()
            node.proc = None
            node.stderr.close()
        return rcs

    # ---- the link -------------------------------------------------------

    def peer_states(self, key):
        """{peer id: state} as POP key sees its outbound links ("up",
        "down", "connecting", "breaker-open")."""
        node = self[key]
        r = node.popctl("peers", "--json", check=False)
        if r.returncode == 0:
            try:
                return {p["id"]: p["state"] for p in json.loads(r.stdout)["peers"]}
            except (ValueError, KeyError, TypeError):
                pass
        # Without `popctl peers`: "peers: N configured, M up" in status.
        r = node.popctl("status", check=False)
        m = re.search(r"peers:\s+(\d+) configured, (\d+) up", r.stdout)
        if m is None:
            return {}
        others = [p for p in self.names if p != node_name(node)]
        up = int(m.group(2))
        return {p: ("up" if up == len(others) else "unknown") for p in others}

    def wait_links(self, timeout=30, among=None):
        """Wait until every running POP (or those in `among`) has its link
        up to every other running one."""
        deadline = time.time() + timeout
        last = {}
        while True:
            nodes = among if among is not None else self.running()
            names = [node_name(n) for n in nodes]
            last = {name: self.peer_states(name) for name in names}
            if all(last[a].get(b) == "up" for a in names for b in names if a != b):
                return
            if time.time() > deadline:
                raise AssertionError(f"links not up after {timeout}s: {last}")
            time.sleep(0.1)

    def wait_peer_state(self, key, peer, states, timeout=30):
        """Wait until POP key sees peer in one of states (a str or a set)."""
        if isinstance(states, str):
            states = {states}
        deadline = time.time() + timeout
        while True:
            st = self.peer_states(key).get(peer)
            if st in states:
                return st
            if time.time() > deadline:
                raise AssertionError(f"{key}: peer {peer} is {st}, not {states}")
            time.sleep(0.1)

    # ---- users ----------------------------------------------------------

    def add_user(self, name, home, password="secret", quota=None, hash_=None, at=None):
        """Create the user at every running POP (or those in `at`), same
        name and home, until directory sync makes one `user add` enough.
        A POP that already has the user (synced meanwhile) is fine."""
        args = ["user", "add", name, "--home", home]
        if quota is not None:
            args += ["--quota", str(quota)]
        args += ["--hash-stdin"] if hash_ is not None else ["--password-stdin"]
        secret = (hash_ if hash_ is not None else password) + "\n"
        for node in (at if at is not None else self.running()):
            r = node.popctl(*args, input=secret, check=False)
            if r.returncode != 0 and "exist" not in (r.stdout + r.stderr).lower():
                raise AssertionError(f"{node_name(node)}: popctl {' '.join(args)} -> "
                                     f"{r.returncode}\n{r.stdout}{r.stderr}")


def node_name(node):
    return os.path.basename(node.dir)


@pytest.fixture
def cluster(tmpbase):
    """Factory: cluster(n=2, extra="", extra_for=None, start=True) ->
    Cluster, started and linked unless start=False.  extra: config lines
    for every POP; extra_for: {"pop2": lines} for one POP (a single-valued
    directive given there replaces the default).  Every POP is stopped at
    the end."""
    made = []

    def make(n=2, extra="", extra_for=None, start=True):
        c = Cluster(tmpbase, n, extra, extra_for)
        made.append(c)
        if start:
            c.start()
        return c

    yield make
    bad = []
    for c in made:
        for name, rc in c.stop().items():
            # Under ASan a leak or error makes the exit code non-zero.
            if rc not in (None, 0, -signal.SIGKILL):
                bad.append(f"{name} exited {rc}:\n" + c[name].read_stderr())
    if bad:
        raise AssertionError("\n".join(bad))
