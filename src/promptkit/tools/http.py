"""HTTP tools: a tool call becomes one HTTP request, guarded against SSRF.

The host is resolved once and refused if any address is not public (loopback, private,
link-local and cloud metadata, CGNAT, …) unless allow-listed; the connection is pinned to the
checked address (no DNS rebinding), every redirect hop is checked alike, and secrets (header
values, ``redact`` names) stay out of errors, reprs and what the model sees.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple
from urllib.parse import quote, urlencode, urljoin, urlsplit, urlunsplit

from promptkit._errors import ToolError, present_as_promptkit
from promptkit._redact import redact as _redact_text
from promptkit._redact import register_header_secrets, register_secret
from promptkit.engine.tool_round import ToolContext

if TYPE_CHECKING:  # imported when first used: they cost import time
    import http.client
    import ssl

__all__ = ["HTTPTool", "HTTPToolError", "HTTPToolRefusedError", "HTTPToolTimeoutError"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

REDACTED = "[REDACTED]"
DEFAULT_MAX_RESPONSE_BYTES = 1 << 20
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"}) | _BODY_METHODS
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_IPV4_SPELLING = re.compile(r"[0-9a-fx.]+", re.IGNORECASE)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HOST_NAME = re.compile(r"[a-z0-9_.:-]+")  # names, and IPv6 from "[v6]:port"
_SAFE_PATH = "/%:@!$&'()*+,;=~"
_FORBIDDEN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key",
                             "api-key", "x-auth-token"})
_METADATA = frozenset(map(ipaddress.ip_address, ["169.254.169.254", "fd00:ec2::254"]))
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_DEFAULT_HEADERS = {"User-Agent": "promptkit-http-tool",
                    "Accept": "application/json, text/*;q=0.9, */*;q=0.5"}


class HTTPToolError(ToolError):
    """An HTTP tool call failed: ``status`` (``None`` without a response), ``url`` (redacted)."""

    def __init__(self, message: str, *, status: int | None = None, url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class HTTPToolRefusedError(HTTPToolError, ValueError):
    """Not allowed: a non-public address not in ``allow_hosts``, credentials, a non-http(s) URL."""


class HTTPToolTimeoutError(HTTPToolError, TimeoutError):
    """The call did not finish within its timeout (or the turn's deadline)."""


present_as_promptkit(HTTPToolError, HTTPToolRefusedError, HTTPToolTimeoutError)


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.ipv4_mapped or ip.sixtofour


def _problem(ip: IPAddress) -> str | None:
    """Why connecting to ``ip`` is refused by default (``None``: a public address)."""
    inner = _embedded_ipv4(ip)
    if inner is not None and (why := _problem(inner)) is not None:
        return f"{why} (IPv4 {inner} inside IPv6)"
    checks = ((ip in _METADATA, "a cloud metadata address"),
              (ip.is_unspecified, "an unspecified address"),
              (ip.is_loopback, "a loopback address"),
              (ip.is_link_local, "a link-local address"),
              (ip.is_multicast, "a multicast address"),
              (ip in _CGNAT, "a carrier-grade NAT address"),
              (ip.is_reserved, "a reserved address"),
              (ip.is_private, "a private address"),
              (not ip.is_global, "not a public address"))
    return next((why for hit, why in checks if hit), None)


def _literal_ip(host: str) -> IPAddress | None:
    """``host`` as an IP address in any spelling (``::1``, ``2130706433``, ``0177.0.0.1``)."""
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host)
    with contextlib.suppress(OSError):
        if _IPV4_SPELLING.fullmatch(host):
            return ipaddress.IPv4Address(socket.inet_aton(host))
    return None


Permits = Callable[[str, IPAddress, int], bool]


def _allowed(entry: str) -> Permits:
    """An ``allow_hosts`` entry (host, IP or CIDR, with an optional port) as a predicate."""
    host, port = "", None
    try:
        network: Network | None = ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError:  # host:port, ip:port, [v6]:port
        try:
            parts = urlsplit("//" + entry.strip().lower())
            host, port = (parts.hostname or "").rstrip("."), parts.port
        except ValueError:
            host = ""
        if not _HOST_NAME.fullmatch(host) or parts.path or parts.query or "@" in parts.netloc:
            raise ValueError(f"allow_hosts entry {entry!r} is not a host, host:port, IP, "
                             "[IPv6]:port or CIDR network") from None
        network = None
        with contextlib.suppress(ValueError):
            network = ipaddress.ip_network(host)

    def permits(target: str, ip: IPAddress, target_port: int) -> bool:
        inner = _embedded_ipv4(ip)
        if port is not None and port != target_port:
            return False
        return target == host if network is None else (
            ip in network or (inner is not None and inner in network))
    return permits


