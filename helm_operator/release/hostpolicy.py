"""Which hosts an `externalSourceRef` may reach: the allow/deny list.

Place in the flow: `release.external` asks `HostPolicy.refusal(host,
address)` for the URL's host before a request and for every address DNS
gave it, and connects only to addresses that passed. This module is pure: it
resolves nothing and opens no socket, so the same check runs on exactly the
address that is then used (DNS rebinding cannot slip another one in).

A HelmRelease is written by a tenant, and the operator fetches its
`externalSourceRef` from inside the cluster, where loopback admin ports and
the cloud metadata service answer anyone. So by default these are denied:

    127.0.0.0/8, ::1          loopback
    0.0.0.0/8, ::             "this host": connecting to them reaches loopback
    169.254.0.0/16, fe80::/10 link-local, which holds 169.254.169.254 (the
                              AWS, GCP, Azure, OpenStack metadata service)
    fd00:ec2::254, 100.100.100.200, metadata.google.internal
                              cloud metadata by other addresses and names

Rules (`--external-source-allow` / `--external-source-deny`, repeatable)
are an IP address, a CIDR network, a host name, ``*.domain`` (any name
below it) or ``*`` (any host). For a URL host and an address it resolved to:

1. the address is in an allowed network: allowed;
2. the address is in a denied network (default or flag): refused;
3. the host name matches an allowed name: allowed;
4. the host name matches a denied name (default or flag): refused;
5. otherwise allowed.

So an allowed *name* never opens a denied *address* (a name that suddenly
resolves to 169.254.169.254 stays refused), and ``--external-source-deny
'*'`` with a few allowed names or networks makes an allow list. An IP
literal in a URL matches address rules, and ``*`` among the names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOW_FLAG = "--external-source-allow"
DENY_FLAG = "--external-source-deny"

# (network, why it is denied) in the order they are reported.
_DEFAULT_NETWORKS: tuple[tuple[str, str], ...] = (
    ("127.0.0.0/8", "a loopback address"),
    ("::1/128", "a loopback address"),
    ("0.0.0.0/8", "a 'this host' address (it reaches loopback)"),
    ("::/128", "the unspecified address (it reaches loopback)"),
    ("169.254.0.0/16", "a link-local address (where the cloud metadata service answers)"),
    ("fe80::/10", "a link-local address"),
    ("fd00:ec2::254/128", "the AWS metadata service"),
    ("100.100.100.200/32", "the Alibaba Cloud metadata service"),
)
_DEFAULT_NAMES: tuple[tuple[str, str], ...] = (
    ("metadata.google.internal", "the GCP metadata service"),
)


@dataclass(frozen=True)
class HostRule:
    """One allow or deny entry: either a network or a host name pattern."""

    text: str
    network: IPNetwork | None = None
    name: str | None = None  # lower-case; "*" or "*.suffix" or an exact name

    def matches_address(self, address: IPAddress) -> bool:
        return self.network is not None and address.version == self.network.version and address in self.network

    def matches_name(self, host: str, literal: bool) -> bool:
        if self.name is None:
            return False
        if self.name == "*":
            return True
        if literal:
            return False
        if self.name.startswith("*."):
            return host.endswith(self.name[1:])
        return host == self.name


def parse_rule(text: str) -> HostRule:
    """A rule from a flag value; ValueError saying what is accepted."""
    entry = text.strip().lower().rstrip(".")
    if not entry:
        raise ValueError("an empty host rule; give an IP, a CIDR, a host name, *.domain or *")
    if entry.startswith("[") and entry.endswith("]"):
        entry = entry[1:-1]
    try:
        return HostRule(text=text, network=ipaddress.ip_network(entry, strict=False))
    except ValueError:
        pass
    name = entry[2:] if entry.startswith("*.") else entry
    if entry != "*" and (not name or any(not _label_ok(label) for label in name.split("."))):
        raise ValueError(f"host rule {text!r} is neither an IP address, a CIDR network, a host name, "
                         "*.domain nor *")
    return HostRule(text=text, name=entry)


def _label_ok(label: str) -> bool:
    return 0 < len(label) <= 63 and all(c.isalnum() or c in "-_" for c in label)


def ip_of(text: str) -> IPAddress | None:
    """The address `text` spells (IPv4-mapped IPv6 as IPv4), or None for a name."""
    try:
        address = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


_DEFAULT_RULES: tuple[tuple[HostRule, str], ...] = tuple(
    (parse_rule(text), why) for text, why in _DEFAULT_NETWORKS + _DEFAULT_NAMES)


@dataclass(frozen=True)
class HostPolicy:
    """The allow and deny rules of one operator; the defaults are always denied."""

    allow: tuple[HostRule, ...] = ()
    deny: tuple[HostRule, ...] = ()

    @classmethod
    def from_flags(cls, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> "HostPolicy":
        return cls(allow=tuple(parse_rule(a) for a in allow), deny=tuple(parse_rule(d) for d in deny))

    def refusal(self, host: str, address: str | None = None) -> str | None:
        """Why `host` (reached at `address`, when known) may not be fetched; None if it may.

        Without `address`, only what the host itself says is checked (its
        name, or the address it spells): the caller checks each resolved
        address again before connecting.
        """
        host = host.strip().lower().rstrip(".")
        literal = ip_of(host)
        checked = ip_of(address) if address is not None else literal
        denied = [(rule, why) for rule, why in _DEFAULT_RULES]
        denied += [(rule, f"denied by {DENY_FLAG} {rule.text}") for rule in self.deny]
        if checked is not None:
            if any(rule.matches_address(checked) for rule in self.allow):
                return None
            for rule, why in denied:
                if rule.matches_address(checked):
                    return _explain(host, checked, why)
        is_literal = literal is not None
        if any(rule.matches_name(host, is_literal) for rule in self.allow):
            return None
        for rule, why in denied:
            if rule.matches_name(host, is_literal):
                return _explain(host, None, why)
        return None


def _explain(host: str, address: IPAddress | None, why: str) -> str:
    at = f" (resolved to {address})" if address is not None and str(address) != host else ""
    target = str(address) if address is not None else host
    return (f"host {host}{at} is {why}; external sources may not reach it. If this is intended, "
            f"the operator's administrator can allow it with {ALLOW_FLAG} {target}")
