"""The setup step's way out: the egress proxy's policy, its protocol handling, and the real sandbox around it.

No packet leaves the machine. The registry is a stand-in HTTP server on 127.0.0.1; the proxy reaches it
because the tests inject a resolver that gives `registry.example.com` a public address (PUBLIC) and a
connector that routes exactly that address to the stand-in's loopback port, and refuses any other.

The bubblewrap tests skip, saying why, without bwrap, socat or curl; with HONK_REQUIRE_BWRAP=1 they fail
instead, so a CI machine cannot pass them by skipping.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import stat
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from app.checkout.egress import (
    PROXY_PORT,
    SOCKET_IN_SANDBOX,
    Blocked,
    EgressProxy,
    is_public_address,
    sandbox_env,
    wrap,
)
from app.checkout.sandbox import Sandbox, SandboxError
from app.hosts import DEFAULT_ALLOWED_HOSTS, Allowlist, parse_allowlist
from app.settings import SettingsError, load_settings

T = TypeVar("T")

# Read at import time: the make_settings fixture clears HONK_* variables from the environment.
REQUIRE_BWRAP = os.environ.get("HONK_REQUIRE_BWRAP") == "1"
PUBLIC = "93.184.215.14"  # what the injected resolver gives the stand-in registry; never connected to
REGISTRY = "registry.example.com"
NO_ROUTE = "2606:4700::1111"  # the injected connector answers "Network is unreachable", as without IPv6
ALLOWED = [REGISTRY, "rebind.example.com", "private.example.com", "mixed.example.com", "dual.example.com",
           "*.cdn.example.net"]
ADDRESSES = {REGISTRY: [PUBLIC], "files.cdn.example.net": [PUBLIC], "rebind.example.com": ["127.0.0.1"],
             "private.example.com": ["10.0.0.1"], "mixed.example.com": [PUBLIC, "169.254.169.254"],
             "dual.example.com": [NO_ROUTE, PUBLIC]}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# Stand-ins: the registry, and Honk's own /metrics

@dataclass
class StandIn:
    """A minimal HTTP server on 127.0.0.1: records each request's head and body, answers with its path."""

    name: str
    port: int = 0
    requests: list[tuple[str, bytes]] = field(default_factory=list)
    connections: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            length = next((int(line.split(":", 1)[1]) for line in head.split("\r\n")
                           if line.lower().startswith("content-length:")), 0)
            body = await reader.readexactly(length) if length else b""
            self.requests.append((head, body))
            path = head.split(" ")[1]
            text = f"hello from the {self.name}: {path} ({len(body)} bytes in)\n".encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(text), text))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(name: str) -> AsyncIterator[StandIn]:
    stand_in = StandIn(name)
    server = await asyncio.start_server(stand_in.handle, "127.0.0.1", 0)
    stand_in.port = server.sockets[0].getsockname()[1]
    async with server:
        yield stand_in


