"""`popctl verify USER`, `popctl lag --cluster` (docs/popctl.md,
docs/replication.md "popctl verify and lag --cluster") on a real
four-POP cluster (cluster.py), and `deploy/lab wipe POP` on a loopback
lab.

pop1 pins `mirrors pop2 pop3`, so for alice (home pop1) pop1 is the home,
pop2 and pop3 are mirrors and pop4 holds no copy: verify is asked from
each kind of POP.  A mirror is made to fall behind while it stays
reachable by cutting only the home's link to it (pop1 restarted with a
dead address for pop3): seen from pop4, pop3 then differs (exit 1), seen
from pop1 it is unreachable (exit 2); once the link is back and the lag
is 0, every POP says match (exit 0).  A mirror frozen with SIGSTOP or
killed is unreachable (exit 2), never "differs".
"""
import imaplib
import json
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import time

import pytest

from cluster import cluster, cluster_ports  # noqa: F401  (the fixture)
from conftest import POPCTL, POPNODE, ROOT
from mail import deliver, msg

LAB = os.path.join(ROOT, "deploy", "lab")


def lag(node):
    return json.loads(node.popctl("lag", "--json").stdout)


def wait_caught_up(origin, mirrors, timeout=30):
    """Until every mirror of origin is streaming with applied == last."""
    deadline = time.time() + timeout
    while True:
        rows = {m["mirror"]: m for m in lag(origin)["mirrors"]}
        if all(m in rows and rows[m]["state"] == "streaming" and
               rows[m]["applied_seq"] == rows[m]["last_seq"] for m in mirrors):
            return rows
        if time.time() > deadline:
            raise AssertionError(f"mirrors not caught up: {rows}")
        time.sleep(0.1)


def deliver_ok(node, rcpt, body, timeout=40):
    """Deliver, retrying while the POP answers 451: after its start a POP
    refuses its own users' mail until its mirrors answered its start-up
    check (replication_startup_wait when one cannot be reached)."""
    deadline = time.time() + timeout
    while True:
        try:
            refused = deliver(node, rcpt, body)
        except smtplib.SMTPRecipientsRefused as e:
            refused = e.recipients
        if refused == {}:
            return
        if time.time() > deadline or any(code != 451 for code, _ in refused.values()):
            raise AssertionError(f"delivery to {rcpt} refused: {refused}")
        time.sleep(0.2)


def verify(node, user="alice", *more):
    return node.popctl("verify", user, *more, check=False)


def verify_json(node, user="alice"):
    r = verify(node, user, "--json")
    return r.returncode, json.loads(r.stdout)


def copies(doc):
    return {c["pop"]: c for c in doc["copies"]}


def mirror_list(node, origin="pop1", user="alice"):
    """{mailbox: (messages, uidvalidity, uidnext, digest)} of user from
    `popctl mirror list`."""
    lines = node.popctl("mirror", "list", origin).stdout.splitlines()
    rows = {}
    for line in lines[1:]:
        u, mbox, n, uidv, uidnext, digest = line.split()
        if u == user:
            rows[mbox] = (int(n), int(uidv), int(uidnext), digest)
    return rows


def wait_verify(node, rc, timeout=30, user="alice"):
    deadline = time.time() + timeout
    while True:
        r = verify(node, user)
        if r.returncode == rc:
            return r
        if time.time() > deadline:
            raise AssertionError(f"verify at {os.path.basename(node.dir)}: exit "
                                 f"{r.returncode}, not {rc}\n{r.stdout}{r.stderr}")
        time.sleep(0.2)


