"""Trimming, snapshots, resync and the lost disk (docs/replication.md
"Trimming", "Snapshots", "Generation and the lost disk"), on real
clusters (cluster.py): pop1 pins its mirrors.

- pop1's changelog is trimmed once both mirrors acknowledged, never past
  what a mirror still needs (a mirror that is down holds it back), and the
  mirror that comes back catches up from the log;
- a mirror whose copy was wiped while it was stopped gets a snapshot by
  itself, and `popctl mirror list pop1` there equals pop1's;
- a mirror pinned later (pop4) gets a snapshot of a trimmed origin;
- pop1's whole data directory deleted while stopped: on start it asks its
  mirrors, answers LMTP 451 for its users until it rebuilt from the
  mirror that holds the most, then holds everything it had, with the same
  UIDs and UIDVALIDITY, nothing was pushed to the mirrors meanwhile (no
  snapshot, their copies stay complete), and it goes on: new mail reaches
  the mirrors, and the directory works (a user added there reaches the
  other POPs).

The rebuild's snapshot rate (MB/s) is printed (pytest -s shows it).
"""
import datetime
import json
import os
import re
import shutil
import time

import pytest

from cluster import cluster  # noqa: F401  (the fixture)
from mail import deliver, lmtp, msg
from test_replication import content, imap_login, lag, wait_caught_up


def changelog(node):
    return lag(node)["changelog"]


def mirror_row(node, peer):
    return {m["mirror"]: m for m in lag(node)["mirrors"]}[peer]


def wait_for(what, cond, timeout=30, step=0.1):
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


def wait_trimmed_to_end(node, timeout=20):
    """Until node's changelog is trimmed up to its end (all acked)."""
    def done():
        c = changelog(node)
        return c if c["trimmed_seq"] == c["last_seq"] and c["last_seq"] > 0 else None
    return wait_for("trimmed to the end", done, timeout)


