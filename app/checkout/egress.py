"""The only way out of the setup sandbox: an HTTP(S) proxy that lets through package registries and nothing else.

A repository's `setup:` commands come from `.github/honk.yml`, which anyone who can write to the repository
controls, so they are untrusted code that nonetheless needs to download dependencies. They run in a
bubblewrap sandbox with a network namespace of its own (`--unshare-net`: only a loopback interface, no
route anywhere). The one thing inside that leads out is a Unix socket bound into the sandbox at
`SOCKET_IN_SANDBOX`; `wrap()` starts socat inside the sandbox to bridge `127.0.0.1:PROXY_PORT` to it, and
`sandbox_env()` points the usual proxy variables there. On the host end of the socket `EgressProxy`:

- accepts `CONNECT host:port` (HTTPS tunnels) and plain HTTP requests in absolute form
  (`GET http://host/path HTTP/1.1`), one request per connection (it forces `Connection: close`);
- lets a request through only when the host name is on the allowlist (`DEFAULT_ALLOWED_HOSTS` plus
  `HONK_SETUP_ALLOWED_HOSTS`) and the port is 80 or 443; IP literals never pass;
- resolves the name itself and refuses it when ANY address is not public (loopback, private, link-local,
  CGNAT, multicast, reserved, and the IPv6 forms that embed such an IPv4 address), then connects to an
  address it checked, so a name cannot be re-resolved to somewhere else between check and use;
- answers a refusal with `403` and a one-line reason, and records it in `blocked` for the job's report.

The same pattern as Anthropic's sandbox-runtime for Claude Code (bubblewrap, a filtering proxy on a Unix
socket, socat inside); the default list follows the registry part of GitHub Copilot coding agent's
recommended firewall allowlist.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import shutil
import socket
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from app.hosts import DEFAULT_ALLOWED_HOSTS, Allowlist, is_ip_literal, normalize_host

if TYPE_CHECKING:
    from app.settings import Settings

log = logging.getLogger("honk.egress")

ALLOWED_PORTS: frozenset[int] = frozenset({80, 443})
SETTING = "HONK_SETUP_ALLOWED_HOSTS"

# Inside the sandbox: where the proxy's socket is bound, and the loopback port socat listens on.
SOCKET_IN_SANDBOX = "/run/honk/egress.sock"
PROXY_PORT = 3128

HEADER_LIMIT = 64 * 1024  # bytes of request line and headers
HEADER_TIMEOUT = 30.0  # seconds to send them: a client that trickles them holds a connection slot
CONNECT_TIMEOUT = 15.0
IDLE_TIMEOUT = 120.0  # a tunnel with no traffic either way for this long is closed
MAX_CONNECTIONS = 256  # npm alone opens a few dozen at once
MAX_BLOCKED = 100  # distinct refusals kept for the report
CHUNK = 64 * 1024
LINGER = 2.0  # seconds, and bytes below, a refused client may go on sending before the connection is cut
LINGER_BYTES = 1024 * 1024

Resolver = Callable[[str, int], Awaitable[list[str]]]
Connector = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


class EgressUnavailable(RuntimeError):
    """The filtered network cannot be set up on this machine; worded for the operator."""


@dataclass(frozen=True)
class Blocked:
    """A request the proxy refused: what was asked for and why, in a few words."""

    host: str
    port: int
    reason: str

    @property
    def message(self) -> str:
        return f"honk egress: {self.host} {self.reason}"


# Addresses

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public_address(text: str) -> bool:
    """True only for a globally routable unicast address. `is_global` alone is not enough: it holds for
    multicast, for IPv6 site-local, and for IPv6 forms that carry an IPv4 address inside (6to4, NAT64)."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public_address(str(address.ipv4_mapped))
        if address in _NAT64:  # a NAT64 gateway forwards to the embedded IPv4 address: judge that one
            return is_public_address(str(ipaddress.IPv4Address(address.packed[-4:])))
        embedded = [address.sixtofour, *(address.teredo or ())]
        if any(v4 is not None and not is_public_address(str(v4)) for v4 in embedded):
            return False
        if address.is_site_local:
            return False
    return address.is_global and not (address.is_multicast or address.is_private or address.is_reserved
                                      or address.is_loopback or address.is_link_local or address.is_unspecified)


