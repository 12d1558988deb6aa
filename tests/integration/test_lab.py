"""deploy/lab and deploy/link-certs: a real two-POP lab on loopback.

The lab uses fixed ports (20110 .. 20295 for pop1 and pop2), so the lab
test is skipped when one of them is taken.  XDG_RUNTIME_DIR points into the
test's temp dir, so the test neither reads nor replaces the user's own
"most recent lab".  `down` always runs in a finally.
"""
import os
import socket
import ssl
import stat
import subprocess

import pytest

from conftest import POPCTL, POPNODE, ROOT, proc_gone as gone

LAB = os.path.join(ROOT, "deploy", "lab")
LINK_CERTS = os.path.join(ROOT, "deploy", "link-certs")
OFFSETS = {"pop3": 10, "lmtp": 24, "imap": 43, "link": 44, "http": 80, "imaps": 93, "pop3s": 95}


def expected_ports(i):
    return {name: 20000 + 100 * i + off for name, off in OFFSETS.items()}


def lab_env(run_dir):
    env = dict(os.environ, POPNODE_BIN=POPNODE, POPCTL_BIN=POPCTL, XDG_RUNTIME_DIR=run_dir)
    return env


def lab(env, *args, check=True, timeout=120):
    r = subprocess.run([LAB] + list(args), env=env, capture_output=True, text=True,
                       timeout=timeout)
    if check:
        assert r.returncode == 0, f"deploy/lab {' '.join(args)}: rc={r.returncode}\n" \
                                  f"{r.stdout}\n{r.stderr}"
    return r


