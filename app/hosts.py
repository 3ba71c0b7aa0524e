"""Host names and allowlist patterns: the syntax of HONK_SETUP_ALLOWED_HOSTS, and the package registries that
setup commands may reach by default (the egress proxy, app/checkout/egress.py, enforces the list)."""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from collections.abc import Iterable

# Package registries, and the few toolchain hosts their clients fetch from as a matter of course. Kept to
# what installs dependencies: source hosting (github.com) is not here, an operator adds it when needed.
DEFAULT_ALLOWED_HOSTS: tuple[str, ...] = (
    # Python: pip, uv, poetry (pypi.python.org still appears in old configurations and redirects)
    "pypi.org", "pypi.python.org", "files.pythonhosted.org",
    # JavaScript: npm, pnpm, yarn 1 and yarn berry; nodejs.org serves the headers node-gyp needs to build
    # native modules, and node toolchains
    "registry.npmjs.org", "registry.yarnpkg.com", "repo.yarnpkg.com", "nodejs.org",
    # Go: the module proxy (also serves toolchains for GOTOOLCHAIN) and the checksum database
    "proxy.golang.org", "sum.golang.org",
    # Rust: crates.io's API, sparse index and downloads; static.rust-lang.org for rust-toolchain.toml
    "crates.io", "index.crates.io", "static.crates.io", "static.rust-lang.org",
    # Ruby: gems and bundler's compact index
    "rubygems.org", "index.rubygems.org",
    # Java: Maven Central, the Gradle plugin portal (which redirects to plugins-artifacts), Gradle wrapper
    # distributions (services.gradle.org redirects to downloads.gradle.org)
    "repo.maven.apache.org", "repo1.maven.org", "plugins.gradle.org", "plugins-artifacts.gradle.org",
    "services.gradle.org", "downloads.gradle.org",
)


_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# Names seen on the wire may carry underscores (some CDNs use them); operator patterns are stricter: letters,
# digits and hyphens. Neither may be an IP literal, checked apart (`is_ip_literal`).
_PATTERN_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PATTERN = re.compile(rf"(?:\*\.)?(?:{_PATTERN_LABEL}\.)*{_PATTERN_LABEL}")


def normalize_host(host: str) -> str | None:
    """The canonical form of a host name (lower case, no trailing dot), or None when it is not one."""
    host = host.strip().lower()
    if host.endswith("."):
        host = host[:-1]
    if not host.isascii() or len(host) > 253 or not _HOST.fullmatch(host):
        return None
    return host


def is_ip_literal(host: str) -> bool:
    """True for anything an HTTP client or the resolver could take as an address rather than a name,
    including the short and numeric IPv4 forms (`127.1`, `2130706433`, `0x7f.1`)."""
    text = host.strip("[]").split("%", 1)[0]
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(text)
        return True
    with contextlib.suppress(OSError, UnicodeError, ValueError):
        socket.inet_aton(text)  # accepts the legacy forms that getaddrinfo would too
        return True
    last = text.rstrip(".").rsplit(".", 1)[-1]
    return bool(last) and (last.isdigit() or last.lower().startswith("0x"))


def parse_pattern(entry: str) -> str:
    """Validate one allowlist entry, a host name or `*.domain`; returns it normalized.
    Raises ValueError, saying what is wrong, otherwise."""
    text = entry.strip().lower()
    if text.endswith("."):
        text = text[:-1]
    problem = None
    if not text:
        problem = "is empty"
    elif "://" in text or "/" in text:
        problem = "has a scheme or a path; give only the host name"
    elif ":" in text or "[" in text:
        problem = "has a port or is an IPv6 address; give only the host name (ports 80 and 443 are allowed)"
    elif is_ip_literal(text.removeprefix("*.")):
        problem = "is an IP address; only host names can be allowed"
    elif not text.isascii() or len(text) > 253 or not _PATTERN.fullmatch(text):
        problem = "is not a host name or a *.domain pattern"
    elif text.startswith("*.") and "." not in text[2:]:
        problem = "is too broad: a wildcard needs at least two labels after it, as in *.example.com"
    if problem:
        raise ValueError(f"{entry.strip()!r} {problem}")  # Settings names the variable
    return text


def parse_allowlist(text: str) -> tuple[str, ...]:
    """The entries of a comma- or whitespace-separated list, validated and without duplicates."""
    entries = [parse_pattern(part) for part in re.split(r"[\s,]+", text) if part]
    return tuple(dict.fromkeys(entries))


class Allowlist:
    """Exact host names and `*.suffix` wildcards (which match any depth of subdomain, not the suffix itself),
    compared case-insensitively and without a trailing dot. IP literals never match."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(dict.fromkeys(parse_pattern(p) for p in patterns))
        self.exact = frozenset(p for p in self.patterns if not p.startswith("*."))
        self.suffixes = tuple(p[1:] for p in self.patterns if p.startswith("*."))  # ".example.com"

    def allows(self, host: str) -> bool:
        name = normalize_host(host)
        if name is None or is_ip_literal(name):
            return False
        return name in self.exact or name.endswith(self.suffixes)
