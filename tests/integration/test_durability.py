"""Lose no mail: kill -9 and SIGTERM under concurrent LMTP load."""
import os
import re
import signal
import smtplib
import threading
import time

from mail import msg, pop3, retr_bytes

USERS = [f"u{i}" for i in range(8)]


def load(node, seconds_before_kill):
    acked = {u: set() for u in USERS}
    stop = threading.Event()
    errors = []

    def worker(user):
        i = 0
        while not stop.is_set():
            try:
                with smtplib.LMTP("127.0.0.1", node.ports["lmtp"], timeout=10) as c:
                    while not stop.is_set():
                        tag = f"{user}-{i}"
                        i += 1
                        refused = c.sendmail("s@example.org", [f"{user}@example.com"],
                                             msg(tag, f"payload {tag}\r\n" + "p" * 2000 + "\r\n"))
                        if refused == {}:
                            acked[user].add(tag)
            except (OSError, smtplib.SMTPException) as e:
                errors.append(e)
                time.sleep(0.01)

    threads = [threading.Thread(target=worker, args=(u,)) for u in USERS]
    for t in threads:
        t.start()
    time.sleep(seconds_before_kill)
    return acked, stop, threads


def check_all_present(node, acked):
    total = 0
    for u, tags in acked.items():
        p = pop3(node, u, "pw")
        count, _ = p.stat()
        found = set()
        for n in range(1, count + 1):
            m = re.search(rb"Subject: (\S+)", retr_bytes(p, n))
            found.add(m.group(1).decode())
        p.quit()
        missing = tags - found
        assert not missing, f"{u}: acknowledged but lost: {sorted(missing)[:10]}"
        total += len(tags)
    return total


def make_users(node):
    for u in USERS:
        node.add_user(u, "pw")


def test_kill9_under_load_loses_nothing(make_node):
    n = make_node()
    make_users(n)
    acked, stop, threads = load(n, 2.5)
    rc = n.kill9()
    stop.set()
    for t in threads:
        t.join()
    assert rc == -signal.SIGKILL
    n.start()
    total = check_all_present(n, acked)
    assert total > 50, f"only {total} deliveries acknowledged before the kill"


def test_sigterm_under_load_finishes_inflight(make_node):
    n = make_node()
    make_users(n)
    acked, stop, threads = load(n, 1.5)
    rc = n.stop(signal.SIGTERM)
    stop.set()
    for t in threads:
        t.join()
    assert rc == 0, n.read_stderr()
    n.start()
    assert check_all_present(n, acked) > 20
    log = n.read_log()
    assert "shutdown.begin" in log and "shutdown.done" in log


def test_sighup_reopens_log(make_node):
    n = make_node()
    os.rename(n.log, n.log + ".1")
    n.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while not os.path.exists(n.log) and time.time() < deadline:
        time.sleep(0.05)
    assert os.path.exists(n.log)
    n.add_user("zed", "pw")
    time.sleep(0.2)
    assert "signal.hup" in open(n.log).read()
