"""Hosts for fault tests: one network namespace per server, so that one of them can be cut from the database.

A bridge in the root namespace carries a /24; each host is a namespace with a veth on the bridge and an address on
it. Clients (the test) reach the servers at their addresses; the servers reach PostgreSQL through a forwarder the
test runs on the bridge's own address (`gateway`), so `cut` can drop that traffic with iptables inside one host's
namespace and `heal` can let it through again, while the host stays reachable from the clients. (`tc netem` is not
available on these machines; latency comes from `tests.delayproxy`.) Needs root; `down` removes everything `up`
made, and `up` removes what it made if it fails halfway.
"""

from __future__ import annotations

import secrets
import subprocess


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


class Hosts:
    def __init__(self, count: int) -> None:
        tag = secrets.token_hex(2)
        net = 100 + secrets.randbelow(150)
        self.bridge = f"qz{tag}b"
        self.gateway = f"10.213.{net}.1"
        self.names = [f"qz{tag}h{i}" for i in range(count)]
        self.addresses = [f"10.213.{net}.{11 + i}" for i in range(count)]
        self._veths = [(f"qz{tag}r{i}", f"qz{tag}n{i}") for i in range(count)]
        self._cuts: set[tuple[int, int]] = set()

    def up(self) -> Hosts:
        try:
            _run("ip", "link", "add", self.bridge, "type", "bridge")
            _run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _run("ip", "link", "set", self.bridge, "up")
            for name, address, (outside, inside) in zip(self.names, self.addresses, self._veths, strict=True):
                _run("ip", "netns", "add", name)
                _run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
                _run("ip", "link", "set", inside, "netns", name)
                _run("ip", "link", "set", outside, "master", self.bridge)
                _run("ip", "link", "set", outside, "up")
                _run("ip", "netns", "exec", name, "ip", "addr", "add", f"{address}/24", "dev", inside)
                _run("ip", "netns", "exec", name, "ip", "link", "set", inside, "up")
                _run("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        except BaseException:
            self.down()
            raise
        return self

    def _rules(self, host: int, port: int) -> list[list[str]]:
        """Both directions of the host's traffic with the database forwarder."""
        return [
            ["OUTPUT", "-d", self.gateway, "-p", "tcp", "--dport", str(port), "-j", "DROP"],
            ["INPUT", "-s", self.gateway, "-p", "tcp", "--sport", str(port), "-j", "DROP"],
        ]

    def cut(self, host: int, port: int) -> None:
        """Drop every packet between host `host` and the database forwarder on `port` (a partition)."""
        for rule in self._rules(host, port):
            _run("ip", "netns", "exec", self.names[host], "iptables", "-I", *rule)
        self._cuts.add((host, port))

    def heal(self, host: int, port: int) -> None:
        for rule in self._rules(host, port):
            _run("ip", "netns", "exec", self.names[host], "iptables", "-D", *rule)
        self._cuts.discard((host, port))

    def down(self) -> None:
        """Remove the namespaces (their veths and iptables rules go with them) and the bridge; never raises."""
        for name in self.names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        for outside, _ in self._veths:
            subprocess.run(["ip", "link", "del", outside], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=30)
        self._cuts.clear()
