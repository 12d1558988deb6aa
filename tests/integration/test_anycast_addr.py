"""anycast/addr.c against a real kernel, inside throw-away network namespaces.

tests/integration/anycast_addr_probe.c (built by `make
build/integration/anycast_addr_probe`) drives the module; each test makes
its own namespace `popnode-test-<random>` with `any0` as one end of a veth
pair (this kernel has no dummy driver), IPv6 DAD off, and a few addresses
of its own on it that must survive everything.  What the kernel then holds
is read back with `ip -j addr show`, independently of the module.

Needs root and `ip netns`; skipped otherwise.  The namespace is always
deleted in a finally.
"""
import json
import os
import secrets
import shutil
import subprocess

import pytest

from conftest import ROOT

PROBE = os.path.join(ROOT, "build", "integration", "anycast_addr_probe")
V4 = "192.0.2.53/32"
V6 = "2001:db8::53/128"
# Addresses that are not ours: an operator's, including the service
# address itself with another prefix length.
OTHERS = ["10.99.0.1/24", "192.0.2.53/24", "2001:db8:99::1/64"]


def sh(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: rc={r.returncode}\n{r.stdout}{r.stderr}")
    return r


def netns_usable():
    if os.geteuid() != 0:
        return "needs root (network namespaces, CAP_NET_ADMIN)"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    name = "popnode-test-" + secrets.token_hex(4)
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        return f"ip netns is unavailable here: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


_why = netns_usable()
pytestmark = pytest.mark.skipif(_why is not None, reason=_why or "")


@pytest.fixture(scope="module")
def probe():
    sh("make", "-s", "-C", ROOT, "build/integration/anycast_addr_probe")
    assert os.access(PROBE, os.X_OK)
    return PROBE


def add_veth(ns, name, up=True):
    sh("ip", "-n", ns, "link", "add", name, "type", "veth", "peer", "name", name + "p")
    if up:
        sh("ip", "-n", ns, "link", "set", name + "p", "up")
        sh("ip", "-n", ns, "link", "set", name, "up")


@pytest.fixture
def ns():
    name = "popnode-test-" + secrets.token_hex(4)
    sh("ip", "netns", "add", name)
    try:
        # before any link exists, so every link inherits it
        for conf in ("default", "all"):
            sh("ip", "netns", "exec", name, "sysctl", "-qw",
               f"net.ipv6.conf.{conf}.accept_dad=0")
        add_veth(name, "any0")
        for a in OTHERS:
            extra = ["nodad"] if ":" in a else []
            sh("ip", "-n", name, "addr", "add", a, "dev", "any0", *extra)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def run(ns, probe, *args):
    r = subprocess.run(["ip", "netns", "exec", ns, probe] + list(args),
                       capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout.splitlines(), r.stderr


def ok(ns, probe, *args):
    rc, lines, err = run(ns, probe, *args)
    assert rc == 0, f"probe {' '.join(args)}: rc={rc}\n" + "\n".join(lines) + err
    return lines


def addr_info(ns, dev="any0"):
    """{"ADDR/LEN": info} for every address on dev, as the kernel reports it."""
    out = sh("ip", "-n", ns, "-j", "addr", "show", "dev", dev).stdout
    links = json.loads(out)
    assert len(links) == 1
    return {f"{a['local']}/{a['prefixlen']}": a for a in links[0].get("addr_info", [])}


def addrs(ns, dev="any0"):
    return set(addr_info(ns, dev))


def link_flags(ns, dev):
    return json.loads(sh("ip", "-n", ns, "-j", "link", "show", "dev", dev).stdout)[0]["flags"]


def test_announce_withdraw_exact(ns, probe):
    before = addrs(ns)
    assert set(OTHERS) <= before
    assert V4 not in before and V6 not in before

    lines = ok(ns, probe, "open", "any0", "announce", V4, V6, "present", V4, V6)
    assert lines[0].startswith("open ok any0 ifindex=")
    assert lines[1:] == ["announce ok 2", f"present {V4} yes", f"present {V6} yes"]
    after = addrs(ns)
    assert after == before | {V4, V6}
    # IPv6 usable at once: added with nodad, never tentative
    info = addr_info(ns)[V6]
    assert info["family"] == "inet6"
    assert not info.get("tentative") and not info.get("dadfailed"), info
    assert info.get("nodad") is True, info
    assert addr_info(ns)[V4]["family"] == "inet"

    lines = ok(ns, probe, "open", "any0", "withdraw", V4, V6, "present", V4, V6)
    assert lines[1:] == ["withdraw ok 2", f"present {V4} no", f"present {V6} no"]
    # exactly what was there before: the operator's 192.0.2.53/24 included
    assert addrs(ns) == before


def test_idempotent(ns, probe):
    before = addrs(ns)
    # withdrawing what is not there is fine
    ok(ns, probe, "open", "any0", "withdraw", V4, V6)
    assert addrs(ns) == before
    # announce twice in one run and again in another: one copy each
    ok(ns, probe, "open", "any0", "announce", V4, V6, "announce", V4, V6)
    ok(ns, probe, "open", "any0", "announce", V6, V4)
    out = sh("ip", "-n", ns, "-j", "addr", "show", "dev", "any0").stdout
    locals_ = [f"{a['local']}/{a['prefixlen']}" for a in json.loads(out)[0]["addr_info"]]
    assert locals_.count(V4) == 1 and locals_.count(V6) == 1
    assert addrs(ns) == before | {V4, V6}
    # one already there, one missing: only the missing one is added
    sh("ip", "-n", ns, "addr", "del", V6, "dev", "any0")
    ok(ns, probe, "open", "any0", "announce", V4, V6)
    assert addrs(ns) == before | {V4, V6}
    ok(ns, probe, "open", "any0", "withdraw", V4, V6, "withdraw", V4, V6)
    assert addrs(ns) == before


def test_partial_sets(ns, probe):
    """Withdrawing one prefix leaves the other; many prefixes, both families."""
    before = addrs(ns)
    many = [f"198.51.100.{i}/32" for i in range(1, 9)] + \
           [f"2001:db8:53::{i:x}/128" for i in range(1, 9)]
    ok(ns, probe, "open", "any0", "announce", *many)
    assert addrs(ns) == before | set(many)
    ok(ns, probe, "open", "any0", "withdraw", *many[:4], *many[8:12])
    assert addrs(ns) == before | set(many[4:8]) | set(many[12:])
    lines = ok(ns, probe, "open", "any0", "present", many[0], many[4])
    assert lines[1:] == [f"present {many[0]} no", f"present {many[4]} yes"]
    ok(ns, probe, "open", "any0", "withdraw", *many)
    assert addrs(ns) == before


def test_other_interface_untouched(ns, probe):
    """The same prefix on another interface is not ours to see or delete."""
    add_veth(ns, "eth9")
    sh("ip", "-n", ns, "addr", "add", V4, "dev", "eth9")
    lines = ok(ns, probe, "open", "any0", "present", V4)
    assert lines[1:] == [f"present {V4} no"]
    ok(ns, probe, "open", "any0", "announce", V4)
    ok(ns, probe, "open", "any0", "withdraw", V4)
    assert V4 in addrs(ns, "eth9")
    assert V4 not in addrs(ns)


def test_down_interface_is_set_up(ns, probe):
    add_veth(ns, "any1", up=False)
    assert "UP" not in link_flags(ns, "any1")
    ok(ns, probe, "open", "any1", "announce", V4)
    assert "UP" in link_flags(ns, "any1")
    assert V4 in addrs(ns, "any1")


def test_lo(ns, probe):
    before = addrs(ns, "lo")
    ok(ns, probe, "open", "lo", "announce", V4, V6)
    after = addrs(ns, "lo")
    assert after >= {"127.0.0.1/8", "::1/128", V4, V6}
    assert after == before | {"127.0.0.1/8", "::1/128", V4, V6}  # lo was set up
    ok(ns, probe, "open", "lo", "withdraw", V4, V6)
    assert addrs(ns, "lo") == {"127.0.0.1/8", "::1/128"}


def test_missing_interface(ns, probe):
    rc, lines, _ = run(ns, probe, "open", "nope0")
    assert rc == 1
    assert lines == ["open error: interface nope0 does not exist (create it, or set "
                     "anycast_create_dummy yes where the kernel has the dummy driver)"]
    rc, lines, _ = run(ns, probe, "open", "bad/name")
    assert rc == 1 and "not a valid interface name" in lines[0]


def kernel_has_dummy(ns):
    r = sh("ip", "-n", ns, "link", "add", "pdummy0", "type", "dummy", check=False)
    if r.returncode == 0:
        sh("ip", "-n", ns, "link", "del", "pdummy0")
        return True
    return False


def test_create_dummy(ns, probe):
    if kernel_has_dummy(ns):
        lines = ok(ns, probe, "open", "svc0", "--create-dummy", "announce", V4, V6)
        assert lines[1] == "announce ok 2"
        link = json.loads(sh("ip", "-n", ns, "-d", "-j", "link", "show", "dev",
                             "svc0").stdout)[0]
        assert link["linkinfo"]["info_kind"] == "dummy"
        assert "UP" in link["flags"]
        assert addrs(ns, "svc0") >= {V4, V6}
        # a second open finds it and does not fail
        ok(ns, probe, "open", "svc0", "--create-dummy", "present", V4)
        return
    # This kernel has no dummy driver: the clear message, and nothing made.
    rc, lines, _ = run(ns, probe, "open", "svc0", "--create-dummy", "announce", V4)
    assert rc == 1
    assert len(lines) == 1
    msg = lines[0]
    assert msg.startswith("open error: interface svc0 does not exist and cannot be created: "
                          "this kernel has no dummy driver (CONFIG_DUMMY)"), msg
    assert "ip link add svc0 type veth peer name svc0p" in msg
    assert "such as lo" in msg and "anycast_create_dummy no" in msg
    r = sh("ip", "-n", ns, "link", "show", "dev", "svc0", check=False)
    assert r.returncode != 0


def test_bad_prefix(ns, probe):
    before = addrs(ns)
    rc, lines, _ = run(ns, probe, "open", "any0", "announce", V4, "192.0.2.53/33")
    assert rc == 1
    assert lines[1] == ("announce error: 192.0.2.53/33: the prefix length must be a number "
                        "from 1 to 32")
    assert addrs(ns) == before  # parsed first, nothing applied