class _Target(NamedTuple):
    scheme: str
    host: str
    port: int
    path: str


def _parse_url(url: str) -> _Target:
    """Split and check a URL (scheme, no credentials, a host, a valid port)."""
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").rstrip(".")
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise HTTPToolRefusedError("refused: malformed URL (host or port)") from None
    problem = (
        "the URL contains whitespace or control characters"
        if any(ord(c) < 33 or c == "\x7f" for c in url) else
        f"only http and https URLs are allowed, not {scheme or 'no scheme'!r}"
        if scheme not in ("http", "https") else
        "URLs with credentials (user:password@host) are not allowed; use a header instead"
        if "@" in parts.netloc else "the URL has no host" if not host else None)
    if problem is not None:
        raise HTTPToolRefusedError(f"refused: {problem}")
    path = quote(parts.path or "/", safe=_SAFE_PATH)
    if parts.query:
        path += "?" + quote(parts.query, safe=_SAFE_PATH + "?")
    return _Target(scheme, host, port, path)


def _display_url(url: str, hidden: Iterable[str]) -> str:
    """``url`` without fragment and with the values of query parameters in ``hidden`` hidden."""
    parts = urlsplit(url)._replace(fragment="")
    names = {name.lower() for name in hidden}
    pairs = [p.partition("=") for p in parts.query.split("&")] if parts.query else []
    query = "&".join(k + sep + (REDACTED if k.lower() in names else v) for k, sep, v in pairs)
    return urlunsplit(parts._replace(query=query))


def _text(value: Any) -> str:
    """An argument as it goes into a URL: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(
        value, separators=(",", ":"), ensure_ascii=False, default=str)


_logger = logging.getLogger("promptkit.tools")


def _log_call(call: _Call, status: int | None, started: float,
              error: BaseException | None = None) -> None:
    """DEBUG: one HTTP tool request (its display URL, already without redacted fields)."""
    if not _logger.isEnabledFor(logging.DEBUG):
        return
    message = (f"HTTP tool {call.method} {call.display} "
               f"status={'-' if status is None else status} "
               f"duration={time.monotonic() - started:.3f}s")
    if error is not None:
        message += f" error={type(error).__name__}: {error}"
    _logger.debug(_redact_text(message))


def _check_header(name: str, value: str) -> None:
    """Refuse header names and values http.client would reject, without echoing the value."""
    bad = not isinstance(value, str) or any(c in "\r\n\0" or ord(c) > 255 for c in value)
    problem = (f"invalid header name {name!r}" if not _HEADER_NAME.fullmatch(str(name)) else
               f"the {name} header is set by promptkit" if name.lower() in _FORBIDDEN_HEADERS
               else f"invalid value for the {name} header (not one line of latin-1)" if bad
               else None)
    if problem is not None:
        raise ValueError(problem)


def _decode(data: bytes, content_type: str, truncated: bool) -> Any:
    """The body as JSON (by content type or its look) or text (always when truncated)."""
    match = re.search(r"charset=\"?([\w.:-]+)", content_type, re.IGNORECASE)
    try:
        text = data.decode(match.group(1) if match else "utf-8", errors="replace")
    except LookupError:
        text = data.decode("utf-8", errors="replace")
    if ("json" in content_type.lower() or text.lstrip()[:1] in "{[") and not truncated:
        with contextlib.suppress(ValueError):
            return json.loads(text)
    return text


def _connect(target: _Target, addresses: list[IPAddress], timeout: float,
             tls: ssl.SSLContext | None) -> socket.socket:
    """A socket to the first checked address that answers; TLS checks the host name."""
    error: OSError = OSError("no address to connect to")
    for ip in addresses:
        try:
            sock = socket.create_connection((str(ip), target.port), timeout)
            break
        except OSError as exc:
            error = exc
    else:
        raise error
    try:
        return sock if tls is None else tls.wrap_socket(sock, server_hostname=target.host)
    except BaseException:
        sock.close()
        raise


@dataclass(slots=True)
class _Call:
    """One call in progress: the current hop's request and what must stay hidden."""

    method: str
    url: str
    display: str
    body: bytes | None
    deadline: float
    limit: float  # seconds the call may take (timeout or time left in the turn)
    secrets: tuple[str, ...] = ()

    def left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise HTTPToolTimeoutError(f"{self.method} {self.display} did not finish within "
                                       f"{self.limit:.3g} s", url=self.display)
        return left