@dataclass
class Network:
    """The injected resolver and connector: the only ways the proxy under test finds and reaches anything."""

    registry_port: int
    resolved: list[str] = field(default_factory=list)
    connected: list[tuple[str, int]] = field(default_factory=list)

    async def resolve(self, host: str, port: int) -> list[str]:
        self.resolved.append(host)
        if host not in ADDRESSES:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return ADDRESSES[host]

    async def connect(self, address: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.connected.append((address, port))
        if address == NO_ROUTE:
            raise OSError(101, "Network is unreachable")
        if address != PUBLIC:  # the proxy connected somewhere it should have refused: never follow it
            raise AssertionError(f"the proxy tried to connect to {address}:{port}")
        return await asyncio.open_connection("127.0.0.1", self.registry_port)


@asynccontextmanager
async def egress(**kwargs: Any) -> AsyncIterator[tuple[EgressProxy, StandIn, Network]]:
    async with serving("registry") as registry:
        network = Network(registry.port)
        async with EgressProxy(kwargs.pop("allowed", ALLOWED), resolve=network.resolve, connect=network.connect,
                               **kwargs) as proxy:
            yield proxy, registry, network


async def exchange(proxy: EgressProxy, request: bytes, *, then: bytes = b"") -> bytes:
    """Send `request` over the proxy's socket (and `then` once it answers 200) and read until it closes."""
    reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
    try:
        writer.write(request)
        if then:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                return head + await reader.read()
            writer.write(then)
            return head + await asyncio.wait_for(reader.read(), 10)
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def body(answer: bytes) -> str:
    return answer.partition(b"\r\n\r\n")[2].decode()


# The allowlist

def test_allowlist_matches_names_and_wildcards() -> None:
    allowlist = Allowlist(["pypi.org", "*.pythonhosted.org", "Registry.NPMJS.org."])
    for host in ("pypi.org", "PyPI.org", "pypi.org.", "files.pythonhosted.org", "a.b.pythonhosted.org",
                 "registry.npmjs.org"):
        assert allowlist.allows(host), host
    for host in ("pythonhosted.org", "evilpythonhosted.org", "pypi.org.evil.com", "xpypi.org", "www.pypi.org",
                 "pypi.org:443", "", "*.pythonhosted.org", "127.0.0.1", "::1", "[::1]", "2130706433", "0x7f.1",
                 "pypi\u0131.org", "pypi.org/x"):
        assert not allowlist.allows(host), host


def test_allowlist_entries_are_validated() -> None:
    assert parse_allowlist(" github.com, *.GitHubUserContent.com\n\tgithub.com example.org. ") == (
        "github.com", "*.githubusercontent.com", "example.org")
    assert parse_allowlist("") == ()
    for bad, why in [("https://github.com", "scheme"), ("github.com:443", "port"), ("github.com/org", "path"),
                     ("10.0.0.1", "IP address"), ("127.1", "IP address"), ("[::1]", "IPv6"), ("::1", "IPv6"),
                     ("*.com", "too broad"), ("*", "not a host name"), ("a..b", "not a host name"),
                     ("git*.com", "not a host name"), ("under_score.com", "not a host name")]:
        with pytest.raises(ValueError, match=why):
            parse_allowlist(f"pypi.org {bad}")


def test_the_setting_extends_the_default_list_and_names_itself_when_wrong() -> None:
    settings = load_settings(_env_file=None, honk_setup_allowed_hosts="github.com,*.githubusercontent.com")
    assert settings.setup_allowed_hosts == (*DEFAULT_ALLOWED_HOSTS, "github.com", "*.githubusercontent.com")
    assert load_settings(_env_file=None).setup_allowed_hosts == DEFAULT_ALLOWED_HOSTS
    with pytest.raises(SettingsError, match=r"HONK_SETUP_ALLOWED_HOSTS: 'http://mirror.internal:8080' has a scheme"):
        load_settings(_env_file=None, honk_setup_allowed_hosts="pypi.org http://mirror.internal:8080")
    Allowlist(DEFAULT_ALLOWED_HOSTS)  # the defaults pass their own validation
    assert not EgressProxy.for_settings(settings).tcp
    unsandboxed = EgressProxy.for_settings(settings.model_copy(update={"honk_sandbox": "none"}))
    assert unsandboxed.tcp and unsandboxed.allowlist.allows("raw.githubusercontent.com")
    for host in ("pypi.org", "files.pythonhosted.org", "registry.npmjs.org", "proxy.golang.org", "index.crates.io",
                 "rubygems.org", "repo.maven.apache.org"):
        assert Allowlist(DEFAULT_ALLOWED_HOSTS).allows(host)


# The address policy

@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10", "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.254", "192.168.1.1",
    "169.254.169.254", "169.254.0.1", "100.64.0.1", "100.127.255.254", "0.0.0.0", "0.1.2.3", "255.255.255.255",
    "224.0.0.1", "239.255.255.250", "240.0.0.1", "192.0.2.1", "198.18.0.1",
    "::1", "::", "fc00::1", "fd12:3456::1", "fe80::1", "fe80::1%eth0", "fec0::1", "ff02::1", "2001:db8::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
    "2002:7f00:1::1",  # 6to4 around 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 around 169.254.169.254
    "64:ff9b::a00:1",  # NAT64 around 10.0.0.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "not an address", "",
])
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", [PUBLIC, "8.8.8.8", "151.101.0.223", "2606:4700::1111",
                                     "::ffff:93.184.215.14", "64:ff9b::5db8:d70e"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public_address(address)


# The proxy, over its Unix socket

