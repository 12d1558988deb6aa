"""popctl over the control socket, /status and /metrics with curl."""
import json
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
