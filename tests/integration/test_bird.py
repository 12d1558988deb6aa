"""The BIRD control-socket client (anycast/bird_client.c, bird_parse.c)
against a real BIRD 2.

Each test starts its own `bird -f` in a temp dir with its own control
socket and a config that installs nothing in the host: a device protocol,
a static protocol s1 with two blackhole routes, and a pipe p1 from master4
into a second table (no `protocol kernel`).  tests/integration/bird_probe.c
(built by `make build/integration/bird_probe`) runs the steps and prints
what the parsers extracted, one JSON object per line; `birdc` is asked
separately to check the probe did what it says.

Skipped when `bird` is not installed (`./configure --install-deps`
installs bird2).  BIRD is always killed, also when a test fails.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROBE = os.path.join(ROOT, "build", "integration", "bird_probe")

pytestmark = pytest.mark.skipif(
    shutil.which("bird") is None or shutil.which("birdc") is None,
    reason="BIRD 2 is not installed (./configure --install-deps installs bird2)")

CONFIG = """\
router id 10.0.0.1;
protocol device {}
protocol static s1 {
    ipv4;
    route 192.0.2.1/32 blackhole;
    route 192.0.2.2/32 blackhole;
}
ipv4 table t2;
protocol pipe p1 { table master4; peer table t2; export all; import none; }
"""


@pytest.fixture(scope="module")
def probe():
    subprocess.run(["make", "-s", "-C", ROOT, "build/integration/bird_probe"], check=True,
                   capture_output=True)
    assert os.access(PROBE, os.X_OK), PROBE
    return PROBE


class Bird:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="bird-test-")
        self.sock = os.path.join(self.dir, "bird.ctl")
        self.conf = os.path.join(self.dir, "bird.conf")
        with open(self.conf, "w") as f:
            f.write(CONFIG)
        self.log = open(os.path.join(self.dir, "bird.out"), "w")
        self.proc = subprocess.Popen(
            ["bird", "-f", "-c", self.conf, "-s", self.sock, "-P",
             os.path.join(self.dir, "bird.pid")],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 5
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("BIRD did not start: " + self.output())
            time.sleep(0.02)

    def ready(self):
        if not os.path.exists(self.sock):
            return False
        r = subprocess.run(["birdc", "-s", self.sock, "show", "status"],
                           capture_output=True, text=True)
        return "Daemon is up and running" in r.stdout

    def output(self):
        with open(os.path.join(self.dir, "bird.out")) as f:
            return f.read()

    def birdc(self, *args):
        return subprocess.run(["birdc", "-s", self.sock] + list(args), capture_output=True,
                              text=True, check=True).stdout

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=10)

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def bird():
    b = Bird()
    try:
        yield b
    finally:
        b.close()


def run_probe(probe, sock, *steps, timeout_ms=None):
    args = [probe]
    if timeout_ms is not None:
        args += ["-t", str(timeout_ms)]
    r = subprocess.run(args + [sock] + list(steps), capture_output=True, text=True,
                       timeout=30)
    assert r.returncode in (0, 1), f"probe rc={r.returncode}: {r.stderr}"
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert lines and lines[-1].get("done") is True, r.stdout + r.stderr
    return r.returncode, lines[:-1], lines[-1]


def wait_for(cond, what, timeout=5):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def bird_version():
    out = subprocess.run(["bird", "--version"], capture_output=True, text=True)
    # "BIRD version 2.0.12" (printed on stderr)
    return (out.stdout + out.stderr).split()[-1]


def test_status_protocols_disable_enable(bird, probe):
    rc, res, done = run_probe(
        probe, bird.sock,
        "status", "protocols",
        "count:show route protocol s1 count", "count:show route export p1 count",
        "disable:s1", "protocols", "count:show route export p1 count", "disable:s1")
    assert rc == 0, res
    assert done["greeting"] == f"BIRD {bird_version()} ready."
    assert done["disconnect"] is None
    status, protos, count_s1, count_p1, disable, protos2, count_p1b, again = res

    st = status["status"]
    assert status["code"] == 13 and status["class"] == 0
    assert st["version"] == bird_version()
    assert st["router_id"] == "10.0.0.1"
    assert st["router_id_num"] == 0x0A000001
    assert st["state"] == "up"
    assert st["state_text"] == "Daemon is up and running"
    assert st["last_reconfig"] is not None and st["last_reconfig"][:2] == "20"
    assert st["last_reboot"][:2] == "20"
    assert st["graceful_restart"] is False

    rows = {p["name"]: p for p in protos["protocols"]}
    assert set(rows) == {"device1", "s1", "p1"}
    assert rows["s1"]["proto"] == "Static"
    assert rows["s1"]["table"] == "master4"
    assert rows["s1"]["state"] == "up"
    assert rows["device1"]["table"] == "---"
    assert rows["p1"]["proto"] == "Pipe"
    assert rows["p1"]["info"] == "master4 <=> t2"

    assert count_s1["count"] == {"routes": 2, "scanned": 2, "networks": 2, "tables": 1}
    assert count_p1["code"] == 14
    assert count_p1["count"]["routes"] == 2
    assert count_p1["count"]["tables"] == 2

    assert disable["command"] == 'disable "s1"'
    assert disable["ctl"] == "done"
    rows2 = {p["name"]: p for p in protos2["protocols"]}
    # right after the disable BIRD may still be flushing s1's routes
    assert rows2["s1"]["state"] in ("flush", "down")
    assert rows2["device1"]["state"] == "up"
    assert count_p1b["count"]["routes"] == 0
    assert again["ctl"] == "already"

    # BIRD itself agrees that s1 is down, then the probe enables it again
    wait_for(lambda: " down " in bird.birdc("show", "protocols", "s1"), "s1 down")
    rc, res, done = run_probe(probe, bird.sock, "enable:s1", "enable:s1", "protocols",
                              "count:show route protocol s1 count")
    assert rc == 0, res
    assert [r["ctl"] for r in res[:2]] == ["done", "already"]
    assert {p["name"]: p["state"] for p in res[2]["protocols"]}["s1"] in ("start", "up")
    assert res[3]["count"]["routes"] == 2
    wait_for(lambda: " up " in bird.birdc("show", "protocols", "s1"), "s1 up")


def test_errors_from_bird(bird, probe):
    rc, res, done = run_probe(probe, bird.sock, "disable:nosuch", "enable:master4",
                              "raw:show route 10.1.1.1/32", "raw:show symbols s1",
                              "raw:show nonsense", "count:show route export s1 count")
    assert rc == 0, res
    nosuch, table, noroute, symbols, nonsense, export_static = res
    assert nosuch["code"] == 8003 and nosuch["ctl"] == "unknown protocol"
    # a table's name, quoted, is a pattern that matches no protocol
    assert table["ctl"] == "unknown protocol"
    assert noroute["code"] == 8001 and noroute["class"] == 8
    assert noroute["lines"] == [[8001, False, "Network not found"]]
    # a reply whose only line is class 1 ends there too
    assert symbols["code"] == 1010 and symbols["class"] == 1
    assert symbols["lines"][0][2].split() == ["s1", "protocol"]
    assert nonsense["class"] == 9
    assert export_static["parse_error"] == "BIRD answered with an error"
    assert done["state"] == "ready"


def test_no_socket(probe):
    d = tempfile.mkdtemp(prefix="bird-test-")
    try:
        rc, res, done = run_probe(probe, os.path.join(d, "missing.ctl"), "status", "protocols")
        assert rc == 1
        assert [r["error"] for r in res] == ["no_socket", "no_socket"]
        assert done["disconnect"] == "no_socket"
        assert done["greeting"] == ""
    finally:
        shutil.rmtree(d)


def test_bird_killed(bird, probe):
    rc, res, _ = run_probe(probe, bird.sock, "status")
    assert rc == 0
    bird.kill(signal.SIGKILL)
    # the socket file stays behind; nobody listens on it
    assert os.path.exists(bird.sock)
    rc, res, done = run_probe(probe, bird.sock, "status")
    assert rc == 1
    assert res[0]["error"] == "not_running"
    assert done["disconnect"] == "not_running"


def test_bird_stopped_times_out(bird, probe):
    bird.proc.send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        rc, res, done = run_probe(probe, bird.sock, "status", "protocols", timeout_ms=300)
        elapsed = time.monotonic() - t0
    finally:
        bird.proc.send_signal(signal.SIGCONT)
    assert rc == 1
    assert [r["error"] for r in res] == ["timeout", "timeout"]
    assert done["disconnect"] == "timeout"
    assert 0.25 < elapsed < 5
    # and once BIRD runs again, it answers
    rc, res, done = run_probe(probe, bird.sock, "status")
    assert rc == 0 and res[0]["status"]["state"] == "up"