def test_connect_tunnels_to_an_allowlisted_registry() -> None:
    async def main() -> tuple[bytes, EgressProxy, StandIn, Network]:
        async with egress() as (proxy, registry, network):
            answer = await exchange(proxy, f"CONNECT {REGISTRY}:443 HTTP/1.1\r\nHost: {REGISTRY}:443\r\n\r\n".encode(),
                                    then=f"GET /simple/ HTTP/1.1\r\nHost: {REGISTRY}\r\n\r\n".encode())
            return answer, proxy, registry, network

    answer, proxy, _, network = run(main())
    assert answer.startswith(b"HTTP/1.1 200 Connection Established\r\n\r\nHTTP/1.1 200 OK")
    assert body(answer.partition(b"\r\n\r\n")[2]) == "hello from the registry: /simple/ (0 bytes in)\n"
    assert network.connected == [(PUBLIC, 443)] and network.resolved == [REGISTRY]
    assert proxy.allowed == {f"{REGISTRY}:443": 1} and proxy.blocked == []


def test_plain_http_is_forwarded_in_origin_form_with_connection_close() -> None:
    request = (f"POST http://{REGISTRY.upper()}./upload/pkg?x=1&y=2 HTTP/1.1\r\nHost: elsewhere.example\r\n"
               "Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic c2VjcmV0\r\nConnection: keep-alive, "
               "X-Hop\r\nX-Hop: 1\r\nX-Kept: yes\r\nContent-Length: 5\r\n\r\nhello").encode()

    async def main() -> tuple[bytes, StandIn, Network]:
        async with egress() as (proxy, registry, network):
            answer = await exchange(proxy, request)
            again = await exchange(proxy, f"GET http://{REGISTRY}:443/ HTTP/1.0\r\n\r\n".encode())
            assert status(again) == 200
            return answer, registry, network

    answer, registry, network = run(main())
    assert status(answer) == 200 and body(answer) == "hello from the registry: /upload/pkg?x=1&y=2 (5 bytes in)\n"
    head, sent = registry.requests[0]
    lines = head.split("\r\n")
    assert lines[0] == "POST /upload/pkg?x=1&y=2 HTTP/1.1" and sent == b"hello"
    assert f"Host: {REGISTRY}" in lines and "Connection: close" in lines and "X-Kept: yes" in lines
    assert not [line for line in lines if line.lower().startswith(("proxy-", "x-hop", "connection: keep"))]
    second = registry.requests[1][0]
    assert second.startswith("GET / HTTP/1.0\r\n") and f"Host: {REGISTRY}:443" in second
    assert network.connected == [(PUBLIC, 80), (PUBLIC, 443)]


def test_wildcard_entries_reach_subdomains() -> None:
    async def main() -> bytes:
        async with egress() as (proxy, _, _):
            return await exchange(proxy, b"GET http://files.cdn.example.net/a.whl HTTP/1.1\r\n\r\n")

    assert status(run(main())) == 200


def test_hosts_off_the_allowlist_are_refused_and_recorded() -> None:
    async def main() -> tuple[list[bytes], EgressProxy, Network]:
        async with egress() as (proxy, _, network):
            answers = [await exchange(proxy, request) for request in (
                b"CONNECT evil.example.org:443 HTTP/1.1\r\n\r\n",
                b"GET http://evil.example.org/exfiltrate HTTP/1.1\r\n\r\n",
                b"CONNECT EVIL.example.org.:443 HTTP/1.1\r\n\r\n",  # the same host: recorded once
                b"CONNECT cdn.example.net:443 HTTP/1.1\r\n\r\n",  # *.cdn.example.net does not cover its apex
                b"GET http://localhost:9090/metrics HTTP/1.1\r\n\r\n",
                b"GET http://127.0.0.1:9090/metrics HTTP/1.1\r\n\r\n",
                b"CONNECT [::1]:443 HTTP/1.1\r\n\r\n",
                b"CONNECT 169.254.169.254:80 HTTP/1.1\r\n\r\n",
                b"GET http://2130706433/ HTTP/1.1\r\n\r\n",
                b"CONNECT registry.example.com:22 HTTP/1.1\r\n\r\n",
            )]
            return answers, proxy, network

    answers, proxy, network = run(main())
    assert [status(a) for a in answers] == [403] * len(answers)
    assert body(answers[0]) == ("honk egress: evil.example.org is not on the setup allowlist "
                                "(HONK_SETUP_ALLOWED_HOSTS)\n")
    assert "127.0.0.1 is an IP address" in body(answers[5]) and "only ports 80, 443" in body(answers[9])
    assert proxy.blocked == [
        Blocked("evil.example.org", 443, "is not on the setup allowlist"),
        Blocked("evil.example.org", 80, "is not on the setup allowlist"),
        Blocked("cdn.example.net", 443, "is not on the setup allowlist"),
        Blocked("localhost", 9090, "is not on the setup allowlist"),
        Blocked("127.0.0.1", 9090, "is an IP address"),
        Blocked("::1", 443, "is an IP address"),
        Blocked("169.254.169.254", 80, "is an IP address"),
        Blocked("2130706433", 80, "is an IP address"),
        Blocked(REGISTRY, 22, "on port 22: only ports 80, 443 are allowed"),
    ]
    assert proxy.blocked[0].message == "honk egress: evil.example.org is not on the setup allowlist"
    assert network.resolved == [] and network.connected == [] and not proxy.allowed  # refused before any lookup


