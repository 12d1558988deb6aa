"""systemd readiness and watchdog (deploy/systemd: Type=notify,
WatchdogSec=): popnode sends READY=1 once it serves, WATCHDOG=1 at half
the watchdog interval while its loop runs, STOPPING=1 on SIGTERM, over
$NOTIFY_SOCKET, without libsystemd."""
import os
import signal
import socket
import subprocess
import time

from conftest import POPNODE, Node


def test_ready_watchdog_stopping(tmp_path):
    path = str(tmp_path / "notify.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    srv.settimeout(10)
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")
    env.pop("WATCHDOG_PID", None)
    node = Node(str(tmp_path))  # its config: free ports, no fixed dev ports
    p = subprocess.Popen([POPNODE, "-c", node.conf], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.monotonic()
        assert srv.recv(200) == b"READY=1"
        pings = 0
        while pings < 3:
            assert srv.recv(200) == b"WATCHDOG=1"
            pings += 1
        # three pings at 200 ms intervals
        assert 0.3 < time.monotonic() - t0 < 5
        p.send_signal(signal.SIGTERM)
        msgs = []
        while b"STOPPING=1" not in msgs:
            msgs.append(srv.recv(200))
        assert p.wait(timeout=40) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        srv.close()