async def default_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def default_connect(address: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(address, port, limit=CHUNK)


# The sandbox's side

def sandbox_env(port: int = PROXY_PORT) -> dict[str, str]:
    """Proxy variables for the setup commands. NO_PROXY is empty on purpose: everything, loopback included,
    goes through the filter (inside the sandbox loopback holds nothing but the bridge; without a sandbox it
    is the host's, Honk's own ports included)."""
    url = f"http://127.0.0.1:{port}"  # an address, not `localhost`: nothing to resolve, no ::1 to try first
    return {
        # curl reads only the lower-case http_proxy; most others read either case.
        "http_proxy": url, "https_proxy": url, "HTTP_PROXY": url, "HTTPS_PROXY": url,
        "no_proxy": "", "NO_PROXY": "",
        # npm and pnpm read the environment too; yarn 1 only reads these npm config names.
        "npm_config_proxy": url, "npm_config_https_proxy": url,
        # yarn berry reads neither.
        "YARN_HTTP_PROXY": url, "YARN_HTTPS_PROXY": url,
        # JVM tools (Maven, Gradle and its wrapper) ignore the variables and read system properties only.
        "JAVA_TOOL_OPTIONS": (f"-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort={port} "
                              f"-Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort={port}"),
    }


# Started by `wrap()` inside the sandbox: the bridge, then a wait until it listens (seen in /proc/net/tcp,
# without connecting to it), then the command itself. socat keeps no pipe of the command's output open, so
# a finished command is not kept waiting for it; bubblewrap's PID namespace ends it with the command.
_BRIDGE = r"""
port=$1 socket=$2
shift 2
socat "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$socket" </dev/null >/dev/null 2>&1 &
bridge=$!
listening=$(printf ':%04X 00000000:0000 0A' "$port")
tries=0
until grep -q "$listening" /proc/net/tcp 2>/dev/null; do
  tries=$((tries + 1))
  if [ "$tries" -gt 1000 ] || ! kill -0 "$bridge" 2>/dev/null; then
    echo "honk: the network bridge for setup (socat) did not start" >&2
    exit 125
  fi
  sleep 0.01
done
unset port socket bridge listening tries
exec "$@"
"""


def require_socat() -> str:
    path = shutil.which("socat")
    if path is None:
        raise EgressUnavailable("socat is not installed; install it (apt-get install socat) so that setup "
                                "commands can reach package registries through Honk's filter")
    return path


def wrap(command: list[str], port: int = PROXY_PORT, socket_path: str = SOCKET_IN_SANDBOX) -> list[str]:
    """`command` preceded by the bridge from `127.0.0.1:port` to the proxy's socket, all inside the sandbox.
    The sandbox sees the host's /usr, so socat must be installed on the host."""
    require_socat()
    return ["/bin/bash", "--noprofile", "--norc", "-c", _BRIDGE, "honk-egress", str(port), socket_path, *command]


# The proxy

class _Refused(Exception):
    def __init__(self, status: int, reason: str, blocked: Blocked | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.blocked = blocked


_STATUS_TEXT = {400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed", 431: "Request Header Fields Too Large",
                502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Hop-by-hop headers, and the client's proxy credentials, are not forwarded.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate",
                         "te", "trailer", "upgrade"})


@dataclass
class _Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]


