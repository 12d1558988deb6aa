"""deploy/lab --netns: three POPs in network namespaces behind a BIRD router.

Root only (namespaces, veths, BIRD, iptables); skipped otherwise, when
BIRD or ping is missing, or when namespaces of another netns lab exist.
The lab's namespace names are fixed (lab-router, lab-client, lab-popN), so
these tests never run two labs at once.  `down` always runs in a finally,
and the host's own interfaces, routes and iptables rules are compared
before and after.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import POPCTL, POPNODE, ROOT, proc_gone as gone

LAB = os.path.join(ROOT, "deploy", "lab")
NETNS_RUN = "/run/netns"
PY = "/usr/bin/python3"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="deploy/lab --netns needs root"),
    pytest.mark.skipif(shutil.which("bird") is None or shutil.which("birdc") is None,
                       reason="BIRD 2 is not installed (Debian bird2)"),
    pytest.mark.skipif(shutil.which("ping") is None,
                       reason="ping is not installed (Debian iputils-ping)"),
]

# A client in lab-client: connect to ADDR:PORT until the greeting ends with
# WANT (or DEADLINE seconds pass); print the seconds it took and the line.
CLIENT = r"""
import socket, sys, time
host, port, want, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
t0 = time.monotonic()
last = ""
while True:
    try:
        with socket.create_connection((host, port), 0.2) as s:
            s.settimeout(2)
            last = s.recv(512).decode(errors="replace").strip()
    except OSError as e:
        last = "error: %s" % e
    if last.endswith(want):
        print("%.3f %s" % (time.monotonic() - t0, last))
        sys.exit(0)
    if time.monotonic() - t0 > limit:
        print("timeout: %s" % last)
        sys.exit(1)
    time.sleep(0.01)
"""


def lab_namespaces():
    try:
        return sorted(n for n in os.listdir(NETNS_RUN) if n.startswith("lab-"))
    except FileNotFoundError:
        return []


def lab_env(run_dir):
    env = dict(os.environ, POPNODE_BIN=POPNODE, POPCTL_BIN=POPCTL, XDG_RUNTIME_DIR=run_dir)
    nfq = os.path.join(ROOT, "bin", "nfqdelay")
    if "NFQDELAY_BIN" not in env and os.access(nfq, os.X_OK):
        env["NFQDELAY_BIN"] = nfq
    return env


def lab(env, *args, check=True, timeout=120):
    r = subprocess.run([LAB] + list(args), env=env, capture_output=True, text=True,
                       timeout=timeout)
    if check:
        assert r.returncode == 0, f"deploy/lab {' '.join(args)}: rc={r.returncode}\n" \
                                  f"{r.stdout}\n{r.stderr}"
    return r


LAB_ADDRS = ("10.99.", "10.98.", "192.0.2.53", "2001:db8::53", "fd00:99:")
LAB_IFACES = re.compile(r"^\d+: (up0|any0|any0p|client|pop\d+|lk\d+)[@:]", re.M)


def host_state():
    """What of the lab could leak into the host's namespace: the host's
    iptables rules (without counters), and any interface, address or route
    of the lab's (there must be none)."""
    rules = []
    for argv in (["iptables-save"], ["ip6tables-save"]):
        r = subprocess.run(argv, capture_output=True, text=True)
        rules.append(sorted(re.sub(r"\[\d+:\d+\]", "", l) for l in r.stdout.splitlines()
                            if not l.startswith("#")))
    leaks = []
    for argv in (["ip", "-o", "link", "show"], ["ip", "-o", "addr", "show"],
                 ["ip", "route", "show", "table", "all"],
                 ["ip", "-6", "route", "show", "table", "all"]):
        out = subprocess.run(argv, capture_output=True, text=True).stdout
        leaks += LAB_IFACES.findall(out)
        leaks += [l for l in out.splitlines() if any(a in l for a in LAB_ADDRS)]
    return rules, leaks


def pids_in_lab_namespaces():
    keys = set()
    for n in lab_namespaces():
        st = os.stat(os.path.join(NETNS_RUN, n))
        keys.add((st.st_dev, st.st_ino))
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{d}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in keys and not gone(int(d)):
            out.append(int(d))
    return out


def in_client(env, d, *argv, timeout=30):
    return lab(env, "exec", "--dir", d, "client", *argv, check=False, timeout=timeout)