@pytest.fixture
def four(cluster):
    c = cluster(4, extra_for={"pop1": "mirrors pop2 pop3\n"})
    c.add_user("alice", home="pop1", password="secret")
    c.add_user("bob", home="pop2", password="bobpw")
    for i in range(3):
        deliver_ok(c[1], "alice@example.com", msg(f"m{i}", body=f"body {i}\r\n" * 20))
    im = imaplib.IMAP4("127.0.0.1", c[1].ports["imapplain"], timeout=30)
    try:
        im.login("alice", "secret")
        assert im.create("Projects")[0] == "OK"
        im.select("INBOX")
        assert im.uid("STORE", "1:2", "+FLAGS", r"(\Seen $label1)")[0] == "OK"
        assert im.uid("COPY", "3", "Projects")[0] == "OK"
    finally:
        im.logout()
    wait_caught_up(c[1], ["pop2", "pop3"])
    return c


def test_verify_in_sync_from_every_kind_of_pop(four):
    pop1, pop2, pop3, pop4 = four[1], four[2], four[3], four[4]
    for node in (pop1, pop2, pop4):         # the home, a mirror, no copy
        r = verify(node)
        assert r.returncode == 0, (os.path.basename(node.dir), r.stdout, r.stderr)
        lines = r.stdout.splitlines()
        assert lines[:3] == ["user: alice", "home: pop1", "result: match"], r.stdout
        rows = [l.split() for l in lines]
        assert ["pop1", "home", "reference"] in [x[:3] for x in rows]
        assert ["pop2", "mirror", "match"] in [x[:3] for x in rows]
        assert ["pop3", "mirror", "match"] in [x[:3] for x in rows]
        assert not any(x[:1] == ["pop4"] for x in rows), r.stdout

    # --json; the digests are `mirror list`'s, the same at every copy
    rc, doc = verify_json(pop4)
    assert rc == 0
    assert doc["user"] == "alice" and doc["home"] == "pop1" and doc["result"] == "match"
    cs = copies(doc)
    assert set(cs) == {"pop1", "pop2", "pop3"}
    assert cs["pop1"]["role"] == "home" and cs["pop1"]["status"] == "reference"
    want = mirror_list(pop1)
    assert want["INBOX"][0] == 3 and want["Projects"][0] == 1
    for p in ("pop1", "pop2", "pop3"):
        c = cs[p]
        assert c["reachable"] is True and c["holds_copy"] is True and c["user_found"] is True
        got = {m["name"]: (m["messages"], m["uidvalidity"], m["uidnext"], m["digest"])
               for m in c["mailboxes"]}
        assert got == want, p
        assert c["seq"] == cs["pop1"]["seq"] > 0
        if p != "pop1":
            assert c["role"] == "mirror" and c["status"] == "match"
            assert all(m["status"] == "match" for m in c["mailboxes"])
    assert mirror_list(pop2) == want and mirror_list(pop3) == want

    # bob (home pop2): pop2 is the home there, asked from pop1
    wait_verify(pop1, 0, user="bob")
    rc, doc = verify_json(pop1, "bob")
    assert rc == 0 and doc["home"] == "pop2", doc
    assert copies(doc)["pop2"]["role"] == "home" and len(doc["copies"]) == 3, doc

    # refusals: no such user, not a user name (popctl's own check)
    r = verify(pop4, "nobody")
    assert r.returncode == 2 and "no such user" in r.stderr, (r.stdout, r.stderr)
    r = verify(pop4, "bad name!")
    assert r.returncode == 2 and "invalid user name" in r.stderr
    r = pop4.popctl("verify", check=False)
    assert r.returncode == 2


