"""popctl over the control socket, /status and /metrics with curl."""
import json
import socket
import subprocess

from conftest import POPCTL
from mail import deliver, msg, pop3


def curl(node, path):
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}",
                        f"http://127.0.0.1:{node.ports['http']}{path}"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    body, _, code = r.stdout.rpartition("\n")
    return int(code), body


def test_user_lifecycle(make_node):
    n = make_node()
    r = n.popctl("user", "add", "carol", "--quota", "10M", "--password-stdin", input="pw1\n")
    assert r.returncode == 0
    r = n.popctl("user", "add", "carol", "--password-stdin", input="pw1\n", check=False)
    assert r.returncode == 1 and "exists" in (r.stdout + r.stderr)
    r = n.popctl("user", "list")
    assert "carol" in r.stdout
    r = n.popctl("user", "show", "carol")
    assert "10485760" in r.stdout
    pop3(n, "carol", "pw1").quit()
    n.popctl("user", "passwd", "carol", "--password-stdin", input="pw2\n")
    pop3(n, "carol", "pw2").quit()
    assert deliver(n, "carol@example.com", msg("x")) == {}
    n.popctl("user", "del", "carol")
    r = n.popctl("user", "show", "carol", check=False)
    assert r.returncode == 1
    r = n.popctl("user", "add", "Bad Name!", "--password-stdin", input="x\n", check=False)
    assert r.returncode != 0


def test_import_existing_hash(make_node):
    n = make_node()
    h = subprocess.run(["openssl", "passwd", "-6", "-salt", "abcdefgh", "imported"],
                       capture_output=True, text=True, check=True).stdout.strip()
    n.popctl("user", "add", "dave", "--hash-stdin", input=h + "\n")
    pop3(n, "dave", "imported").quit()
    r = n.popctl("user", "add", "eve", "--hash-stdin", input="plaintext\n", check=False)
    assert r.returncode != 0


def test_usage_and_unreachable(tmpbase):
    r = subprocess.run([POPCTL, "frobnicate"], capture_output=True, text=True)
    assert r.returncode == 2
    r = subprocess.run([POPCTL, "-s", tmpbase + "/nope.sock", "status"], capture_output=True, text=True)
    assert r.returncode == 3
    assert "nope.sock" in r.stderr


def test_status_and_metrics(node):
    assert deliver(node, "alice@example.com", msg("m")) == {}
    pop3(node).quit()
    code, body = curl(node, "/status")
    assert code == 200
    st = json.loads(body)
    assert st["node_id"] == "t1"
    assert st["deliveries"] >= 1
    assert st["store"]["users"] == 2
    r = node.popctl("status", "--json")
    assert json.loads(r.stdout)["node_id"] == "t1"
    r = node.popctl("status")
    assert "t1" in r.stdout
    code, body = curl(node, "/metrics")
    assert code == 200
    assert "# TYPE popnode_deliveries_total counter" in body
    assert "popnode_commit_duration_seconds_bucket" in body
    lines = {l.split(" ")[0]: l.split(" ")[1] for l in body.splitlines() if l and not l.startswith("#")}
    assert float(lines["popnode_deliveries_total"]) >= 1
    assert float(lines['popnode_sessions_total{proto="pop3"}']) >= 1
    code, _ = curl(node, "/nope")
    assert code == 404


def test_single_pop_link_and_roaming(node):
    # a POP without peers: `popctl peers` says so and succeeds
    r = node.popctl("peers")
    assert r.returncode == 0
    assert r.stdout == "no peers configured\n"
    r = node.popctl("peers", "--json")
    link = json.loads(r.stdout)
    assert link == {"node": "t1", "listen": None, "peers": []}
    r = node.popctl("peers", "--bogus", check=False)
    assert r.returncode == 2
    r = node.popctl("status")
    assert "peers:       none configured" in r.stdout

    code, body = curl(node, "/status")
    assert code == 200
    st = json.loads(body)
    assert st["link"] == {"node": "t1", "listen": None, "peers": []}
    assert st["peers"] == []
    assert st["roaming"] == {
        "front": {"total": 0, "active": 0, "failed": 0, "bytes_up": 0, "bytes_down": 0},
        "home": {"served_total": 0, "served_active": 0, "refused": 0},
        "forward": {"rcpts": 0, "failed": 0, "received": 0},
        "failover": {"routed_to_mirror": 0, "sessions_served": 0, "rcpts_stored": 0},
    }

    code, body = curl(node, "/metrics")
    assert code == 200
    samples = {l.split(" ")[0]: l.split(" ")[1] for l in body.splitlines() if l and not l.startswith("#")}
    for name, typ in (("popnode_roaming_sessions_total", "counter"),
                      ("popnode_roaming_sessions_active", "gauge"),
                      ("popnode_roaming_failures_total", "counter"),
                      ("popnode_roaming_bytes_total", "counter"),
                      ("popnode_tunnel_sessions_served_total", "counter"),
                      ("popnode_tunnel_sessions_served_active", "gauge"),
                      ("popnode_tunnel_refused_total", "counter"),
                      ("popnode_forward_recipients_total", "counter")):
        assert f"# TYPE {name} {typ}\n" in body
        assert f"# HELP {name} " in body
    for series in ("popnode_roaming_sessions_total", "popnode_roaming_sessions_active",
                   "popnode_roaming_failures_total", 'popnode_roaming_bytes_total{direction="up"}',
                   'popnode_roaming_bytes_total{direction="down"}',
                   "popnode_tunnel_sessions_served_total", "popnode_tunnel_sessions_served_active",
                   "popnode_tunnel_refused_total",
                   'popnode_forward_recipients_total{result="delivered"}',
                   'popnode_forward_recipients_total{result="failed"}',
                   'popnode_forward_recipients_total{result="received"}'):
        assert samples[series] == "0", series
    # no peers, no per-peer series
    assert "popnode_link_" not in body


def test_peers_control_protocol(node):
    # the raw exchange popctl relies on: header only, and format= checked
    def ask(line):
        s = socket.socket(socket.AF_UNIX)
        s.connect(node.sock)
        s.sendall(line)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        return data.decode()

    assert ask(b"peers\n") == "ok\nPEER\tADDR\tSTATE\tRTT\tIN\tFAIL\tSTREAMS\tDIR\tSINCE\tLAST ERROR\n.\n"
    assert ask(b"peers\tformat=xml\n").startswith("err inval ")
    assert ask(b"peers\textra\n").startswith("err usage ")
    assert "peers [format=text|json]" in ask(b"help\n")