def router_routes(env, d, net):
    r = lab(env, "exec", "--dir", d, "router", "birdc", "-s", os.path.join(d, "router", "bird.ctl"),
            "show", "route", net, "all")
    return r.stdout


def routes_from_all(env, d, net, fam):
    """The router's routes to net if every POP's session brought one."""
    out = router_routes(env, d, net)
    return out if all(f"[pop{i}_{fam} " in out for i in (1, 2, 3)) else None


def wait_for(what, fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def ping_rtt(env, d, addr, count=5):
    r = in_client(env, d, "ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "2", addr)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/", r.stdout)
    assert m, r.stdout
    return float(m.group(1)), float(m.group(2))


@pytest.fixture
def netns_free():
    if lab_namespaces():
        pytest.skip(f"namespaces of another netns lab exist: {lab_namespaces()}")


def test_lab_netns_three_pops(tmp_path, netns_free):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = lab_env(str(run_dir))
    d = str(tmp_path / "lab")
    before = host_state()
    assert before[1] == [], before[1]
    pids = []
    try:
        t0 = time.monotonic()
        r = lab(env, "up", "--netns", "--pops", "3", "--delay-ms", "5,10,20", "--dir", d)
        took_up = time.monotonic() - t0
        assert "3 POPs in network namespaces" in r.stdout, r.stdout
        assert lab_namespaces() == ["lab-client", "lab-pop1", "lab-pop2", "lab-pop3",
                                    "lab-router"]
        with open(os.path.join(d, "lab.json")) as f:
            state = json.load(f)
        assert state["backend"] == "netns" and state["delays_ms"] == [5, 10, 20]

        # each POP's config: the service ports on the anycast addresses, the
        # link on the private mesh, peers there; and popnode accepts it
        for i in (1, 2, 3):
            conf = open(os.path.join(d, f"pop{i}", "popnode.conf")).read()
            assert "listen imap 192.0.2.53:143 plaintext-auth\n" in conf
            assert "listen imap [2001:db8::53]:143 plaintext-auth\n" in conf
            for port in ("993", "110", "995"):
                assert f"192.0.2.53:{port}" in conf and f"[2001:db8::53]:{port}" in conf
            assert "listen lmtp 192.0.2.53:24 plaintext\n" in conf
            assert f"link_listen 10.98.0.{i}:7443\n" in conf
            for j in {1, 2, 3} - {i}:
                assert f"peer pop{j} 10.98.0.{j}:7443\n" in conf
            r = subprocess.run(["ip", "netns", "exec", f"lab-pop{i}", POPNODE, "-c",
                                os.path.join(d, f"pop{i}", "popnode.conf"), "--check"],
                               capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            # BIRD's rendered config passes BIRD's own parser
            r = subprocess.run(["bird", "-p", "-c", os.path.join(d, f"pop{i}", "bird.conf")],
                               capture_output=True, text=True)
            assert r.returncode == 0, r.stderr

        # the router learns the service address from every POP, both
        # families, and prefers pop1 (the nearest: MED = delay)
        for net, fam in (("192.0.2.53/32", "v4"), ("2001:db8::53/128", "v6")):
            out = wait_for(f"{net} from every POP",
                           lambda: routes_from_all(env, d, net, fam))
            assert re.search(rf"\[pop1_{fam} [^\]]*\] \*", out), out
            assert "BGP.med: 5" in out and "BGP.med: 20" in out
            assert "BGP.community: (64500,100)" in out
        # nothing else leaves a POP (no link-local, no uplink, no mesh route)
        r = lab(env, "birdc", "--dir", d, "router", "show", "route", "protocol", "pop1_v6")
        assert re.findall(r"^(\S+/\d+)", r.stdout, re.M) == ["2001:db8::53/128"], r.stdout
        r = lab(env, "birdc", "--dir", d, "router", "show", "route", "protocol", "pop1_v4")
        assert re.findall(r"^(\S+/\d+)", r.stdout, re.M) == ["192.0.2.53/32"], r.stdout

        # a client in lab-client reaches the nearest POP, IPv4 and IPv6
        r = in_client(env, d, PY, "-c", CLIENT, "192.0.2.53", "143", "ready pop1", "5")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "popnode IMAP4rev1 ready pop1" in r.stdout
        r = in_client(env, d, PY, "-c", CLIENT, "2001:db8::53", "110", "", "5")
        assert r.returncode == 0 and "+OK" in r.stdout, r.stdout + r.stderr

        # the delay: 5 ms each way to pop1, 20 ms each way to pop3
        mn, avg = ping_rtt(env, d, "10.99.1.2")
        assert 9.5 <= mn and avg < 16, (mn, avg)
        mn, avg = ping_rtt(env, d, "10.99.3.2", 3)
        assert 39.5 <= mn and avg < 48, (mn, avg)
        if state.get("delay_mode") == "nfqueue":
            r = lab(env, "exec", "--dir", d, "pop1", "iptables", "-t", "mangle", "-S",
                    "PREROUTING")
            assert "-i up0 -j NFQUEUE --queue-num 1 --queue-bypass" in r.stdout, r.stdout

        # pop1's address goes: the next connection lands on pop2 within a second
        t0 = time.monotonic()
        lab(env, "exec", "--dir", d, "pop1", "ip", "addr", "del", "192.0.2.53/32", "dev", "any0")
        r = in_client(env, d, PY, "-c", CLIENT, "192.0.2.53", "143", "ready pop2", "3")
        took = time.monotonic() - t0
        assert r.returncode == 0, r.stdout + r.stderr
        assert took < 1.0, (took, r.stdout)
        # IPv6 the same; then both come back and pop1 takes over again
        lab(env, "exec", "--dir", d, "pop1", "ip", "addr", "del", "2001:db8::53/128", "dev",
            "any0")
        r = in_client(env, d, PY, "-c", CLIENT, "2001:db8::53", "143", "ready pop2", "3")
        assert r.returncode == 0, r.stdout + r.stderr
        lab(env, "exec", "--dir", d, "pop1", "ip", "addr", "add", "192.0.2.53/32", "dev", "any0")
        r = in_client(env, d, PY, "-c", CLIENT, "192.0.2.53", "143", "ready pop1", "3")
        assert r.returncode == 0, r.stdout + r.stderr

        # the commands of the loopback mode: status, popctl, kill, start
        r = lab(env, "status", "--dir", d)
        assert "3 running" in r.stdout and "5 ms" in r.stdout and "20 ms" in r.stdout
        r = lab(env, "popctl", "pop1", "user", "list")
        assert "demo" in r.stdout
        old = int(open(os.path.join(d, "pop3", "popnode.pid")).read())
        r = lab(env, "kill", "pop3")
        assert "killed" in r.stdout and gone(old)
        r = lab(env, "start", "pop3")
        new = int(open(os.path.join(d, "pop3", "popnode.pid")).read())
        assert new != old and not gone(new)
        # exec passes the command's exit status on; the client runs no BIRD
        assert in_client(env, d, "false").returncode == 1
        r = lab(env, "birdc", "--dir", d, "client", "show", "status", check=False)
        assert r.returncode == 2

        # down: nothing left, the host as it was
        pids = pids_in_lab_namespaces()
        assert len(pids) >= 3 + 4, pids   # popnodes, BIRDs (and nfqdelays)
        t0 = time.monotonic()
        lab(env, "down", "--dir", d)
        assert time.monotonic() - t0 < 15
        assert lab_namespaces() == []
        assert [p for p in pids if not gone(p)] == []
        assert host_state() == before
        assert took_up < 20, took_up
    finally:
        lab(env, "down", "--dir", d, check=False)
        for p in pids:
            if not gone(p):
                os.kill(p, signal.SIGKILL)
    assert lab_namespaces() == []


def test_lab_netns_down_after_half_up(tmp_path, netns_free):
    """`up` killed half-way (nodes that never answer): `down` still removes
    every namespace, link, rule and process."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = lab_env(str(run_dir))
    hang = tmp_path / "popnode-hangs"
    hang.write_text("#!/bin/sh\n"
                    "case \" $* \" in *\" --check \"*) exit 0 ;; esac\n"
                    "exec sleep 300\n")
    hang.chmod(0o755)
    env["POPNODE_BIN"] = str(hang)
    d = str(tmp_path / "lab")
    before = host_state()
    up = subprocess.Popen([LAB, "up", "--netns", "--pops", "2", "--dir", d], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pids = []
    try:
        # until both "nodes" were started (the lab then waits for them)
        wait_for("the nodes to start",
                 lambda: all(os.path.exists(os.path.join(d, f"pop{i}", "popnode.pid"))
                             for i in (1, 2)), 15)
        up.kill()
        up.wait()
        assert lab_namespaces() == ["lab-client", "lab-pop1", "lab-pop2", "lab-router"]
        pids = pids_in_lab_namespaces()
        assert len(pids) >= 2 + 3, pids   # two sleeps, three BIRDs
        r = lab(env, "down", "--dir", d)
        assert lab_namespaces() == []
        assert [p for p in pids if not gone(p)] == [], r.stdout
        assert host_state() == before
        # down again is harmless
        lab(env, "down", "--dir", d)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        lab(env, "down", "--dir", d, check=False)
        for p in pids:
            if not gone(p):
                os.kill(p, signal.SIGKILL)
    assert lab_namespaces() == []


def test_lab_netns_usage(tmp_path):
    env = lab_env(str(tmp_path))
    d = str(tmp_path / "lab")
    r = lab(env, "up", "--netns", "--pops", "3", "--delay-ms", "5,10", "--dir", d, check=False)
    assert r.returncode == 2 and "--delay-ms" in r.stderr, r.stderr
    r = lab(env, "up", "--pops", "2", "--delay-ms", "5,10", "--dir", d, check=False)
    assert r.returncode == 2 and "--netns" in r.stderr, r.stderr
    assert not os.path.exists(d)
    r = lab(env, "--help")
    assert "--netns" in r.stdout and "exec" in r.stdout


NFQDELAY = os.environ.get("NFQDELAY_BIN", os.path.join(ROOT, "bin", "nfqdelay"))


@pytest.mark.skipif(not os.access(NFQDELAY, os.X_OK),
                    reason="bin/nfqdelay is not built (libnetfilter-queue-dev; make nfqdelay)")
def test_nfqdelay(tmp_path):
    """The delay line alone, between two namespaces of its own: the delay,
    the limit (overflow dropped), SIGTERM, and traffic flowing when it is
    gone (--queue-bypass)."""
    r = subprocess.run([NFQDELAY, "--queue", "1", "--delay-ms", "60001"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "--delay-ms" in r.stderr
    r = subprocess.run([NFQDELAY, "--queue", "1"], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr
    a, b = f"popnode-nfqt-{os.getpid()}a", f"popnode-nfqt-{os.getpid()}b"
    log = tmp_path / "nfqdelay.log"
    proc = None
    try:
        for cmd in (["ip", "netns", "add", a], ["ip", "netns", "add", b],
                    ["ip", "link", "add", "va", "netns", a, "type", "veth", "peer", "name", "vb",
                     "netns", b],
                    ["ip", "-n", a, "addr", "add", "10.77.0.1/30", "dev", "va"],
                    ["ip", "-n", b, "addr", "add", "10.77.0.2/30", "dev", "vb"],
                    ["ip", "-n", a, "link", "set", "va", "up"],
                    ["ip", "-n", b, "link", "set", "vb", "up"],
                    ["ip", "netns", "exec", b, "iptables", "-w", "-t", "mangle", "-A",
                     "PREROUTING", "-i", "vb", "-j", "NFQUEUE", "--queue-num", "7",
                     "--queue-bypass"]):
            subprocess.run(cmd, check=True, capture_output=True)

        def ping(n, interval):
            r = subprocess.run(["ip", "netns", "exec", a, "ping", "-n", "-q", "-c", str(n), "-i",
                                interval, "-W", "2", "10.77.0.2"], capture_output=True, text=True)
            m = re.search(r"(\d+) received", r.stdout)
            rtt = re.search(r"= ([\d.]+)/([\d.]+)/", r.stdout)
            return int(m.group(1)), (float(rtt.group(1)) if rtt else None)

        with open(log, "wb") as f:
            proc = subprocess.Popen(["ip", "netns", "exec", b, NFQDELAY, "--queue", "7",
                                     "--delay-ms", "30", "--limit", "3", "--overflow", "drop"],
                                    stdout=f, stderr=f)
        wait_for("nfqdelay to bind", lambda: b": running" in log.read_bytes(), 5)
        got, mn = ping(4, "0.2")
        assert got == 4 and mn >= 29.5, (got, mn)
        # 40 echo requests 5 ms apart, at most 3 held: the rest are dropped
        got, mn = ping(40, "0.005")
        assert got < 40 and mn >= 29.5, (got, mn)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        text = log.read_text()
        assert re.search(r"delayed=\d+ overflow=[1-9]\d* ", text), text
        # nobody on the queue: packets pass undelayed
        got, mn = ping(3, "0.2")
        assert got == 3 and mn < 20, (got, mn)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    assert not any(n.startswith("popnode-nfqt-") for n in os.listdir(NETNS_RUN))