@pytest.mark.parametrize("host", ["rebind.example.com", "private.example.com", "mixed.example.com"])
def test_allowlisted_names_that_resolve_to_non_public_addresses_are_refused(host: str) -> None:
    async def main() -> tuple[bytes, bytes, EgressProxy, Network]:
        async with egress() as (proxy, _, network):
            tunnel = await exchange(proxy, f"CONNECT {host}:443 HTTP/1.1\r\n\r\n".encode())
            plain = await exchange(proxy, f"GET http://{host}/ HTTP/1.1\r\n\r\n".encode())
            return tunnel, plain, proxy, network

    tunnel, plain, proxy, network = run(main())
    assert status(tunnel) == status(plain) == 403
    assert body(tunnel) == f"honk egress: {host} resolves to a non-public address\n"
    assert "10.0.0.1" not in body(tunnel) and "169.254" not in body(tunnel)  # no internal address disclosed
    assert proxy.blocked == [Blocked(host, 443, "resolves to a non-public address"),
                             Blocked(host, 80, "resolves to a non-public address")]
    assert network.connected == []


def test_unresolvable_and_unreachable_hosts_are_bad_gateways_not_refusals() -> None:
    async def refusing(address: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        raise ConnectionRefusedError(111, "Connection refused")

    async def main() -> tuple[bytes, bytes, EgressProxy]:
        network = Network(registry_port=0)
        async with EgressProxy(["nowhere.example.com", REGISTRY], resolve=network.resolve,
                               connect=refusing) as proxy:
            unknown = await exchange(proxy, b"CONNECT nowhere.example.com:443 HTTP/1.1\r\n\r\n")
            down = await exchange(proxy, f"CONNECT {REGISTRY}:443 HTTP/1.1\r\n\r\n".encode())
            return unknown, down, proxy

    unknown, down, proxy = run(main())
    assert status(unknown) == 502 and "cannot resolve nowhere.example.com" in body(unknown)
    assert status(down) == 502 and f"cannot connect to {REGISTRY}:443: Connection refused" in body(down)
    assert proxy.blocked == [] and not proxy.allowed


def test_the_first_address_that_answers_is_used() -> None:
    async def main() -> tuple[bytes, Network]:
        async with egress() as (proxy, _, network):
            return await exchange(proxy, b"GET http://dual.example.com/ HTTP/1.1\r\n\r\n"), network

    answer, network = run(main())
    assert status(answer) == 200 and network.connected == [(NO_ROUTE, 80), (PUBLIC, 80)]


def test_the_record_of_refusals_is_bounded() -> None:
    async def main() -> EgressProxy:
        async with egress() as (proxy, _, _):
            for n in range(105):
                await exchange(proxy, f"CONNECT host{n}.example.org:443 HTTP/1.1\r\n\r\n".encode())
            return proxy

    proxy = run(main())
    assert len(proxy.blocked) == 100 and proxy.blocked_more == 5


def test_garbage_does_not_take_the_proxy_down(caplog: pytest.LogCaptureFixture) -> None:
    garbage = [
        b"\r\n\r\n", b"\x00\xff\xfe garbage \x80\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n",
        b"GET http://registry.example.com/ HTTP/9.9\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"CONNECT registry.example.com HTTP/1.1\r\n\r\n", b"CONNECT :443 HTTP/1.1\r\n\r\n",
        b"CONNECT registry.example.com:99999 HTTP/1.1\r\n\r\n", b"CONNECT [::1 HTTP/1.1\r\n\r\n",
        b"GET https://registry.example.com/ HTTP/1.1\r\n\r\n", b"GET ftp://registry.example.com/ HTTP/1.1\r\n\r\n",
        b"GET http://user:pw@registry.example.com/ HTTP/1.1\r\n\r\n", b"GET http:/// HTTP/1.1\r\n\r\n",
        b"GET http://[zz/ HTTP/1.1\r\n\r\n", b"GET http://registry.example.com/ HTTP/1.1\r\n folded\r\n\r\n",
        b"GET http://registry.example.com/ HTTP/1.1\r\nno colon\r\n\r\n",
        b"GET http://bad_host!/ HTTP/1.1\r\n\r\n", b"GET http://" + b"a" * 300 + b".com/ HTTP/1.1\r\n\r\n",
        b"GET http://r\xc3\xa9gistry.example.com/ HTTP/1.1\r\n\r\n",
        b"GET http://registry.example.com/\x00 HTTP/1.1\r\n\r\n",
    ]

    async def main() -> tuple[list[bytes], bytes, bytes, bytes]:
        async with egress(header_limit=4096) as (proxy, _, _):
            answers = [await exchange(proxy, request) for request in garbage]
            too_big = await exchange(proxy, b"GET http://registry.example.com/ HTTP/1.1\r\nX: " + b"a" * 10000)
            reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
            writer.write(b"CONNECT registry.exa")
            writer.write_eof()  # and no more
            half = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            _, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
            writer.write(b"GET http://registry.example.com/ HT")
            writer.close()  # gone mid-request
            fine = await exchange(proxy, f"GET http://{REGISTRY}/still-here HTTP/1.1\r\n\r\n".encode())
            return answers, too_big, half, fine

    with caplog.at_level(logging.DEBUG):
        answers, too_big, half, fine = run(main())
    assert all(status(a) in (400, 403) for a in answers), [a[:60] for a in answers]
    assert status(too_big) == 431 and half == b""
    assert status(fine) == 200 and "still-here" in body(fine)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_connections_are_bounded() -> None:
    async def main() -> tuple[bytes, bytes]:
        async with egress(max_connections=2) as (proxy, _, _):
            # Two clients that never finish their headers hold both slots.
            held = [await asyncio.open_unix_connection(str(proxy.socket_path)) for _ in range(2)]
            for _, writer in held:
                writer.write(b"GET http://")
            while len(proxy._handlers) < 2:
                await asyncio.sleep(0.01)
            busy = await exchange(proxy, f"GET http://{REGISTRY}/ HTTP/1.1\r\n\r\n".encode())
            for _, writer in held:
                writer.close()
            while proxy._handlers:
                await asyncio.sleep(0.01)
            return busy, await exchange(proxy, f"GET http://{REGISTRY}/ HTTP/1.1\r\n\r\n".encode())

    busy, later = run(main())
    assert status(busy) == 503 and "too many connections" in body(busy)
    assert status(later) == 200


def test_slow_headers_and_idle_tunnels_are_cut() -> None:
    async def main() -> tuple[bytes, bytes]:
        async with egress(idle_timeout=0.2, header_timeout=0.2) as (proxy, _, _):
            reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
            writer.write(b"GET http://")
            stalled = await asyncio.wait_for(reader.read(), 10)  # closed at the header timeout
            writer.close()
            reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
            writer.write(f"CONNECT {REGISTRY}:443 HTTP/1.1\r\n\r\n".encode())
            idle = await asyncio.wait_for(reader.read(), 10)  # a tunnel nobody uses
            writer.close()
            return stalled, idle

    stalled, idle = run(main())
    assert stalled == b""
    assert idle == b"HTTP/1.1 200 Connection Established\r\n\r\n"  # then EOF, without a word from either side


def test_leaving_the_context_closes_tunnels_and_removes_the_socket(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> tuple[Path, int, bytes]:
        async with egress() as (proxy, _, _):
            directory = proxy.socket_path.parent
            mode = stat.S_IMODE(directory.stat().st_mode)
            reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
            writer.write(f"CONNECT {REGISTRY}:443 HTTP/1.1\r\n\r\n".encode())
            await reader.readuntil(b"\r\n\r\n")
        rest = await asyncio.wait_for(reader.read(), 10)  # the open tunnel ended with the proxy
        writer.close()
        return directory, mode, rest

    with caplog.at_level(logging.DEBUG):
        directory, mode, rest = run(main())
    assert mode == 0o700 and not directory.exists() and rest == b""
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


# What the sandbox gets

def test_sandbox_env_sends_everything_through_the_proxy() -> None:
    env = sandbox_env()
    url = f"http://127.0.0.1:{PROXY_PORT}"
    assert env["http_proxy"] == env["https_proxy"] == env["HTTP_PROXY"] == env["HTTPS_PROXY"] == url
    assert env["npm_config_proxy"] == env["npm_config_https_proxy"] == url
    assert env["NO_PROXY"] == env["no_proxy"] == ""  # nothing bypasses the filter, loopback included
    assert "ALL_PROXY" not in env  # no SOCKS


def test_wrap_starts_the_bridge_then_execs_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.checkout.egress.shutil.which", lambda name: f"/usr/bin/{name}")
    argv = wrap(["/bin/bash", "-c", "pip install -e ."])
    assert argv[:3] == ["/bin/bash", "--noprofile", "--norc"]
    assert argv[-5:] == [str(PROXY_PORT), SOCKET_IN_SANDBOX, "/bin/bash", "-c", "pip install -e ."]
    assert "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" in argv[4] and 'exec "$@"' in argv[4]
    monkeypatch.setattr("app.checkout.egress.shutil.which", lambda name: None)
    with pytest.raises(RuntimeError, match=r"socat is not installed; install it \(apt-get install socat\)"):
        wrap(["true"])


def test_sandbox_takes_an_egress_proxy_never_the_host_network(repo_dir: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.checkout.egress.shutil.which", lambda name: f"/usr/bin/{name}")

    async def main() -> None:
        async with egress() as (proxy, _, _):
            argv = Sandbox(repo_dir, mode="bwrap", network=proxy).argv(["true"])
            assert "--share-net" not in argv and "--unshare-all" in argv
            run_at = argv.index("/run")
            assert argv[run_at - 1:run_at + 6] == ["--tmpfs", "/run", "--dir", "/run/honk", "--bind",
                                                   str(proxy.socket_path), SOCKET_IN_SANDBOX]
            assert ["--setenv", "https_proxy", f"http://127.0.0.1:{PROXY_PORT}"] == argv[
                argv.index("https_proxy") - 1:argv.index("https_proxy") + 2]
            assert argv[argv.index("--") + 1:][-1] == "true" and "socat" in " ".join(argv[argv.index("--"):])
            with pytest.raises(ValueError, match="tcp=True"):
                Sandbox(repo_dir, mode="none", network=proxy)
            monkeypatch.setattr("app.checkout.egress.shutil.which", lambda name: None)
            with pytest.raises(SandboxError, match="socat is not installed"):
                Sandbox(repo_dir, mode="bwrap", network=proxy)

    run(main())
    for offline in (None, False):
        argv = Sandbox(repo_dir, mode="bwrap", network=offline).argv(["true"])
        assert "--share-net" not in argv and SOCKET_IN_SANDBOX not in argv and "--setenv" in argv
        assert "http_proxy" not in argv and argv[-1] == "true"
    with pytest.raises(TypeError, match="takes an EgressProxy"):
        Sandbox(repo_dir, mode="bwrap", network=True)  # type: ignore[arg-type]


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    (tmp_path / "repo").mkdir()
    return tmp_path / "repo"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_unsandboxed_setup_still_sends_well_behaved_tools_through_the_filter(repo_dir: Path) -> None:
    """HONK_SANDBOX=none cannot filter anything; the proxy variables at least steer honest tools."""
    async def main() -> tuple[str, EgressProxy]:
        async with serving("honk metrics") as metrics, egress(tcp=True) as (proxy, _, _):
            assert proxy.tcp_port is not None
            sandbox = Sandbox(repo_dir, mode="none", network=proxy)
            assert sandbox.argv(["true"]) == ["true"]
            result = await sandbox.run(f"curl -sS http://{REGISTRY}/simple/; "
                                       f"curl -sS http://127.0.0.1:{metrics.port}/metrics")
            assert metrics.connections == 0
            return result.output, proxy

    output, proxy = run(main())
    assert "hello from the registry: /simple/" in output
    assert "127.0.0.1 is an IP address" in output and "honk metrics" not in output
    assert proxy.tcp_port is None  # closed with the proxy


# The real thing: bubblewrap, socat and curl

def _bwrap_problem() -> str | None:
    missing = [tool for tool in ("bwrap", "socat", "curl") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed (Debian: apt-get install bubblewrap socat curl)"
    return None


@pytest.fixture
def bwrap() -> None:
    problem = _bwrap_problem()
    if problem:
        if REQUIRE_BWRAP:
            pytest.fail(f"HONK_REQUIRE_BWRAP=1 but {problem}")
        pytest.skip(problem)


def in_sandbox(repo: Path, script: Callable[[int, int], str], **kwargs: Any) -> tuple[str, EgressProxy, StandIn,
                                                                                       StandIn]:
    """Run the script (given the stand-in registry's and Honk metrics' ports) in a bwrap setup sandbox."""
    async def main() -> tuple[str, EgressProxy, StandIn, StandIn]:
        async with serving("honk metrics") as metrics, egress(**kwargs) as (proxy, registry, _):
            result = await Sandbox(repo, mode="bwrap", network=proxy).run(script(registry.port, metrics.port),
                                                                          timeout=60)
            return result.output, proxy, registry, metrics
    return run(main())


def test_setup_reaches_the_allowlisted_registry_through_the_proxy(bwrap: None, repo_dir: Path) -> None:
    output, proxy, registry, _ = in_sandbox(repo_dir, lambda registry, metrics: "\n".join([
        f"curl -sS http://{REGISTRY}/simple/http",  # the proxy variables, plain HTTP
        f"curl -sS --proxytunnel http://{REGISTRY}:443/simple/tunnel",  # CONNECT, as HTTPS would
        "curl -sS -p http://files.cdn.example.net:443/wild",
        "test -S /run/honk/egress.sock && echo SOCKET-THERE",
    ]))
    assert "hello from the registry: /simple/http (0 bytes in)" in output
    assert "hello from the registry: /simple/tunnel (0 bytes in)" in output
    assert "hello from the registry: /wild" in output and "SOCKET-THERE" in output
    assert registry.connections == 3
    assert proxy.allowed == {f"{REGISTRY}:80": 1, f"{REGISTRY}:443": 1, "files.cdn.example.net:443": 1}
    assert proxy.blocked == []


def test_setup_cannot_reach_honk_or_private_addresses(bwrap: None, repo_dir: Path) -> None:
    output, proxy, registry, metrics = in_sandbox(repo_dir, lambda registry, metrics: "\n".join([
        # Directly: the sandbox's own network namespace has nothing but its loopback.
        f"curl -sS --noproxy '*' -m 10 http://127.0.0.1:{metrics} || echo DIRECT-FAILED",
        f"(exec 3<>/dev/tcp/127.0.0.1/{metrics}) 2>/dev/null && echo CONNECTED || echo TCP-REFUSED",
        f"curl -sS --noproxy '*' -m 10 http://{PUBLIC}/ || echo PUBLIC-UNREACHABLE",
        # Through the proxy: refused, with the reason.
        f"curl -sS http://127.0.0.1:{metrics}/metrics",
        f"curl -sS http://localhost:{metrics}/",
        f"curl -sS -x http://127.0.0.1:{PROXY_PORT} http://[::1]:{metrics}/",
        "curl -sS http://10.0.0.1/; curl -sS http://169.254.169.254/latest/meta-data/",
        "curl -sS http://private.example.com/ http://rebind.example.com/",
        f"curl -sS -p http://evil.example.org:443/ 2>&1; curl -sS -p http://{REGISTRY}:{registry}/ 2>&1",
        "echo END",
    ]))
    assert "DIRECT-FAILED" in output and "TCP-REFUSED" in output and "PUBLIC-UNREACHABLE" in output
    assert "CONNECTED" not in output and "honk metrics" not in output and "hello from" not in output
    assert output.count("is an IP address") == 4
    assert "honk egress: localhost is not on the setup allowlist (HONK_SETUP_ALLOWED_HOSTS)" in output
    assert "honk egress: private.example.com resolves to a non-public address" in output
    assert "honk egress: rebind.example.com resolves to a non-public address" in output
    assert "CONNECT tunnel failed, response 403" in output and output.rstrip().endswith("END")
    assert metrics.connections == 0 and registry.connections == 0
    assert {(b.host, b.reason) for b in proxy.blocked} == {
        ("127.0.0.1", "is an IP address"), ("::1", "is an IP address"), ("10.0.0.1", "is an IP address"),
        ("169.254.169.254", "is an IP address"), ("localhost", "is not on the setup allowlist"),
        ("private.example.com", "resolves to a non-public address"),
        ("rebind.example.com", "resolves to a non-public address"),
        ("evil.example.org", "is not on the setup allowlist"),
        (REGISTRY, f"on port {registry.port}: only ports 80, 443 are allowed"),
    }