def test_verify_mirror_behind_differs_then_matches(four):
    pop1, pop3, pop4 = four[1], four[3], four[4]
    # cut only the home's link to pop3: pop1 restarts with a dead address
    # for it; pop3 stays reachable from the other POPs
    good = pop1.extra
    dead = cluster_ports(1)[0]
    pop1.extra = good.replace(f"peer pop3 127.0.0.1:{four.link_ports['pop3']}",
                              f"peer pop3 127.0.0.1:{dead}")
    assert pop1.extra != good
    pop1.write_config()
    pop1.stop()
    pop1.start()
    four.wait_links(among=[pop1, four[2], pop4])
    for i in range(3):
        deliver_ok(pop1, "alice@example.com", msg(f"later {i}"))
    wait_caught_up(pop1, ["pop2"])

    # from pop4: pop3 answers, and is behind: differs, exit 1
    r = wait_verify(pop4, 1)
    assert "result: differs" in r.stdout
    row = [l.split(None, 3) for l in r.stdout.splitlines() if l.startswith("pop3 ")][0]
    assert row[1:3] == ["mirror", "differs"], r.stdout
    assert "behind the home by" in r.stdout
    assert any(l.split()[:2] == ["pop2", "mirror"] and l.split()[2] == "match"
               for l in r.stdout.splitlines())
    rc, doc = verify_json(pop4)
    assert rc == 1 and doc["result"] == "differs"
    c3 = copies(doc)["pop3"]
    assert c3["status"] == "differs" and c3["reachable"] is True
    assert c3["seq"] < copies(doc)["pop1"]["seq"]
    inbox = [m for m in c3["mailboxes"] if m["name"] == "INBOX"][0]
    assert inbox["status"] == "differs" and inbox["messages"] == 3
    # at pop3 itself its own copy is read directly: differs too
    r = verify(pop3)
    assert r.returncode == 1, (r.stdout, r.stderr)
    # from the home, pop3 cannot be asked at all: unreachable, exit 2
    r = verify(pop1)
    assert r.returncode == 2 and "result: unreachable" in r.stdout, (r.stdout, r.stderr)
    assert "link to pop3 not up" in r.stdout

    # the link is back: pop3 catches up, every POP says match
    pop1.extra = good
    pop1.write_config()
    pop1.stop()
    pop1.start()
    four.wait_links()
    wait_caught_up(pop1, ["pop2", "pop3"])
    for node in (pop1, pop3, pop4):
        wait_verify(node, 0)