class EgressProxy:
    """The filtering proxy, on a Unix socket in a private temporary directory while the context is open.

    `blocked` lists refusals (deduplicated, in order, the first MAX_BLOCKED; `blocked_more` counts the rest);
    `allowed` counts what went through, by `host:port`.
    With `tcp=True` it also listens on an ephemeral port of the host's loopback (`tcp_port`), for
    HONK_SANDBOX=none, where there is no sandbox to bridge into."""

    def __init__(self, allowed_hosts: Iterable[str] = DEFAULT_ALLOWED_HOSTS, *, resolve: Resolver | None = None,
                 connect: Connector | None = None, ports: Iterable[int] = ALLOWED_PORTS, tcp: bool = False,
                 max_connections: int = MAX_CONNECTIONS, connect_timeout: float = CONNECT_TIMEOUT,
                 idle_timeout: float = IDLE_TIMEOUT, header_timeout: float = HEADER_TIMEOUT,
                 header_limit: int = HEADER_LIMIT) -> None:
        self.allowlist = Allowlist(allowed_hosts)
        self.resolve = resolve or default_resolve
        self.connect = connect or default_connect
        self.ports = frozenset(ports)
        self.tcp = tcp
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.header_timeout = header_timeout
        self.header_limit = header_limit
        self.blocked: list[Blocked] = []
        self.blocked_more = 0  # refusals past MAX_BLOCKED distinct ones, counted but not kept
        self.allowed: Counter[str] = Counter()
        self.tcp_port: int | None = None
        self._dir: Path | None = None
        self._servers: list[asyncio.Server] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @classmethod
    def for_settings(cls, settings: Settings, **kwargs: object) -> EgressProxy:
        """The proxy for a setup step under these settings: their allowlist, and a loopback port when
        HONK_SANDBOX=none (nothing to bridge into)."""
        return cls(settings.setup_allowed_hosts, tcp=settings.honk_sandbox == "none", **kwargs)  # type: ignore[arg-type]

    @property
    def socket_path(self) -> Path:
        if self._dir is None:
            raise RuntimeError("the egress proxy is not running (use `async with EgressProxy(...)`)")
        return self._dir / "egress.sock"

    async def __aenter__(self) -> EgressProxy:
        self._dir = Path(tempfile.mkdtemp(prefix="honk-egress-"))  # mode 0700: only Honk's user reaches it
        try:
            self._servers.append(await asyncio.start_unix_server(self._accept, path=str(self.socket_path),
                                                                 limit=self.header_limit))
            if self.tcp:
                server = await asyncio.start_server(self._accept, "127.0.0.1", 0, limit=self.header_limit)
                self._servers.append(server)
                self.tcp_port = server.sockets[0].getsockname()[1]
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop listening, cut every open connection and tunnel, remove the socket's directory."""
        for server in self._servers:
            server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()
        self.tcp_port = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # One client connection

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            if len(self._handlers) > self.max_connections:
                await self._answer(reader, writer, 503, "honk egress: too many connections at once")
                return
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away or stalled: nothing to answer
        except asyncio.CancelledError:
            # Only `aclose` cancels a handler. Ending normally matters on Python 3.11, whose stream protocol
            # logs a spurious error for a cancelled connection callback.
            pass
        except Exception:
            log.exception("egress proxy: unexpected error")  # a bug here must not take the proxy down
        finally:
            self._writers.discard(writer)
            writer.close()
            self._handlers.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self.header_timeout):
                head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            await self._answer(reader, writer, 431, "honk egress: request headers too large")
            return
        except asyncio.IncompleteReadError:
            return  # closed before a whole request: a probe, or nothing at all
        try:
            request = _parse_head(head)
            if request.method == "CONNECT":
                host, port = _authority(request.target, default_port=None)
            else:
                host, port, path = _absolute_uri(request.target)
            host, addresses = await self._check(host, port)
            upstream = await self._open(addresses, port, host)
        except _Refused as refusal:
            if refusal.blocked is not None:
                self._block(refusal.blocked)
            await self._answer(reader, writer, refusal.status, refusal.reason)
            return
        up_reader, up_writer = upstream
        self._writers.add(up_writer)
        self.allowed[f"{host}:{port}"] += 1
        try:
            if request.method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            else:
                up_writer.write(_forward_head(request, host, port, path))
            await self._relay(reader, writer, up_reader, up_writer)
        finally:
            self._writers.discard(up_writer)
            up_writer.close()

    async def _check(self, host: str, port: int) -> tuple[str, list[str]]:
        """The policy: name, allowlist, port, then every address the name has. Returns the normalized name and
        the addresses to connect to, all checked."""
        if is_ip_literal(host):
            raise _Refused(403, f"honk egress: {host} is an IP address; setup may only reach host names on the "
                                f"setup allowlist ({SETTING})", Blocked(host, port, "is an IP address"))
        name = normalize_host(host)
        if name is None:
            raise _Refused(400, f"honk egress: {host!r} is not a host name")
        if not self.allowlist.allows(name):
            raise _Refused(403, f"honk egress: {name} is not on the setup allowlist ({SETTING})",
                           Blocked(name, port, "is not on the setup allowlist"))
        if port not in self.ports:
            allowed = ", ".join(str(p) for p in sorted(self.ports))
            raise _Refused(403, f"honk egress: {name} on port {port}: only ports {allowed} are allowed",
                           Blocked(name, port, f"on port {port}: only ports {allowed} are allowed"))
        try:
            async with asyncio.timeout(self.connect_timeout):
                addresses = await self.resolve(name, port)
        except (OSError, TimeoutError) as exc:
            raise _Refused(502, f"honk egress: cannot resolve {name}: {getattr(exc, 'strerror', None) or exc}"
                           ) from None
        if not addresses:
            raise _Refused(502, f"honk egress: cannot resolve {name}: no addresses")
        # One bad address refuses the name: a rebinding name that answers public and private by turns
        # gets nowhere, and connecting only to checked addresses means nothing is resolved after the check.
        if not all(is_public_address(a) for a in addresses):
            raise _Refused(403, f"honk egress: {name} resolves to a non-public address",
                           Blocked(name, port, "resolves to a non-public address"))
        return name, addresses

    async def _open(self, addresses: list[str], port: int,
                    host: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to the first checked address that answers (an IPv6 address first in the list may have
        no route on this host), within one overall timeout."""
        error: OSError | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                for address in addresses:
                    try:
                        return await self.connect(address, port)
                    except OSError as exc:
                        error = exc
        except TimeoutError:
            raise _Refused(504, f"honk egress: connecting to {host}:{port} timed out") from None
        reason = (error.strerror or str(error)) if error is not None else "no address"
        raise _Refused(502, f"honk egress: cannot connect to {host}:{port}: {reason}")

    def _block(self, blocked: Blocked) -> None:
        if blocked in self.blocked:
            return
        if len(self.blocked) >= MAX_BLOCKED:  # setup could ask for endless names; the report stays short
            self.blocked_more += 1
            return
        self.blocked.append(blocked)
        log.info("egress refused: %s", blocked.message)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int,
                      reason: str) -> None:
        body = (reason + "\n").encode()
        writer.write(f"HTTP/1.1 {status} {_STATUS_TEXT.get(status, 'Error')}\r\n"
                     f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
                     f"X-Honk-Egress: refused\r\nConnection: close\r\n\r\n".encode() + body)
        with contextlib.suppress(ConnectionError, TimeoutError):
            async with asyncio.timeout(LINGER):
                await writer.drain()
                # Closing a socket with unread input resets it, and the client may lose the answer with it:
                # say we are done, then drop what the client still sends until it closes too (bounded).
                if writer.can_write_eof():
                    writer.write_eof()
                discarded = 0
                while discarded < LINGER_BYTES and (data := await reader.read(CHUNK)):
                    discarded += len(data)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
        """Copy both ways until the server is done, or nothing moved either way for `idle_timeout`."""
        last = [time.monotonic()]
        to_server = asyncio.ensure_future(_pipe(reader, up_writer, last))
        to_client = asyncio.ensure_future(_pipe(up_reader, writer, last))
        try:
            pending = {to_server, to_client}
            while to_client in pending:  # the client's EOF alone ends nothing: the answer may still come
                remaining = last[0] + self.idle_timeout - time.monotonic()
                if remaining <= 0:
                    break
                _, pending = await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (to_server, to_client):
                task.cancel()
            await asyncio.gather(to_server, to_client, return_exceptions=True)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, last: list[float]) -> None:
    try:
        while data := await src.read(CHUNK):
            last[0] = time.monotonic()
            dst.write(data)
            await dst.drain()
            last[0] = time.monotonic()
        if dst.can_write_eof():
            dst.write_eof()  # pass the half-close on: TLS and HTTP both finish cleanly
    except (ConnectionError, OSError):
        pass


def _parse_head(head: bytes) -> _Request:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if (len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or parts[2] not in ("HTTP/1.0", "HTTP/1.1")
            or not parts[1] or any(ord(c) < 0x21 or ord(c) > 0x7e for c in parts[1])):
        raise _Refused(400, "honk egress: not an HTTP/1.x proxy request")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.fullmatch(name):  # also refuses obsolete folded lines (leading space)
            raise _Refused(400, "honk egress: malformed header line")
        headers.append((name, value.strip()))
    return _Request(parts[0].upper(), parts[1], parts[2], headers)


def _authority(text: str, default_port: int | None) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) into its parts."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ("" if not rest else None)
        if not sep or port_text is None:
            raise _Refused(400, "honk egress: malformed authority")
    else:
        host, _, port_text = text.rpartition(":") if ":" in text else (text, "", "")
    if "@" in host or not host:
        raise _Refused(400, "honk egress: malformed authority")
    if not port_text:
        if default_port is None:
            raise _Refused(400, "honk egress: CONNECT needs host:port")
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _Refused(400, "honk egress: malformed port")
    return host, int(port_text)


def _absolute_uri(target: str) -> tuple[str, int, str]:
    """An absolute-form request target into host, port and the origin-form path to send upstream."""
    if not target.lower().startswith("http://"):
        raise _Refused(400, "honk egress: a proxy request needs an absolute http:// URL "
                            "(HTTPS goes through CONNECT)")
    try:
        parts = urlsplit(target)
    except ValueError:
        raise _Refused(400, "honk egress: malformed URL") from None
    if "@" in parts.netloc:
        raise _Refused(400, "honk egress: credentials in a proxied URL are not supported")
    host, port = _authority(parts.netloc, default_port=80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if any(c in path for c in " \r\n"):
        raise _Refused(400, "honk egress: malformed URL")
    return host, port, path


def _forward_head(request: _Request, host: str, port: int, path: str) -> bytes:
    # Headers that the client's Connection header names are hop-by-hop too.
    named = {token.strip().lower() for name, value in request.headers if name.lower() == "connection"
             for token in value.split(",")}
    authority = host if port == 80 else f"{host}:{port}"
    lines = [f"{request.method} {path} {request.version}", f"Host: {authority}"]
    lines += [f"{name}: {value}" for name, value in request.headers
              if name.lower() not in _HOP_BY_HOP and name.lower() not in named and name.lower() != "host"]
    # One request per connection: the server closes after its answer, which also ends the relay.
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