def fill(node, n, size=2000, tag="m"):
    """n messages of about size bytes, to alice (every third to bob)."""
    for i in range(n):
        assert deliver(node, "bob@example.com" if i % 3 == 0 else "alice@example.com",
                       msg(f"{tag} {i}", body=(f"{tag} {i} line\r\n" * (size // 12 + 1)))) == {}


def serving(node):
    r = node.popctl("status", "--json", check=False)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout).get("replication_serving")


def log_time(line):
    """Unix time of a log line (ts=2026-01-02T03:04:05.678Z)."""
    ts = re.search(r"ts=(\S+)Z", line).group(1)
    return datetime.datetime.fromisoformat(ts).replace(tzinfo=datetime.timezone.utc).timestamp()


def log_events(node, event):
    return [l for l in node.read_log().splitlines() if f"event={event} " in l]


@pytest.fixture
def three(cluster):
    c = cluster(3, extra_for={"pop1": "mirrors pop2 pop3\n"})
    c.add_user("alice", home="pop1", password="secret")
    c.add_user("bob", home="pop1", password="bobpw")
    return c


def test_trim_after_both_mirrors_acked(three):
    pop1, pop3 = three[1], three[3]
    fill(pop1, 20)
    wait_caught_up(pop1, ["pop2", "pop3"])
    c = wait_trimmed_to_end(pop1)
    assert c["first_seq"] == c["last_seq"] + 1
    # the mirrors' figures say where the log starts
    assert mirror_row(pop1, "pop2")["first_seq"] == c["first_seq"]

    # a mirror down holds trimming back at its position
    pop3.stop()
    held = mirror_row(pop1, "pop3")["applied_seq"]
    fill(pop1, 10, tag="while down")
    wait_for("pop2 caught up", lambda: mirror_row(pop1, "pop2")["applied_seq"] ==
             changelog(pop1)["last_seq"])
    time.sleep(2.5)     # trimming runs every second
    c = changelog(pop1)
    assert c["trimmed_seq"] == held < c["last_seq"]
    three.restart(3)
    rows = wait_caught_up(pop1, ["pop2", "pop3"])
    assert rows["pop3"]["snapshots"] == 0       # caught up from the log
    wait_trimmed_to_end(pop1)
    assert content(pop3) == content(pop1)
    assert content(three[2]) == content(pop1)


def test_wiped_mirror_resyncs(three):
    pop1, pop2, pop3 = three[1], three[2], three[3]
    fill(pop1, 30)
    c = imap_login(pop1)
    try:
        c.select("INBOX")
        assert c.uid("STORE", "1:5", "+FLAGS", r"(\Seen $label1)")[0] == "OK"
        assert c.create("Projects")[0] == "OK"
        assert c.uid("COPY", "2:4", "Projects")[0] == "OK"
        assert c.uid("STORE", "6", "+FLAGS", r"(\Deleted)")[0] == "OK"
        assert c.expunge()[0] == "OK"
    finally:
        c.logout()
    wait_caught_up(pop1, ["pop2", "pop3"])
    wait_trimmed_to_end(pop1)
    pop3.stop()
    shutil.rmtree(os.path.join(pop3.data, "mirror", "pop1"))
    three.restart(3)
    rows = wait_caught_up(pop1, ["pop2", "pop3"], timeout=60)
    assert rows["pop3"]["snapshots"] == 1
    assert rows["pop2"]["snapshots"] == 0
    assert content(pop3) == content(pop1)
    assert log_events(pop3, "repl.snapshot_installed")
    # and the stream goes on after the snapshot
    fill(pop1, 3, tag="after")
    wait_caught_up(pop1, ["pop2", "pop3"])
    assert content(pop3) == content(pop1) == content(pop2)
    o = {x["origin"]: x for x in lag(pop3)["origins"]}["pop1"]
    assert o["snapshots_loaded"] == 1 and o["state"] == "streaming"
    assert o["generation"] == {x["origin"]: x for x in lag(pop2)["origins"]}["pop1"]["generation"]


def test_new_mirror_gets_snapshot(cluster):
    c = cluster(4, extra_for={"pop1": "mirrors pop2 pop3\n"})
    c.add_user("alice", home="pop1", password="secret")
    c.add_user("bob", home="pop1", password="bobpw")
    pop1, pop4 = c[1], c[4]
    fill(pop1, 25)
    wait_caught_up(pop1, ["pop2", "pop3"])
    wait_trimmed_to_end(pop1)
    # pop4 is pinned instead of pop3: it holds nothing, the log no longer
    # starts at 1
    pop1.stop()
    pop1.extra = re.sub(r"mirrors pop2 pop3", "mirrors pop2 pop4", pop1.extra)
    pop1.write_config()
    c.restart(1)
    rows = wait_caught_up(pop1, ["pop2", "pop4"], timeout=60)
    assert rows["pop4"]["snapshots"] == 1
    assert rows["pop2"]["snapshots"] == 0
    assert content(pop4) == content(pop1)
    fill(pop1, 2, tag="later")
    wait_caught_up(pop1, ["pop2", "pop4"])
    assert content(pop4) == content(pop1)


def test_lost_disk_rebuilds_from_mirror(three):
    pop1, pop2, pop3 = three[1], three[2], three[3]
    fill(pop1, 150, size=40000)          # ~6 MB of mail: the rebuild takes a while
    c = imap_login(pop1)
    try:
        c.select("INBOX")
        assert c.uid("STORE", "2:4", "+FLAGS", r"(\Flagged work)")[0] == "OK"
        assert c.create("Keep/2024")[0] == "OK"
        assert c.uid("COPY", "1:3", "Keep/2024")[0] == "OK"
        typ, data = c.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE)")
        assert typ == "OK"
        before_fetch = sorted(x.decode() for x in data if isinstance(x, bytes))
        uidvalidity = c.status("INBOX", "(UIDVALIDITY UIDNEXT)")[1][0]
    finally:
        c.logout()
    rows = wait_caught_up(pop1, ["pop2", "pop3"])
    want = content(pop1)
    seq_before = rows["pop2"]["applied_seq"]
    gen_before = {x["origin"]: x for x in lag(pop2)["origins"]}["pop1"]["generation"]
    assert gen_before

    pop1.stop()
    shutil.rmtree(pop1.data)
    marks = {n: len(n.read_log()) for n in (pop2, pop3)}
    pop1.start(wait=False)
    # LMTP answers 451 for pop1's users until the rebuild is done
    replies = []
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with lmtp(pop1) as s:
                s.ehlo_or_helo_if_needed()
                assert s.mail("sender@example.org")[0] == 250
                code, text = s.rcpt("alice@example.com")
                ready = (serving(pop1) or {}).get("ready")
                s.rset()
        except (OSError, ConnectionError):
            time.sleep(0.02)
            continue
        replies.append((code, ready))
        if code == 250:
            break
        assert code == 451, (code, text)
        assert b"mirror" in text or b"mailboxes" in text
        time.sleep(0.02)
    assert replies and replies[-1][0] == 250, (replies[-3:], serving(pop1), "\n".join(
        l for l in pop1.read_log().splitlines() if "event=repl." in l)[-2000:])
    assert replies[0][0] == 451, replies[:3]
    assert all(r[1] for r in replies if r[0] == 250)  # 250 only once ready
    sv = serving(pop1)
    assert sv["ready"] and sv["rebuilt_from"] in ("pop2", "pop3")
    assert sv["rebuilt_seq"] == seq_before
    three.wait_links()

    # everything is back, with the same UIDs and UIDVALIDITY
    assert content(pop1) == want
    c = imap_login(pop1)
    try:
        c.select("INBOX")
        typ, data = c.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE)")
        assert typ == "OK"
        assert sorted(x.decode() for x in data if isinstance(x, bytes)) == before_fetch
        assert c.status("INBOX", "(UIDVALIDITY UIDNEXT)")[1][0] == uidvalidity
    finally:
        c.logout()
    # nothing was pushed to the mirrors: no snapshot, their copies intact
    for m in (pop2, pop3):
        later = m.read_log()[marks[m]:]
        assert "event=repl.snapshot_receiving origin=pop1" not in later
        assert content(m) == want
        o = {x["origin"]: x for x in lag(m)["origins"]}["pop1"]
        assert o["generation"] == gen_before and o["applied_seq"] >= seq_before
    rebuilt = log_events(pop1, "repl.rebuilt")
    assert len(rebuilt) == 1
    mb = int(re.search(r"bytes=(\d+)", rebuilt[0]).group(1))
    secs = max(log_time(rebuilt[0]) - log_time(log_events(pop1, "repl.rebuild")[0]), 0.001)
    print(f"\nrebuild: {mb / 1e6:.1f} MB in {secs:.3f} s = {mb / 1e6 / secs:.1f} MB/s")

    # it goes on from where the copy was: new mail reaches both mirrors
    assert deliver(pop1, "alice@example.com", msg("after the rebuild")) == {}
    rows = wait_caught_up(pop1, ["pop2", "pop3"])
    assert rows["pop2"]["snapshots"] == 0 and rows["pop3"]["snapshots"] == 0
    assert content(pop2) == content(pop1) == content(pop3)
    assert content(pop1)[("alice", "INBOX")][0] == want[("alice", "INBOX")][0] + 1
    # the directory works: a user added at pop1 reaches the others
    pop1.popctl("user", "add", "carol", "--home", "pop1", "--password-stdin", input="pw\n")
    for m in (pop2, pop3):
        wait_for("carol at " + m.dir, lambda m=m: "carol" in m.popctl("user", "list").stdout,
                 timeout=10)
    assert "bob" in pop1.popctl("user", "list").stdout