class HTTPTool:
    """A tool handler (``tool(args, ctx)``) making one HTTP request per call.

    ``{name}`` placeholders in the URL path are filled from the arguments (URL-quoted).
    ``query`` maps query parameters to argument names, or is ``"*"`` (every argument not in the
    path; the default for methods without a body). ``body`` (POST/PUT/PATCH) is ``"json"`` (the
    other arguments as a JSON object), a mapping of body keys to argument names, or ``None``.
    ``headers_from_env`` maps header names to environment variables read at each call.
    ``timeout`` bounds the whole call, redirects included, within the turn's deadline.
    ``redact`` names JSON fields, query parameters, arguments and headers the model never sees.
    ``transform(body)`` maps the redacted body (JSON value, text, or ``None`` if empty) to the
    result. Bodies over ``max_response_bytes`` are cut to text with a ``[truncated: …]`` marker.
    ``allow_hosts`` (``host``, ``host:port``, IP, CIDR, ``[v6]:port``) permits refused targets.
    """

    def __init__(self, url: str, *, method: str = "GET",
                 headers: Mapping[str, str] | None = None,
                 headers_from_env: Mapping[str, str] | None = None,
                 query: Mapping[str, str] | Literal["*"] | None = None,
                 body: Mapping[str, str] | Literal["json"] | None = "json",
                 timeout: float = 10.0, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                 transform: Callable[[Any], Any] | None = None, redact: Iterable[str] = (),
                 allow_hosts: Iterable[str] = (), follow_redirects: int = 3,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.method = method.upper()
        for bad, message in (
                (self.method not in _METHODS, f"unsupported HTTP method {method!r}"),
                (not timeout > 0, "timeout must be positive"),
                (max_response_bytes <= 0, "max_response_bytes must be positive"),
                (follow_redirects < 0, "follow_redirects must not be negative"),
                (query not in (None, "*") and not isinstance(query, Mapping),
                 "query must be None, '*' or a mapping of parameter -> argument name"),
                (body not in (None, "json") and not isinstance(body, Mapping),
                 "body must be 'json', None or a mapping of key -> argument name")):
            if bad:
                raise ValueError(message)
        self.timeout, self.max_response_bytes = float(timeout), max_response_bytes
        self.follow_redirects = follow_redirects
        self._query, self._body, self._transform, self._tls = query, body, transform, ssl_context
        self._redact = frozenset(map(str.lower, [redact] if isinstance(redact, str) else redact))
        self._allow = tuple(map(_allowed, [allow_hosts] if isinstance(allow_hosts, str)
                                else allow_hosts))
        self._headers, self._env = dict(headers or {}), dict(headers_from_env or {})
        for name, value in [*self._headers.items(), *((n, "") for n in self._env)]:
            _check_header(name, value)
        names = "|".join(re.escape(n) for n in sorted(self._redact))
        self._field = re.compile(rf"(\"(?:{names})\"\s*:\s*)(\"(?:[^\"\\]|\\.)*\"?|[^,}}\]\s]+)"
                                 rf"|(?<![\w-])((?:{names})=)([^&\s\"']+)",
                                 re.IGNORECASE) if names else None
        target = _parse_url(_PLACEHOLDER.sub("x", url))
        if re.search(r"[{}]", urlsplit(url).netloc) or "{" in urlsplit(url).scheme:
            raise ValueError("URL placeholders are only allowed in the path, not the host")
        if _literal_ip(target.host) is not None:
            self._resolve(target)
        self._template, self.url = url, _display_url(url, self._redact)

    def __repr__(self) -> str:
        return f"HTTPTool({self.method!r}, {self.url!r})"

    def __call__(self, args: dict[str, Any], ctx: ToolContext | None = None) -> Any:
        """Make the request for one tool call; returns what the model sees, raises on failure."""
        now = time.monotonic()
        limit = max(0.0, min(self.timeout, (ctx.deadline if ctx else float("inf")) - now))
        call = self._request(dict(args or {}), now + limit, limit)
        headers, secrets = self._call_headers()
        call.secrets += secrets
        for secret in secrets:  # configured header values: no log line or error shows them
            register_secret(secret)
        try:
            reply, data, truncated = self._fetch(call, headers)
        except Exception as exc:
            _log_call(call, None, now, exc)
            raise
        _log_call(call, reply.status, now)
        content_type = reply.getheader("content-type") or ""
        value = self._scrub(_decode(data, content_type, truncated), call.secrets) if data else None
        if truncated:
            value = f"{value}\n[truncated: the response exceeded {self.max_response_bytes} bytes]"
        if reply.status >= 400:
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            excerpt = shown[:300] + ("…" if len(shown) > 300 else "")
            raise HTTPToolError(f"HTTP {reply.status} {reply.reason} from {call.method} "
                                f"{call.display}: {excerpt if data else '(empty body)'}",
                                status=reply.status, url=call.display)
        if self._transform is not None:
            try:
                return self._transform(value)
            except Exception as exc:
                raise HTTPToolError(f"the response transform failed for {call.method} "
                                    f"{call.display}: {type(exc).__name__}: {exc}",
                                    url=call.display) from exc
        return f"(empty response, HTTP {reply.status})" if value is None else value

    def _request(self, args: dict[str, Any], deadline: float, limit: float) -> _Call:
        """The first hop: URL (path placeholders, query), display URL and body."""
        used: set[str] = set()
        secrets: list[str] = []

        def fill(match: re.Match[str], shown: bool = False) -> str:
            name = match.group(1)
            if name not in args:
                raise HTTPToolError(f"missing argument {name!r} for the URL path")
            used.add(name)
            if name.lower() in self._redact:
                secrets.append(_text(args[name]))
                if shown:
                    return REDACTED
            text = quote(_text(args[name]), safe="")
            return text.replace(".", "%2E") if text in (".", "..") else text

        url = _PLACEHOLDER.sub(fill, self._template)
        display = _display_url(_PLACEHOLDER.sub(lambda m: fill(m, True), self._template),
                               self._redact)
        if (self._query is None and self.method not in _BODY_METHODS) or self._query == "*":
            query = {k: k for k in args if k not in used}
        else:
            query = dict(self._query or {})
        pairs = [(param, _text(v), param.lower() in self._redact or name.lower() in self._redact)
                 for param, name in query.items() if args.get(name) is not None
                 for v in (args[name] if isinstance(args[name], list) else [args[name]])]
        used.update(name for name in query.values() if args.get(name) is not None)
        secrets += [value for _, value, hide in pairs if hide]
        if pairs:
            joiner = "&" if urlsplit(url).query else ("" if url.endswith("?") else "?")
            url += joiner + urlencode([(param, value) for param, value, _ in pairs])
            display += joiner + urlencode([(p, REDACTED if hide else v) for p, v, hide in pairs],
                                          safe="[]")
        body = None
        if self.method in _BODY_METHODS and self._body is not None:
            if self._body == "json":
                payload = {k: v for k, v in args.items() if k not in used}
            else:
                payload = {key: args[name] for key, name in self._body.items() if name in args}
            body = json.dumps(payload, ensure_ascii=False, default=str).encode()
        return _Call(self.method, url, display, body, deadline, limit,
                     tuple(s for s in secrets if len(s) > 3))

    def _call_headers(self) -> tuple[dict[str, str], tuple[str, ...]]:
        """The headers for this call (environment read now) and the values to keep secret."""
        merged = {k.lower(): (k, v) for k, v in _DEFAULT_HEADERS.items()}
        secrets: list[str] = []
        for name, value in self._headers.items():
            merged[name.lower()] = (name, value)
            if name.lower() in _SECRET_HEADERS | self._redact:
                secrets.append(value)
        for name, variable in self._env.items():
            from_env = os.environ.get(variable, "\0")  # unset: NUL, which the check refuses
            try:
                _check_header(name, from_env)
            except ValueError:
                raise HTTPToolError(f"environment variable {variable} (for the {name} header) "
                                    "is not set or not a valid header value") from None
            merged[name.lower()] = (name, from_env)
            secrets.append(from_env)
        secrets += [s.partition(" ")[2] for s in secrets]  # the token of "Bearer <token>"
        for secret in secrets:  # and out of every error and log, not only this tool's
            register_secret(secret)
        register_header_secrets(self._headers)  # x-…-token, …-key: credential-named headers
        return dict(merged.values()), tuple(s for s in secrets if len(s) > 3)

    def _resolve(self, target: _Target) -> list[IPAddress]:
        """The host's addresses (one lookup), refused unless all are public or allow-listed."""
        literal = _literal_ip(target.host)
        addresses = [] if literal is None else [literal]
        if literal is None:
            try:
                infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM,
                                           proto=socket.IPPROTO_TCP)
            except (OSError, UnicodeError) as exc:
                raise HTTPToolError(f"could not resolve {target.host}: {exc}") from None
            addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0])) for info in infos
                                           if info[0] in (socket.AF_INET, socket.AF_INET6)))
            if not addresses:
                raise HTTPToolError(f"could not resolve {target.host}: no IP addresses")
        for ip in addresses:
            why = _problem(ip)
            if why is None or any(permits(target.host, ip, target.port) for permits in self._allow):
                continue
            subject = f"{target.host} resolves to {ip}, which" if literal is None else (
                target.host if target.host == str(ip) else f"{target.host} ({ip})")
            raise HTTPToolRefusedError(f"refused: {subject} is {why}; add {target.host!r} to "
                                       "allow_hosts to permit it")
        return addresses

    def _fetch(self, call: _Call, headers: dict[str, str]
               ) -> tuple[http.client.HTTPResponse, bytes, bool]:
        """Send the request, following redirects (each hop checked); the final response."""
        origin = _parse_url(call.url)[:3]
        for hop in range(self.follow_redirects + 1):
            target = _parse_url(call.url)
            result = self._exchange(target, self._resolve(target), call,
                                    headers if target[:3] == origin else dict(_DEFAULT_HEADERS))
            status, location = result[0].status, result[0].getheader("location")
            if status not in _REDIRECTS or not location:
                return result
            if hop == self.follow_redirects:
                raise HTTPToolError(f"HTTP {status} redirect from {call.method} {call.display} "
                                    f"not followed: more than {self.follow_redirects} redirects",
                                    status=status, url=call.display)
            call.url = urljoin(call.url, location.strip()).partition("#")[0]
            call.display = self._scrub(_display_url(call.url, self._redact), call.secrets)
            if status == 303 or (status in (301, 302) and call.method == "POST"):
                call.method, call.body = ("HEAD" if call.method == "HEAD" else "GET"), None
        raise AssertionError("unreachable")  # pragma: no cover

    def _exchange(self, target: _Target, addresses: list[IPAddress], call: _Call,
                  headers: dict[str, str]) -> tuple[http.client.HTTPResponse, bytes, bool]:
        """One request and response on a new connection pinned to ``addresses``."""
        import http.client
        import ssl

        tls = None
        if target.scheme == "https":
            tls = self._tls = self._tls or ssl.create_default_context()
        conn = (http.client.HTTPConnection(target.host, target.port) if tls is None
                else http.client.HTTPSConnection(target.host, target.port, context=tls))
        try:  # a socket set beforehand is used as it is: connected to the checked address
            conn.sock = sock = _connect(target, addresses, call.left(), tls)
            if call.body is not None:
                headers = {"Content-Type": "application/json", **headers}
            conn.request(call.method, target.path, body=call.body, headers=headers)
            sock.settimeout(call.left())
            reply = conn.getresponse()
            chunks: list[bytes] = []
            size, limit = 0, self.max_response_bytes
            while size <= limit and not reply.isclosed():
                sock.settimeout(call.left())
                piece = reply.read(min(1 << 16, limit + 1 - size))
                if not piece:
                    break
                chunks.append(piece)
                size += len(piece)
            return reply, b"".join(chunks)[:limit], size > limit
        except TimeoutError:
            raise HTTPToolTimeoutError(f"{call.method} {call.display} did not finish within "
                                       f"{call.limit:.3g} s", url=call.display) from None
        except (OSError, http.client.HTTPException) as exc:
            raise HTTPToolError(f"{call.method} {call.display} failed: "
                                f"{str(exc) or type(exc).__name__}", url=call.display) from None
        finally:
            conn.close()

    def _scrub(self, value: Any, secrets: tuple[str, ...]) -> Any:
        """``value`` with ``redact`` fields, secrets and (in text) ``"name": v`` hidden."""
        if isinstance(value, dict):
            return {k: REDACTED if str(k).lower() in self._redact
                    else self._scrub(v, secrets) for k, v in value.items()}
        if isinstance(value, list):
            return [self._scrub(v, secrets) for v in value]
        if not isinstance(value, str):
            return value
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value if self._field is None else self._field.sub(
            lambda m: f'{m.group(1)}"{REDACTED}"' if m.group(1) else f"{m.group(3)}{REDACTED}",
            value)