def port_free(port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def banner(port, tls_ca=None):
    """The first line a server sends, over TLS (verified against tls_ca) if given."""
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        if tls_ca is not None:
            ctx = ssl.create_default_context(cafile=tls_ca)
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                return t.recv(512).decode(errors="replace")
        return s.recv(512).decode(errors="replace")


def http_status(port):
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.decode(errors="replace")


def refused(port):
    try:
        with socket.create_connection(("127.0.0.1", port), 2):
            return False
    except ConnectionRefusedError:
        return True


def processes_naming(path):
    """Live processes whose command line mentions path."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
        except OSError:
            continue
        if path in cmd and not gone(int(d)):
            out.append((int(d), cmd.replace("\0", " ")))
    return out


def read_pid(d, pop):
    with open(os.path.join(d, pop, "popnode.pid")) as f:
        return int(f.read())


def test_lab_two_pops(tmp_path):
    ports = {1: expected_ports(1), 2: expected_ports(2)}
    busy = [p for i in ports for p in ports[i].values() if not port_free(p)]
    if busy:
        pytest.skip(f"lab ports in use: {busy}")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = lab_env(str(run_dir))
    d = str(tmp_path / "lab")
    sleeper = None
    try:
        r = lab(env, "up", "--pops", "2", "--dir", d)
        assert "pop1" in r.stdout and "pop2" in r.stdout and "20110" in r.stdout
        # DIR is now the most recent lab
        with open(run_dir / f"popnode-lab-{os.getuid()}.last") as f:
            assert f.read().strip() == d
        # a running lab is not brought up twice
        r = lab(env, "up", "--pops", "2", "--dir", d, check=False)
        assert r.returncode == 1 and "running lab" in r.stderr, r.stderr

        # files: config, certs (keys 0600), pid files naming live popnodes
        for i in (1, 2):
            conf = open(os.path.join(d, f"pop{i}", "popnode.conf")).read()
            assert f"node_id pop{i}\n" in conf
            assert f"link_listen 127.0.0.1:{ports[i]['link']}\n" in conf
            assert f"peer pop{3 - i} 127.0.0.1:{ports[3 - i]['link']}\n" in conf
            assert "domain *\n" in conf and "link_timeout 2s\n" in conf
            key = os.path.join(d, "certs", f"pop{i}.key")
            assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
            r = subprocess.run([POPNODE, "-c", os.path.join(d, f"pop{i}", "popnode.conf"),
                                "--check"], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            pid = read_pid(d, f"pop{i}")
            assert not gone(pid)

        # ports: the documented formula, printed for scripts
        for i in (1, 2):
            r = lab(env, "ports", f"pop{i}")
            got = dict(line.split("=") for line in r.stdout.split())
            assert {k: int(v) for k, v in got.items()} == ports[i]
        assert lab(env, "ports", "--dir", d, "2").stdout == lab(env, "ports", "pop2").stdout

        # every port answers (the link port is the link module's business)
        ca = os.path.join(d, "certs", "ca.pem")
        for i in (1, 2):
            p = ports[i]
            assert banner(p["pop3"]).startswith("+OK"), i
            assert banner(p["imap"]).startswith("* OK"), i
            assert banner(p["lmtp"]).startswith("220"), i
            assert banner(p["pop3s"], ca).startswith("+OK"), i
            assert banner(p["imaps"], ca).startswith("* OK"), i
            st = http_status(p["http"])
            assert st.startswith("HTTP/1.1 200") and f'"node_id": "pop{i}"' in st, st[:300]

        # popctl through the lab, exit status passed on
        r = lab(env, "popctl", "pop1", "user", "list")
        rows = [l.split() for l in r.stdout.splitlines()[1:]]
        assert ["demo", "pop1"] == [rows[0][0], rows[0][2]], r.stdout
        r = lab(env, "popctl", "--dir", d, "pop1", "user", "show", "nobody", check=False)
        assert r.returncode == 1, (r.stdout, r.stderr)
        r = lab(env, "popctl", "pop3", "status", check=False)
        assert r.returncode == 1 and "unknown POP" in r.stderr

        # status, from the most recent lab
        r = lab(env, "status")
        assert "2 running" in r.stdout
        pid1, pid2 = read_pid(d, "pop1"), read_pid(d, "pop2")
        assert str(pid1) in r.stdout and str(pid2) in r.stdout

        # kill pop2: gone, its ports closed, pop1 untouched
        r = lab(env, "kill", "pop2")
        assert "killed" in r.stdout
        assert gone(pid2)
        assert refused(ports[2]["pop3"])
        assert not gone(pid1)
        r = lab(env, "status")
        assert "1 running" in r.stdout
        assert [l for l in r.stdout.splitlines() if l.startswith("pop2")][0].split()[1:3] == \
            ["-", "stopped"]
        r = lab(env, "kill", "pop2", check=False)
        assert r.returncode == 1 and "not running" in r.stderr

        # a pid file naming another live process (a recycled pid) is never
        # taken for the node
        sleeper = subprocess.Popen(["sleep", "60"])
        with open(os.path.join(d, "pop2", "popnode.pid"), "w") as f:
            f.write(f"{sleeper.pid}\n")
        r = lab(env, "kill", "pop2", check=False)
        assert r.returncode == 1 and "not running" in r.stderr
        assert sleeper.poll() is None

        # start pop2 again: new pid, serving
        r = lab(env, "start", "2")
        new2 = read_pid(d, "pop2")
        assert new2 != pid2 and str(new2) in r.stdout
        assert banner(ports[2]["pop3"]).startswith("+OK")
        r = lab(env, "start", "pop2", check=False)
        assert r.returncode == 1 and "already running" in r.stderr

        # stop (SIGTERM): a clean shutdown, logged by popnode
        r = lab(env, "stop", "pop2")
        assert "stopped" in r.stdout and gone(new2)
        with open(os.path.join(d, "pop2", "popnode.log")) as f:
            assert "event=shutdown.begin reason=SIGTERM" in f.read()
        lab(env, "start", "pop2")
        assert banner(ports[2]["pop3"]).startswith("+OK")

        # unknown POPs and commands are clear errors
        r = lab(env, "stop", "pop7", check=False)
        assert r.returncode == 1 and "unknown POP" in r.stderr and "pop1 .. pop2" in r.stderr
        r = lab(env, "frobnicate", check=False)
        assert r.returncode == 2 and "unknown command" in r.stderr

        # down: nothing of this lab keeps running, DIR is kept
        pids = [read_pid(d, "pop1"), read_pid(d, "pop2")]
        r = lab(env, "down")
        assert all(gone(p) for p in pids)
        assert processes_naming(d) == []
        assert os.path.exists(os.path.join(d, "pop1", "data"))
        assert sleeper.poll() is None
        r = lab(env, "status")
        assert "0 running" in r.stdout
    finally:
        lab(env, "down", "--dir", d, check=False)
        if sleeper is not None:
            sleeper.kill()
            sleeper.wait()
    assert processes_naming(d) == []


def test_lab_without_a_lab(tmp_path):
    env = lab_env(str(tmp_path))
    r = lab(env, "status", check=False)
    assert r.returncode == 1 and "no lab yet" in r.stderr
    r = lab(env, "status", "--dir", str(tmp_path / "nothing"), check=False)
    assert r.returncode == 1 and "no lab at" in r.stderr
    r = lab(env, "up", "--pops", "2", check=False)
    assert r.returncode == 2 and "usage" in r.stderr
    r = lab(env, "--help")
    assert "up --pops N --dir DIR" in r.stdout and "base+44" in r.stdout


def cert_text(path):
    return subprocess.run(["openssl", "x509", "-in", path, "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout


def test_link_certs(tmp_path):
    d = str(tmp_path / "ca")
    r = subprocess.run([LINK_CERTS, "ca", d], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(os.path.join(d, "ca.key")).st_mode) == 0o600
    ca_before = open(os.path.join(d, "ca.pem")).read()
    assert "CA:TRUE" in cert_text(os.path.join(d, "ca.pem"))

    r = subprocess.run([LINK_CERTS, "node", d, "ams1", "10.20.0.2", "fd00::2"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    pem, key = os.path.join(d, "ams1.pem"), os.path.join(d, "ams1.key")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    text = cert_text(pem)
    assert "Subject: CN = ams1" in text
    assert "DNS:ams1, DNS:localhost, IP Address:127.0.0.1, IP Address:10.20.0.2" in text
    assert "IP Address:FD00:0:0:0:0:0:0:2" in text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text
    assert "prime256v1" in text
    r = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(d, "ca.pem"), pem],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr

    # idempotent: nothing is overwritten
    pem_before = open(pem).read()
    for args in (["ca", d], ["node", d, "ams1"]):
        r = subprocess.run([LINK_CERTS] + args, capture_output=True, text=True)
        assert r.returncode == 0 and "kept" in r.stdout, r.stderr
    assert open(os.path.join(d, "ca.pem")).read() == ca_before
    assert open(pem).read() == pem_before

    # errors
    r = subprocess.run([LINK_CERTS, "node", d, "Bad_Id"], capture_output=True, text=True)
    assert r.returncode == 2 and "POPID" in r.stderr
    r = subprocess.run([LINK_CERTS, "node", str(tmp_path / "none"), "x1"], capture_output=True,
                       text=True)
    assert r.returncode == 1 and "no CA" in r.stderr
    os.unlink(key)
    r = subprocess.run([LINK_CERTS, "node", d, "ams1"], capture_output=True, text=True)
    assert r.returncode == 1 and "only one of" in r.stderr
    assert sorted(os.listdir(d)) == ["ams1.pem", "ca.key", "ca.pem"]  # no temporary files left
    r = subprocess.run([LINK_CERTS, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "node DIR POPID" in r.stdout