def test_verify_unreachable_mirror(four):
    pop1, pop2, pop3, pop4 = four[1], four[2], four[3], four[4]
    # frozen: not a difference, unreachable (exit 2)
    os.kill(pop2.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        r = verify(pop4)
        took = time.monotonic() - t0
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert "result: unreachable" in r.stdout
        row = [l.split() for l in r.stdout.splitlines() if l.startswith("pop2 ")][0]
        assert row[1:3] == ["mirror", "unreachable"], r.stdout
        assert [l.split()[2] for l in r.stdout.splitlines() if l.startswith("pop3 ")][0] == "match"
        assert took < 8, took      # two rounds of at most 2 s, plus popctl
        # pop4 stopped while its check waits for a mirror: the control
        # socket goes, cancelling the query (its streams reset); a clean
        # exit.  The mirror waited for is pop3, frozen just now: pop4's
        # link may have given up on pop2 already (then pop2's answer is
        # "unreachable" at once), but still takes pop3 for up for about
        # two seconds.
        os.kill(pop3.proc.pid, signal.SIGSTOP)
        p = subprocess.Popen([POPCTL, "-s", pop4.sock, "verify", "alice"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        assert p.poll() is None
        assert pop4.stop() == 0, pop4.read_stderr()
        assert p.wait(10) == 3
    finally:
        os.kill(pop2.proc.pid, signal.SIGCONT)
        os.kill(pop3.proc.pid, signal.SIGCONT)
    four.restart(4)
    wait_verify(pop4, 0)

    # killed
    pop3.kill9()
    rc, doc = verify_json(pop4)
    assert rc == 2 and doc["result"] == "unreachable", doc
    c3 = copies(doc)["pop3"]
    assert c3["reachable"] is False and c3["status"] == "unreachable" and c3["note"]
    assert copies(doc)["pop2"]["status"] == "match"
    # the home's rows in lag --cluster say so too
    out = pop4.popctl("lag", "--cluster").stdout
    assert any(l.split()[:3] == ["pop3", "-", "unreachable"] for l in out.splitlines()), out
    four.restart(3)
    wait_caught_up(pop1, ["pop2", "pop3"])
    wait_verify(pop4, 0)


def test_lag_cluster(four):
    pop1, pop3, pop4 = four[1], four[3], four[4]
    names = ["pop1", "pop2", "pop3", "pop4"]
    # every POP chooses two mirrors (pop1 pins them, the others by RTT)
    deadline = time.time() + 30
    while True:
        doc = json.loads(pop4.popctl("lag", "--cluster", "--json").stdout)
        pops = {p["pop"]: p for p in doc["pops"]}
        if all(len(p["mirrors"]) == 2 and all(m["state"] == "streaming" for m in p["mirrors"])
               for p in pops.values()):
            break
        assert time.time() < deadline, doc
        time.sleep(0.2)
    assert [p["pop"] for p in doc["pops"]] == names
    assert all(p["reachable"] is True and p["error"] is None for p in doc["pops"])
    assert {m["mirror"] for m in pops["pop1"]["mirrors"]} == {"pop2", "pop3"}
    assert all(m["pinned"] for m in pops["pop1"]["mirrors"])
    for p in pops.values():
        for m in p["mirrors"]:
            assert m["mirror"] != p["pop"]
            assert m["last_ack"] is not None and m["last_ack_age"] < 5
    # the text table: one row per origin/mirror pair, the same from any POP
    for node in (pop1, pop4):
        out = node.popctl("lag", "--cluster").stdout.splitlines()
        assert out[0].split()[:4] == ["ORIGIN", "MIRROR", "STATE", "LAST"], out
        pairs = {(l.split()[0], l.split()[1]) for l in out[1:]}
        assert len(out) == 1 + 8 and len(pairs) == 8, out
        assert {o for o, _ in pairs} == set(names)
        assert ("pop1", "pop2") in pairs and ("pop1", "pop3") in pairs
    # an unreachable POP is a row that says so
    pop3.kill9()
    out = pop4.popctl("lag", "--cluster").stdout.splitlines()
    rows = [l.split(None, 10) for l in out[1:]]
    dead = [r for r in rows if r[0] == "pop3"]
    assert len(dead) == 1 and dead[0][1:3] == ["-", "unreachable"], out
    assert any(r[0] == "pop1" and r[1] == "pop3" for r in rows), out
    doc = json.loads(pop4.popctl("lag", "--cluster", "--json").stdout)
    p3 = [p for p in doc["pops"] if p["pop"] == "pop3"][0]
    assert p3["reachable"] is False and p3["error"] and p3["mirrors"] == []
    assert len(doc["pops"]) == 4
    # plain `lag` is unchanged
    assert pop1.popctl("lag").stdout.splitlines()[0].split()[:2] == ["ROLE", "POP"]


def link_get(c, pop, path, as_pop="pop2", method="GET", cert=True):
    """curl over HTTP/2 to pop's link listener, as POP as_pop (its
    certificate): (status or None, headers and body text)."""
    argv = ["curl", "-sS", "--http2", "--max-time", "10", "-D", "-", "-X", method,
            "--cacert", f"{c.certs}/ca.pem"]
    if cert:
        argv += ["--cert", f"{c.certs}/{as_pop}.pem", "--key", f"{c.certs}/{as_pop}.key"]
    r = subprocess.run(argv + [f"https://127.0.0.1:{c.link_ports[pop]}{path}"],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        return None, r.stderr
    return int(r.stdout.split()[1]), r.stdout


def test_endpoints(cluster):
    """GET /v1/repl/digest and /v1/repl/lag as a peer sees them."""
    c = cluster(2)
    c.add_user("alice", home="pop1")
    deliver_ok(c[1], "alice@example.com", msg("one"))
    wait_caught_up(c[1], ["pop2"])
    st, out = link_get(c, "pop1", "/v1/repl/digest?user=alice&origin=pop1")
    assert st == 200, out
    body = out.split("\n\n", 1)[1]
    lines = body.splitlines()
    assert lines[0].startswith("seq\t") and lines[1] == "user\tfound" and lines[2] == "mirror\tpop2"
    inbox = [l.split("\t") for l in lines if l.startswith("mailbox\tINBOX\t")][0]
    assert inbox[2] == "1" and inbox[5] == mirror_list(c[1])["INBOX"][3]
    # pop2's copy of pop1, asked from pop1's side: the same mailbox line
    st, out2 = link_get(c, "pop2", "/v1/repl/digest?origin=pop1&user=alice", as_pop="pop1")
    assert st == 200 and "\t".join(inbox) in out2 and "mirror\t" not in out2, out2
    # a user unknown in that copy; a POP not held here
    st, out = link_get(c, "pop1", "/v1/repl/digest?user=nobody&origin=pop1")
    assert st == 200 and "user\tabsent" in out and "mailbox\t" not in out
    st, out = link_get(c, "pop1", "/v1/repl/digest?user=alice&origin=pop9")
    assert st == 404 and "x-popnode-error: no copy of pop9 here" in out, out
    # bad queries: 400 with the reason
    for q in ("user=Alice&origin=pop1", "user=alice", "origin=pop1", "user=alice&origin=pop1&x=1",
              "user=alice&user=alice&origin=pop1", "user=al/ice&origin=pop1",
              "user=alice&origin=po%2fp1", "user=alice&origin=" + "p" * 70):
        st, out = link_get(c, "pop1", "/v1/repl/digest?" + q)
        assert st == 400 and "x-popnode-error: " in out, (q, out)
    st, out = link_get(c, "pop1", "/v1/repl/digest?user=alice&origin=pop1", method="POST")
    assert st == 400, out
    st, out = link_get(c, "pop1", "/v1/repl/lag")
    # (the state may be anything: curl posing as pop2 disturbs pop2's link)
    assert st == 200 and out.split("\n\n", 1)[1].startswith("mirror\tpop2\t0\t"), out
    assert len(out.split("\n\n", 1)[1].splitlines()[0].split("\t")) == 14, out
    st, out = link_get(c, "pop1", "/v1/repl/lag?x=1")
    assert st == 400, out
    # only peers: without a client certificate there is no answer
    st, out = link_get(c, "pop1", "/v1/repl/lag", cert=False)
    assert st is None, out


def test_verify_single_pop(make_node):
    """No peers: the home alone is every copy there is."""
    n = make_node("solo")
    n.add_user("alice")
    r = n.popctl("verify", "alice", check=False)
    assert r.returncode == 0 and "result: match" in r.stdout, (r.stdout, r.stderr)
    r = n.popctl("lag", "--cluster")
    assert r.stdout.splitlines()[1].split()[:3] == ["solo", "-", "none"]


# ---- deploy/lab wipe ----------------------------------------------------------------

def lab_ports(i):
    return [20000 + 100 * i + off for off in (10, 24, 43, 44, 80, 93, 95)]


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


def lab(env, *args, check=True, timeout=120):
    r = subprocess.run([LAB] + list(args), env=env, capture_output=True, text=True,
                       timeout=timeout)
    if check:
        assert r.returncode == 0, f"deploy/lab {' '.join(args)}: rc={r.returncode}\n" \
                                  f"{r.stdout}\n{r.stderr}"
    return r


def files_under(d):
    return sorted(os.path.relpath(os.path.join(r, f), d)
                  for r, _, fs in os.walk(d) for f in fs)


def lab_wait_verify(env, pop, rc, timeout=30):
    deadline = time.time() + timeout
    while True:
        r = lab(env, "popctl", pop, "verify", "demo", check=False)
        if r.returncode == rc:
            return r
        assert time.time() < deadline, (r.returncode, r.stdout, r.stderr)
        time.sleep(0.2)


def wipe_pop2(env, d):
    """The wipe scenario on a running two-POP lab in d: refused while pop2
    runs, then everything in pop2's data dir goes (the dir itself stays:
    a mount point with --tmpfs-data), and pop2 comes back empty and is
    filled again as pop1's mirror."""
    data2 = os.path.join(d, "pop2", "data")
    # pop2 mirrors pop1 (its only peer): demo's copies match
    lab_wait_verify(env, "pop1", 0)
    assert "mirror/pop1/data.mdb" in files_under(data2)

    # refused while pop2 runs; nothing deleted
    r = lab(env, "wipe", "pop2", check=False)
    assert r.returncode == 1 and "pop2 is running" in r.stderr and "stop" in r.stderr, r
    assert "mirror/pop1/data.mdb" in files_under(data2)
    r = lab(env, "wipe", "pop9", check=False)
    assert r.returncode == 1 and "unknown POP" in r.stderr
    r = lab(env, "wipe", check=False)
    assert r.returncode == 2 and "usage" in r.stderr

    lab(env, "stop", "pop2")
    before = files_under(data2)
    assert "data.mdb" in before and "mirror/pop1/data.mdb" in before
    mode = os.stat(data2).st_mode
    r = lab(env, "wipe", "--dir", d, "2")
    assert "pop2: wiped" in r.stdout and f"{len(before)} files" in r.stdout, r.stdout
    assert os.path.isdir(data2) and os.listdir(data2) == []
    assert os.stat(data2).st_mode == mode
    assert files_under(os.path.join(d, "pop1", "data")) != []     # pop1 untouched

    # pop2 starts empty and is filled again as pop1's mirror
    lab(env, "start", "pop2")
    r = lab_wait_verify(env, "pop1", 0)
    assert "result: match" in r.stdout
    assert "mirror/pop1/data.mdb" in files_under(data2)


def test_lab_wipe(tmp_path):
    busy = [p for i in (1, 2) for p in lab_ports(i) if not port_free(p)]
    if busy:
        pytest.skip(f"lab ports in use: {busy}")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = dict(os.environ, POPNODE_BIN=POPNODE, POPCTL_BIN=POPCTL, XDG_RUNTIME_DIR=str(run_dir))
    d = str(tmp_path / "lab")
    try:
        lab(env, "up", "--pops", "2", "--dir", d)
        deadline = time.time() + 40
        while True:         # 451 until pop1's start-up check is done
            try:
                with smtplib.LMTP("127.0.0.1", 20124, timeout=30) as c:
                    refused = c.sendmail("sender@example.org", ["demo@example.com"],
                                         msg("to demo"))
            except smtplib.SMTPRecipientsRefused as e:
                refused = e.recipients
            if refused == {}:
                break
            assert time.time() < deadline and \
                all(code == 451 for code, _ in refused.values()), refused
            time.sleep(0.2)
        wipe_pop2(env, d)
    finally:
        lab(env, "down", "--dir", d, check=False)


def netns_labs():
    try:
        return sorted(n for n in os.listdir("/run/netns") if n.startswith("lab-"))
    except FileNotFoundError:
        return []


@pytest.mark.skipif(os.geteuid() != 0, reason="deploy/lab --netns needs root")
@pytest.mark.skipif(shutil.which("bird") is None or shutil.which("birdc") is None,
                    reason="BIRD 2 is not installed (Debian bird2)")
def test_lab_wipe_netns(tmp_path):
    """The same in a --netns lab, pop2's data_dir on a tmpfs of its own."""
    if netns_labs():
        pytest.skip(f"namespaces of another netns lab exist: {netns_labs()}")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = dict(os.environ, POPNODE_BIN=POPNODE, POPCTL_BIN=POPCTL, XDG_RUNTIME_DIR=str(run_dir))
    d = str(tmp_path / "lab")
    try:
        lab(env, "up", "--netns", "--pops", "2", "--tmpfs-data", "2:48M", "--dir", d,
            timeout=300)
        wipe_pop2(env, d)
        assert os.path.ismount(os.path.join(d, "pop2", "data"))
    finally:
        lab(env, "down", "--dir", d, check=False, timeout=300)
