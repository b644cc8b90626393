"""OCI distribution-spec v1.1 client over httpx: one ``RegistryClient`` per registry host.

Design notes (why, not what):

* Scheme: like docker, https is always tried first; plain http is a fallback only for
  registries marked insecure and for loopback hosts (localhost, 127.0.0.0/8, ::1), which
  docker treats as insecure by default. ``insecure`` also disables TLS verification.
* The httpx client is layered, one idea per layer: ``auth.Authenticator`` (the httpx.Auth
  flow: challenge, basic or token, tokens cached per scope, and credentials for the
  registry's own origin only) over ``retry.RetryTransport`` (the one place a request is
  replayed) over ``transfer.BoundedTransport`` (minimum rate, deadline, size cap for every
  body) over the wire. Requests say what they need in ``request.extensions``.
* Idempotent requests (GET/HEAD/manifest PUT/DELETE/upload POST) retry with backoff on
  connection errors, 429 (Retry-After honoured) and 5xx except 501. Upload PATCH/PUT are
  never replayed blindly: after a failure the client asks the registry how much of the
  session it holds and resumes from there, or restarts the session (monolithic uploads).
* Redirects are followed here, hop by hop, only for blob reads; each hop goes through the
  auth flow again, which signs nothing that leaves the registry's origin.
* Nothing is trusted until its digest matches: manifests are checked against the requested
  digest and Docker-Content-Digest, blobs against the descriptor's size and digest.
"""

from __future__ import annotations

import ipaddress
import json
import re
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import httpx

from xarch.errors import (
    InputError,
    IntegrityError,
    NetworkError,
    RegistryError,
    UsageError,
    XarchError,
)
from xarch.oci import mediatype as mt
from xarch.oci.descriptor import Descriptor
from xarch.oci.digest import Digest
from xarch.oci.manifest import canonical_json
from xarch.transports.remote import credentials as creds
from xarch.transports.remote.auth import (
    SCOPES,
    Authenticator,
    TokenFetchError,
    merge_scopes,
    origin_of,
    pull_scope,
    push_scope,
)
from xarch.transports.remote.errors import (
    RegistryAuthError,
    RegistryNotFoundError,
    describe_error,
)
from xarch.transports.remote.options import (
    EventCallback,
    EventKind,
    RegistryOptions,
    TransferEvent,
)
from xarch.transports.remote.referrers import artifact_descriptor, referrers_tag, subject_of
from xarch.transports.remote.retry import (
    REPLAY,
    Replay,
    RetryPolicy,
    RetryTransport,
    is_connection_refused,
    is_retryable_status,
    is_tls_error,
    is_transient_exception,
    is_unresolvable,
)
from xarch.transports.remote.transfer import (
    DEADLINE,
    MAX_BYTES,
    TLS_PROBE,
    WHAT,
    BoundedTransport,
    ClientTransport,
    LazyTrustTransport,
    TransferLimits,
)

MAX_MANIFEST_SIZE = 8 * 1024 * 1024
_READ_CHUNK = 1024 * 1024
_MAX_PAGES = 10_000
_MAX_REDIRECTS = 10
_ERROR_BODY_MAX = 64 * 1024
_DOCKER_HUB_API = "registry-1.docker.io"
_LINK_RE = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]*)*)")
_REL_NEXT_RE = re.compile(r"""rel\s*=\s*"?([^";]*)"?""")
# distribution/reference grammar for path components and tags
_REPO_RE = re.compile(
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
)
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_GENERIC_TYPES = frozenset({"", "application/json", "text/plain", "application/octet-stream"})
# Headers a redirect hop must not carry over: they belong to the first server.
_HOP_DROPPED = frozenset({"authorization", "cookie", "host", "content-length"})

T = TypeVar("T")


def api_host(registry: str) -> str:
    """Docker Hub's API lives on registry-1.docker.io; everything else on itself."""
    return (
        _DOCKER_HUB_API if creds.normalize_host(registry) in creds._DOCKER_HUB_HOSTS else registry
    )


def is_loopback(registry: str) -> bool:
    """localhost / 127.0.0.0/8 / ::1, with or without a port (docker's default insecure set)."""
    host = registry
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_link_next(header: str | None) -> str | None:
    """The ``rel="next"`` target of an RFC 8288 Link header, or None."""
    if not header:
        return None
    for m in _LINK_RE.finditer(header):
        for param in m.group(2).split(";"):
            rel = _REL_NEXT_RE.search(param.strip())
            if (
                rel
                and param.strip().lower().startswith("rel")
                and "next" in rel.group(1).lower().split()
            ):
                return m.group(1).strip()
    return None


def parse_range_end(header: str | None) -> int | None:
    """Bytes the registry holds from an upload ``Range: 0-<end>`` header (inclusive end)."""
    if not header:
        return None
    m = re.fullmatch(r"\s*(?:bytes=)?(\d+)-(\d+)\s*", header)
    if not m:
        return None
    return int(m.group(2)) + 1


def _url_for_error(url: httpx.URL) -> str:
    return url.copy_with(query=None).path


def _join(base: httpx.URL, location: str) -> httpx.URL:
    """A Location or Link target against the URL it came from, without any userinfo in it
    (``https://user:pw@host/`` would otherwise become a Basic header of its own)."""
    url = base.join(location)
    return url.copy_with(username=None, password=None) if url.userinfo else url


def _error_body(resp: httpx.Response) -> bytes:
    """At most ``_ERROR_BODY_MAX`` bytes of an error answer; what cannot be read is b""."""
    buf = bytearray()
    try:
        for chunk in resp.iter_bytes():
            buf += chunk
            if len(buf) >= _ERROR_BODY_MAX:
                break
    except (httpx.HTTPError, httpx.StreamError):
        pass
    return bytes(buf[:_ERROR_BODY_MAX])
class RegistryClient:
    """Distribution-spec client for one registry host; thread-safe for parallel transfers."""

    def __init__(
        self,
        registry: str,
        options: RegistryOptions | None = None,
        *,
        on_event: EventCallback | None = None,
    ) -> None:
        self.registry = registry
        self.options = options or RegistryOptions()
        self.host = api_host(registry)
        self.on_event = on_event
        self._base: str | None = None
        self._ping_lock = threading.Lock()
        o = self.options
        self._retry = RetryPolicy(
            o.retries, o.backoff_base, o.backoff_max, o.sleep, self._notify_retry
        )
        self._limits = TransferLimits(
            o.min_rate, o.rate_window, o.transfer_deadline, clock=o.clock
        )
        # (repository, digest) -> the tag whose HEAD reported that digest
        self._reported: dict[tuple[str, str], str] = {}
        self._lazy_trust: LazyTrustTransport | None = None
        self._http = self._make_http()
        self._auth = Authenticator(self._load_credentials, self._send_token_request)

    # -- plumbing ------------------------------------------------------------------------
    def _make_http(self) -> httpx.Client:
        o = self.options
        wire: httpx.BaseTransport
        if o.transport is not None:
            wire = o.transport
        else:
            limits = httpx.Limits(
                max_connections=max(4, o.parallelism * 2),
                max_keepalive_connections=max(2, o.parallelism),
            )
            verify = self._verify()
            if verify is True:  # the default trust store: loaded when first needed
                self._lazy_trust = LazyTrustTransport(
                    lambda v: httpx.Client(verify=v, limits=limits)
                )
                wire = self._lazy_trust
            else:
                wire = ClientTransport(httpx.Client(verify=verify, limits=limits))
        return httpx.Client(
            transport=RetryTransport(BoundedTransport(wire, self._limits), self._retry),
            timeout=httpx.Timeout(o.timeout),
            headers={"User-Agent": o.user_agent},
            follow_redirects=False,
        )

    def _verify(self) -> ssl.SSLContext | bool:
        """TLS trust: the default roots plus ``ca_file`` or docker's ``certs.d/<host>/*.crt``."""
        o = self.options
        if o.insecure:
            return False
        extra: list[Path] = []
        if o.ca_file:
            if not Path(o.ca_file).is_file():
                raise UsageError(f"CA file {o.ca_file} for registry {self.registry} not found")
            extra.append(Path(o.ca_file))
        elif o.certs_dir:
            host_dir = Path(o.certs_dir) / self.registry
            if host_dir.is_dir():
                extra.extend(sorted(host_dir.glob("*.crt")))
        if not extra:
            return True
        context = httpx.create_ssl_context()
        for path in extra:
            try:
                context.load_verify_locations(cafile=str(path))
            except (OSError, ssl.SSLError) as exc:
                raise UsageError(
                    f"cannot load CA certificate {path} for registry {self.registry}: {exc}"
                ) from exc
        return context

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load_credentials(self) -> creds.Credential | None:
        if self.options.credentials is not None:
            user, password = self.options.credentials
            return creds.Credential(user, password)
        return creds.lookup(self.registry, self.options.auth_config)

    def _emit(self, kind: EventKind, digest: str | None, size: int = 0, detail: str = "") -> None:
        if self.on_event is not None:
            self.on_event(TransferEvent(kind, digest, size, detail))

    def _notify_retry(self, detail: str) -> None:
        self._emit("retry", None, 0, detail)

    def _login_hint(self) -> str:
        return f"run `xarch login {self.registry}`"

    def _foreign(self, url: httpx.URL) -> str | None:
        """``scheme://host[:port]`` of a URL off the registry's origin; None when it is home
        (or before the ping, when there is no home yet)."""
        if self._auth.origin is None or self._auth.at_home(url):
            return None
        return f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}"

    def _network_error(self, exc: BaseException, host: str | None = None) -> NetworkError:
        target = host or self.registry
        if is_unresolvable(exc):
            hostport = host or self.host
            name = hostport.rpartition(":")[0] or hostport
            return NetworkError(
                f"cannot reach registry {target}: host {name!r} does not resolve (DNS)",
                hint="check the registry name for typos, and this machine's DNS",
            )
        if is_connection_refused(exc):
            hint = (
                "is it running?"
                if self.options.insecure
                else "is it running? use --insecure for plain HTTP"
            )
            return NetworkError(f"cannot reach registry {target}: connection refused", hint=hint)
        if is_tls_error(exc):
            return NetworkError(
                f"TLS handshake with registry {target} failed: {exc}",
                hint="use --ca-file to trust its CA, or --insecure",
            )
        if isinstance(exc, httpx.TimeoutException):
            return NetworkError(
                f"registry {target} timed out: {exc or type(exc).__name__}",
                hint="retry later or raise --timeout",
            )
        return NetworkError(f"cannot reach registry {target}: {exc or type(exc).__name__}")

    # -- ping / scheme -------------------------------------------------------------------
    def ping(self) -> None:
        """GET /v2/: decides https vs http and learns the auth challenge."""
        with self._ping_lock:
            self._ping()

    def base_url(self) -> str:
        if self._base is None:
            with self._ping_lock:
                if self._base is None:
                    self._ping()
        assert self._base is not None
        return self._base

    def _ping(self) -> None:
        schemes = ["https"]
        if self.options.insecure or is_loopback(self.host):
            schemes.append("http")
        last_exc: BaseException | None = None
        first_exc: BaseException | None = None
        for scheme in schemes:
            url = f"{scheme}://{self.host}/v2/"
            if scheme == "https" and len(schemes) > 1 and self._lazy_trust is not None:
                # Does it speak TLS at all? Asked without loading the trust store, which a
                # plain-http loopback registry never needs; one that does speak TLS is then
                # pinged again below, verified (its probe's answer is not trusted).
                probe = self._http.build_request(
                    "GET", url, extensions={REPLAY: Replay.PROBE, TLS_PROBE: True}
                )
                try:
                    self._http.send(probe).close()
                except httpx.TransportError as exc:
                    last_exc = exc
                    first_exc = first_exc or exc
                    continue
            # A probe: TLS failures and refusals will not heal by waiting, try the next scheme.
            request = self._http.build_request("GET", url, extensions={REPLAY: Replay.PROBE})
            try:
                resp = self._http.send(request)
            except httpx.TransportError as exc:
                last_exc = exc
                first_exc = first_exc or exc
                continue
            if scheme == "http" and first_exc is not None and resp.status_code not in (200, 401):
                # Plain HTTP reached something that is not a registry (typically the TLS
                # port answering "HTTP request to an HTTPS server"): the https error is
                # the one worth reporting.
                resp.close()
                raise self._network_error(first_exc) from first_exc
            self._accept_ping(scheme, resp)
            return
        assert last_exc is not None and first_exc is not None
        # Report the https failure when it was a TLS problem (the interesting one), else the last.
        raise self._network_error(
            first_exc
            if is_tls_error(first_exc) and not is_connection_refused(last_exc)
            else last_exc
        ) from last_exc

    def _accept_ping(self, scheme: str, resp: httpx.Response) -> None:
        if resp.status_code not in (200, 401):
            self._raise(resp, "checking the registry API at /v2/")
        # This origin is the registry: the one place its credentials may go.
        self._auth.origin = origin_of(resp.request.url)
        if resp.status_code == 401:
            self._auth.learn(resp)
        self._base = f"{scheme}://{self.host}"

    def verify_login(self) -> None:
        """Prove the configured credentials work: ping, then a token (or basic) round trip."""
        self.ping()
        challenge = self._auth.challenge
        if challenge is None:
            return  # registry needs no auth at all
        cred = self._auth.credentials()
        if cred is None:
            raise RegistryAuthError(
                f"registry {self.registry} requires credentials",
                status=401,
                hint=self._login_hint(),
            )
        resp = self._send("GET", "/v2/", scopes=())
        resp.read()
        if resp.status_code != 200:
            self._raise(resp, "logging in")

    # -- sending -------------------------------------------------------------------------
    def _url(self, path: str) -> httpx.URL:
        if path.startswith(("http://", "https://")):
            return _join(httpx.URL(path), "")
        return httpx.URL(self.base_url() + path)

    def _token_failed(self, resp: httpx.Response, scopes: Sequence[str]) -> NoReturn:
        resp.read()
        what = "requesting a token for " + (" ".join(scopes) if scopes else "login")
        if resp.status_code in (401, 403):
            cred = self._auth.credentials()
            reason = (
                "invalid username or password" if cred is not None else "anonymous access denied"
            )
            raise RegistryAuthError(
                f"registry {self.registry}: authentication failed: {reason} ({what})",
                status=resp.status_code,
                hint=self._login_hint(),
            )
        if resp.status_code == 200:
            raise RegistryError(
                f"registry {self.registry}: token endpoint returned no token ({what})", status=200
            )
        message, code = describe_error(
            self.registry, resp.status_code, resp.reason_phrase, resp.content, what
        )
        raise RegistryError(message, code=code, status=resp.status_code)

    def _send_token_request(self, request: httpx.Request) -> httpx.Response:
        """The token flow's own request (its Basic header, if any, is the token flow's to
        set): no auth flow on top, but the same retries and transfer bounds."""
        request.extensions.setdefault("timeout", httpx.Timeout(self.options.timeout).as_dict())
        request.extensions[WHAT] = f"token request to {request.url.host} for {self.registry}"
        request.headers.setdefault("User-Agent", self.options.user_agent)
        try:
            return self._http.send(request)
        except httpx.TransportError as exc:
            raise self._network_error(exc, request.url.host) from exc

    def _send(
        self,
        method: str,
        path: str,
        *,
        scopes: Sequence[str],
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        content: bytes | _Body | None = None,
        stream: bool = False,
        retry: bool = True,
        follow_redirects: bool = False,
        what: str | None = None,
        deadline: float | None = None,
        unbounded: bool = False,
    ) -> httpx.Response:
        """Send through the auth flow; ``retry`` lets the transport replay it. Returns any
        status. ``what`` names the transfer in errors, ``deadline`` (a ``clock`` time) bounds
        it across requests, ``unbounded`` lifts the body size cap (the caller checks)."""
        extensions: dict[str, Any] = {
            SCOPES: tuple(scopes),
            REPLAY: Replay.YES if retry else Replay.NO,
        }
        if what:
            extensions[WHAT] = what
        if deadline is not None:
            extensions[DEADLINE] = deadline
        if unbounded:
            extensions[MAX_BYTES] = None
        request = self._http.build_request(
            method, self._url(path), headers=headers, params=params, content=content,
            extensions=extensions,
        )
        for _ in range(_MAX_REDIRECTS + 1):
            try:
                resp = self._http.send(request, auth=self._auth, stream=stream)
            except TokenFetchError as exc:
                self._token_failed(exc.response, exc.scopes or scopes)
            except httpx.TransportError as exc:
                off_host = self._foreign(request.url) is not None
                raise self._network_error(exc, request.url.host if off_host else None) from exc
            if not (follow_redirects and resp.has_redirect_location):
                return resp
            resp.close()
            request = self._redirected(request, resp)
        raise RegistryError(
            f"registry {self.registry}: more than {_MAX_REDIRECTS} redirects"
            f" while {what or method + ' ' + _url_for_error(request.url)}"
        )

    def _redirected(self, request: httpx.Request, resp: httpx.Response) -> httpx.Request:
        """The next hop of a redirect (blob reads only). It keeps the request's own headers
        (Range, Accept-Encoding) but none that belong to the first server; whether it may
        carry credentials is the auth flow's decision, made again for this hop."""
        method = "GET" if resp.status_code == 303 and request.method != "HEAD" else request.method
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_DROPPED}
        return self._http.build_request(
            method,
            _join(request.url, resp.headers["location"]),
            headers=headers,
            extensions=request.extensions,
        )

    def _raise(self, resp: httpx.Response, what: str, *, missing: str | None = None) -> NoReturn:
        """Turn a non-success response into the right XarchError (reads the body)."""
        try:
            body = _error_body(resp)
        finally:
            resp.close()
        status = resp.status_code
        foreign = self._foreign(resp.request.url)
        if status in (401, 403) and foreign is not None:
            raise RegistryAuthError(
                f"registry {self.registry}: {foreign} answered HTTP {status} while {what}",
                status=status,
                hint=f"the registry sent xarch there, and credentials go only to {self._base}:"
                " check the registry's external URL (e.g. distribution's http.host)",
            )
        context = missing if status == 404 and missing else what
        message, code = describe_error(self.registry, status, resp.reason_phrase, body, context)
        if status == 404:
            raise RegistryNotFoundError(message, code=code, status=status)
        if status in (401, 403):
            hint = self._login_hint()
            if self._auth.credentials() is not None:
                hint = f"check that your account may access this repository, or {hint}"
            raise RegistryAuthError(message, code=code, status=status, hint=hint)
        if status == 429:
            raise RegistryError(
                message,
                code=code or "TOOMANYREQUESTS",
                status=status,
                hint="rate limited: retry later, or log in for a higher limit",
            )
        if status == 405 and "DELETE" in what.upper():
            raise RegistryError(
                message, code=code, status=status, hint="the registry has deletion disabled"
            )
        raise RegistryError(message, code=code, status=status)

    # -- manifests -----------------------------------------------------------------------
    @staticmethod
    def _is_digest(ref: str) -> bool:
        return ":" in ref

    @staticmethod
    def _path(repo: str, kind: str, ref: str | None = None) -> str:
        """``/v2/<repo>/<kind>[/<ref>]`` with repo and ref validated, so no caller can smuggle
        ``..``, ``?`` or ``/`` into a registry URL."""
        if not _REPO_RE.fullmatch(repo):
            raise UsageError(f"invalid repository name {repo!r}")
        if ref is None:
            return f"/v2/{repo}/{kind}"
        if ":" in ref:
            Digest.parse(ref)
        elif not _TAG_RE.fullmatch(ref):
            raise UsageError(f"invalid tag {ref!r} (expected up to 128 of [A-Za-z0-9_.-])")
        return f"/v2/{repo}/{kind}/{ref}"

    def _missing_manifest(self, repo: str, ref: str) -> str:
        kind = "manifest" if self._is_digest(ref) else "tag"
        return f'{kind} "{ref}" not found in repository "{repo}"'

    def get_manifest(self, repo: str, ref: str) -> tuple[bytes, str, Digest]:
        """Raw bytes, media type and verified digest of a manifest or index."""
        what = f'fetching manifest "{ref}" from repository "{repo}"'
        resp = self._send(
            "GET",
            self._path(repo, "manifests", ref),
            scopes=[pull_scope(repo)],
            headers={"Accept": mt.ACCEPT_MANIFESTS},
            stream=True,
            what=f'manifest "{ref}" from registry {self.registry} repository "{repo}"',
        )
        try:
            if resp.status_code == 404 and (repo, ref) in self._reported:
                resp.close()
                tag = self._reported[(repo, ref)]
                # Without this the lie reads "manifest not found", which blames the wrong thing.
                raise IntegrityError(
                    f'registry {self.registry} reported digest {ref} for tag "{tag}" in'
                    f' repository "{repo}" (Docker-Content-Digest), but has no manifest {ref}',
                    hint="its Docker-Content-Digest header is wrong, or the tag moved meanwhile",
                )
            if resp.status_code != 200:
                self._raise(resp, what, missing=self._missing_manifest(repo, ref))
            raw = self._read_limited(resp, MAX_MANIFEST_SIZE, what)
        finally:
            resp.close()
        media_type = self._media_type(resp.headers.get("content-type"), raw)
        digest = self._verify_manifest(raw, repo, ref, resp.headers.get("docker-content-digest"))
        return raw, media_type, digest

    def _read_limited(self, resp: httpx.Response, limit: int, what: str) -> bytes:
        buf = bytearray()
        try:
            for chunk in resp.iter_bytes(_READ_CHUNK):
                buf += chunk
                if len(buf) > limit:
                    raise RegistryError(
                        f"registry {self.registry}: response larger than {limit} bytes while {what}"
                    )
        except httpx.TransportError as exc:
            raise self._network_error(exc) from exc
        return bytes(buf)

    @staticmethod
    def _media_type(header: str | None, raw: bytes) -> str:
        declared = mt.base(header or "")
        if declared not in _GENERIC_TYPES:
            return declared
        try:
            doc = json.loads(raw)
        except ValueError:
            return declared or "application/octet-stream"
        if isinstance(doc, dict):
            field = doc.get("mediaType")
            if isinstance(field, str) and field:
                return field
            if "manifests" in doc:
                return mt.OCI_INDEX
            if "config" in doc:
                return mt.OCI_MANIFEST
        return declared or "application/octet-stream"

    def _verify_manifest(self, raw: bytes, repo: str, ref: str, header: str | None) -> Digest:
        where = f'manifest "{ref}" from registry {self.registry} repository "{repo}"'
        result: Digest | None = None
        if self._is_digest(ref):
            want = Digest.parse(ref)
            got = Digest.from_bytes(raw, want.algorithm)
            if got != want:
                tag = self._reported.get((repo, ref))
                reported = f' (reported for tag "{tag}" by Docker-Content-Digest)' if tag else ""
                raise IntegrityError(
                    f"{where}{reported} does not match its digest: content hashes to {got}"
                )
            result = want
        if header:
            try:
                claimed = Digest.parse(header.strip())
            except InputError:
                claimed = None  # a malformed header is ignored; our own hash is what counts
            if claimed is not None:
                got = Digest.from_bytes(raw, claimed.algorithm)
                if got != claimed:
                    raise IntegrityError(
                        f"{where}: Docker-Content-Digest {claimed} does not match the content ({got})"
                    )
                result = result or claimed
        return result or Digest.from_bytes(raw)

    def head_manifest(self, repo: str, ref: str) -> Descriptor | None:
        """Descriptor of a manifest without downloading it; None if it does not exist."""
        what = f'checking manifest "{ref}" in repository "{repo}"'
        resp = self._send(
            "HEAD",
            self._path(repo, "manifests", ref),
            scopes=[pull_scope(repo)],
            headers={"Accept": mt.ACCEPT_MANIFESTS},
        )
        if resp.status_code == 404:
            resp.close()
            return None
        if resp.status_code != 200:
            self._raise(resp, what)
        header_digest = resp.headers.get("docker-content-digest")
        media_type = mt.base(resp.headers.get("content-type") or "")
        length = resp.headers.get("content-length")
        try:
            digest: Digest | None = Digest.parse((header_digest or "").strip())
        except InputError:
            digest = None
        if digest is None or media_type in _GENERIC_TYPES or not (length or "").isdigit():
            # Some registries omit headers on HEAD: fall back to GET and compute ourselves.
            raw, media_type, got = self.get_manifest(repo, ref)
            return Descriptor(media_type, got, len(raw))
        if self._is_digest(ref) and digest != Digest.parse(ref):
            raise IntegrityError(
                f'manifest "{ref}" in registry {self.registry} repository "{repo}": registry reports digest {digest}'
            )
        if not self._is_digest(ref):
            # Unverifiable until the manifest is fetched by this digest: remember who said it.
            self._reported[(repo, str(digest))] = ref
        return Descriptor(media_type, digest, int(length or "0"))

    def put_manifest(
        self, repo: str, ref: str, raw: bytes, media_type: str, *, update_referrers: bool = True
    ) -> Digest:
        """Upload a manifest under a tag or digest; returns its digest.

        If it has a ``subject`` and the registry did not answer with ``OCI-Subject`` (no
        referrers API), the referrers fallback tag index is updated (``update_referrers``).
        """
        digest, subject_header = self._put_manifest(repo, ref, raw, media_type)
        if update_referrers and subject_header is None:
            subject = subject_of(raw)
            if subject is not None:
                self.add_referrer(repo, subject, artifact_descriptor(raw, media_type))
        return digest

    def _put_manifest(
        self, repo: str, ref: str, raw: bytes, media_type: str
    ) -> tuple[Digest, str | None]:
        algorithm = Digest.parse(ref).algorithm if self._is_digest(ref) else "sha256"
        digest = Digest.from_bytes(raw, algorithm)
        if self._is_digest(ref) and digest != ref:
            raise IntegrityError(f"manifest pushed as {ref} hashes to {digest}")
        what = f'pushing manifest "{ref}" to repository "{repo}"'
        resp = self._send(
            "PUT",
            self._path(repo, "manifests", ref),
            scopes=[push_scope(repo)],
            headers={"Content-Type": media_type},
            content=raw,
        )
        if resp.status_code not in (200, 201, 202):
            self._raise(resp, what)
        resp.read()
        claimed = resp.headers.get("docker-content-digest")
        if claimed:
            try:
                c = Digest.parse(claimed.strip())
            except InputError:
                c = None
            if c is not None and c.algorithm == digest.algorithm and c != digest:
                raise IntegrityError(
                    f'registry {self.registry} stored manifest {digest} as {c} in repository "{repo}"'
                )
        return digest, resp.headers.get("oci-subject")

    def delete_manifest(self, repo: str, digest: str) -> None:
        what = f'DELETE of manifest "{digest}" in repository "{repo}"'
        resp = self._send(
            "DELETE", self._path(repo, "manifests", digest), scopes=[repo_scope_delete(repo)]
        )
        if resp.status_code not in (200, 202, 204):
            self._raise(resp, what, missing=self._missing_manifest(repo, digest))
        resp.close()

    # -- blobs ---------------------------------------------------------------------------
    def has_blob(self, repo: str, digest: str) -> bool:
        resp = self._send(
            "HEAD",
            self._path(repo, "blobs", digest),
            scopes=[pull_scope(repo)],
            follow_redirects=True,
            what=f'checking blob {digest} in registry {self.registry} repository "{repo}"',
        )
        resp.close()
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        self._raise(resp, f'checking blob {digest} in repository "{repo}"')

    def get_blob(self, repo: str, desc: Descriptor, *, verify: bool = True) -> Iterator[bytes]:
        """Stream a blob; resumes with Range after a broken connection. Raises IntegrityError
        at the end when the size or digest differ (the consumer must then discard).
        ``verify=False`` skips the digest (never the size check), for a consumer that hashes
        the bytes itself before trusting them — a sink — so they are not hashed twice."""
        return self._blob_stream(repo, desc, verify=verify)

    def _blob_stream(self, repo: str, desc: Descriptor, *, verify: bool = True) -> Iterator[bytes]:
        hasher = desc.digest.hasher() if verify else None
        received = 0
        attempt = 0
        path = self._path(repo, "blobs", str(desc.digest))
        what = f'fetching blob {desc.digest} from repository "{repo}"'
        where = f'blob {desc.digest} from registry {self.registry} repository "{repo}"'
        # One deadline for the whole blob, however many resumed requests it takes.
        limit = self._limits.deadline
        deadline = None if limit is None else self._limits.clock() + limit
        while True:
            # Blobs are already compressed; identity keeps a proxy from re-encoding the bytes
            # the digest describes, and iter_raw never decodes them.
            headers = {"Accept-Encoding": "identity"}
            if received:
                headers["Range"] = f"bytes={received}-"
            resp = self._send(
                "GET",
                path,
                scopes=[pull_scope(repo)],
                headers=headers,
                stream=True,
                follow_redirects=True,
                what=where,
                deadline=deadline,
                unbounded=True,  # checked against the descriptor below
            )
            try:
                if resp.status_code == 206 and received:
                    start = re.match(r"\s*bytes\s+(\d+)-", resp.headers.get("content-range", ""))
                    if not start or int(start.group(1)) != received:
                        raise NetworkError(
                            f"{where}: registry answered a resumed download with the wrong range"
                        )
                    skip = 0
                elif resp.status_code == 200:
                    skip = received  # no range support: re-read and drop what we already have
                else:
                    self._raise(
                        resp, what, missing=f'blob {desc.digest} not found in repository "{repo}"'
                    )
                try:
                    # (a transport may hand back an already-read response, e.g. MockTransport)
                    body = (
                        resp.iter_bytes(_READ_CHUNK)
                        if resp.is_stream_consumed
                        else resp.iter_raw(_READ_CHUNK)
                    )
                    for chunk in body:
                        if skip:
                            if len(chunk) <= skip:
                                skip -= len(chunk)
                                continue
                            chunk = chunk[skip:]
                            skip = 0
                        if received + len(chunk) > desc.size:
                            raise IntegrityError(
                                f"{where} is larger than the expected {desc.size} bytes"
                            )
                        if hasher is not None:
                            hasher.update(chunk)
                        received += len(chunk)
                        yield chunk
                except httpx.TransportError as exc:
                    if is_transient_exception(exc) and attempt < self.options.retries:
                        self._retry.pause(
                            attempt, f"resuming {desc.digest} at byte {received}: {exc}"
                        )
                        attempt += 1
                        continue
                    raise self._network_error(exc) from exc
            finally:
                resp.close()
            if received < desc.size:
                if attempt < self.options.retries:
                    self._retry.pause(
                        attempt, f"{desc.digest} ended early at byte {received} of {desc.size}"
                    )
                    attempt += 1
                    continue
                raise IntegrityError(f"{where} is truncated: got {received} of {desc.size} bytes")
            break
        if hasher is not None and hasher.hexdigest() != desc.digest.hex:
            raise IntegrityError(
                f"{where} does not match its digest (content hashes to {desc.digest.algorithm}:{hasher.hexdigest()})"
            )
        self._emit("download", desc.digest, desc.size)

    def get_blob_bytes(self, repo: str, desc: Descriptor) -> bytes:
        return b"".join(self.get_blob(repo, desc))

    def upload_blob(
        self,
        repo: str,
        desc: Descriptor,
        chunks: Iterable[bytes],
        *,
        monolithic_max: int = 64 * 1024 * 1024,
    ) -> None:
        """Upload a blob unless present: monolithic POST+PUT when small, chunked PATCHes when large.

        Size and digest are checked locally before the registry is asked to commit; on a
        mismatch the session is cancelled and IntegrityError raised (nothing is stored).
        """
        if self.has_blob(repo, desc.digest):
            self._emit("skip", desc.digest, desc.size, f"already in {repo}")
            return
        if desc.size <= monolithic_max:
            self._upload_monolithic(repo, desc, self._collect(desc, chunks))
        else:
            self._upload_chunked(repo, desc, chunks)
        self._emit("upload", desc.digest, desc.size, f"to {repo}")

    def _collect(self, desc: Descriptor, chunks: Iterable[bytes]) -> _Body:
        """Gather a blob for a monolithic PUT, hashing as it arrives; the chunks are kept as
        they come (no joined copy), so a retried PUT can send them again."""
        parts: list[bytes] = []
        hasher = desc.digest.hasher()
        size = 0
        for chunk in chunks:
            size += len(chunk)
            if size > desc.size:
                raise IntegrityError(
                    f"blob {desc.digest} is larger than its descriptor's {desc.size} bytes; not uploaded"
                )
            hasher.update(chunk)
            parts.append(chunk)
        if size != desc.size:
            raise IntegrityError(
                f"blob {desc.digest} has {size} bytes, descriptor says {desc.size}; not uploaded"
            )
        if hasher.hexdigest() != desc.digest.hex:
            raise IntegrityError(f"blob content does not match {desc.digest}; not uploaded")
        return _Body(parts, size)

    def _start_upload(self, repo: str) -> str:
        what = f'starting a blob upload to repository "{repo}"'
        # Starting a session is safe to repeat: an abandoned session is garbage-collected.
        resp = self._send(
            "POST",
            self._path(repo, "blobs/uploads/"),
            scopes=[push_scope(repo)],
            headers={"Content-Length": "0"},
        )
        if resp.status_code != 202:
            self._raise(resp, what)
        resp.close()
        return self._location(resp, what)

    def _location(self, resp: httpx.Response, what: str) -> str:
        loc = resp.headers.get("location")
        if not loc:
            raise RegistryError(
                f"registry {self.registry}: no Location header in the response while {what}"
            )
        return str(_join(resp.request.url, loc))

    def _recovering(
        self,
        what: str,
        send: Callable[[], httpx.Response],
        ok: Callable[[httpx.Response], T | None],
        recover: Callable[[], T | None],
        retrying: str,
    ) -> T:
        """One upload step that must never be replayed blindly (the transport does not): on
        a transient failure wait as the retry policy says, then ``recover`` asks the
        registry what it holds. ``ok`` judges an answer (None: not a success); a result of
        ``recover`` ends the step, None sends it again, an exception gives up."""
        failures = 0
        while True:
            failure: str
            try:
                resp = send()
            except NetworkError as exc:
                failure = str(exc)
            else:
                result = ok(resp)
                if result is not None:
                    resp.close()
                    return result
                if not is_retryable_status(resp.status_code):
                    self._raise(resp, what)
                resp.close()
                failure = f"HTTP {resp.status_code}"
            if failures >= self.options.retries:
                raise NetworkError(
                    f"registry {self.registry}: {what} failed after {failures + 1} attempts:"
                    f" {failure}"
                )
            self._retry.pause(failures, f"{retrying}: {failure}")
            failures += 1
            result = recover()
            if result is not None:
                return result

    def _upload_monolithic(self, repo: str, desc: Descriptor, data: _Body) -> None:
        what = f'uploading blob {desc.digest} to repository "{repo}"'
        session = [self._start_upload(repo)]

        def put() -> httpx.Response:
            url = httpx.URL(session[0]).copy_merge_params({"digest": str(desc.digest)})
            return self._send(
                "PUT",
                str(url),
                scopes=[push_scope(repo)],
                headers={
                    "Content-Type": "application/octet-stream",
                    # An explicit length: httpx then sends the iterable body as is, not
                    # chunked (registries expect a sized monolithic PUT).
                    "Content-Length": str(data.size),
                },
                content=data,
                retry=False,
            )

        def recover() -> bool | None:
            if self.has_blob(repo, desc.digest):
                return True  # the failed PUT landed after all
            session[0] = self._start_upload(repo)
            return None

        self._recovering(
            what, put, lambda r: self._committed(r, desc), recover,
            f"restarting upload of {desc.digest}",
        )

    def _committed(self, resp: httpx.Response, desc: Descriptor) -> bool | None:
        if resp.status_code not in (201, 204):
            return None
        self._check_blob_digest_header(resp, desc)
        return True

    def _check_blob_digest_header(self, resp: httpx.Response, desc: Descriptor) -> None:
        claimed = resp.headers.get("docker-content-digest")
        if (
            claimed
            and claimed.strip() != str(desc.digest)
            and claimed.strip().startswith(desc.digest.algorithm + ":")
        ):
            raise IntegrityError(
                f"registry {self.registry} stored blob {desc.digest} as {claimed.strip()}"
            )

    def _upload_chunked(self, repo: str, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        loc = self._start_upload(repo)
        hasher = desc.digest.hasher()
        offset = 0
        try:
            for piece in _rechunk(chunks, self.options.chunk_size):
                if offset + len(piece) > desc.size:
                    raise IntegrityError(
                        f"blob {desc.digest} is larger than its descriptor's {desc.size} bytes; upload cancelled"
                    )
                hasher.update(piece)
                loc = self._patch(repo, desc, loc, piece, offset)
                offset += len(piece)
            if offset != desc.size:
                raise IntegrityError(
                    f"blob {desc.digest} has {offset} bytes, descriptor says {desc.size}; upload cancelled"
                )
            if hasher.hexdigest() != desc.digest.hex:
                raise IntegrityError(f"blob content does not match {desc.digest}; upload cancelled")
        except BaseException:
            self._cancel_upload(repo, loc)
            raise
        self._finish_upload(repo, desc, loc)

    def _patch(self, repo: str, desc: Descriptor, loc: str, piece: bytes, offset: int) -> str:
        end = offset + len(piece)
        what = f'uploading blob {desc.digest} to repository "{repo}" at byte {offset}'

        def patch() -> httpx.Response:
            return self._send(
                "PATCH",
                loc,
                scopes=[push_scope(repo)],
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{end - 1}",
                },
                content=piece,
                retry=False,
            )

        def accepted(resp: httpx.Response) -> str | None:
            if resp.status_code not in (202, 204):
                return None
            held = parse_range_end(resp.headers.get("range"))
            if held is not None and held != end:
                raise RegistryError(
                    f"registry {self.registry}: upload of {desc.digest} holds {held} bytes, expected {end}"
                )
            return self._location(resp, what) if resp.headers.get("location") else loc

        def recover() -> str | None:
            # Never re-send blindly: ask how much the registry holds, then resend or move on.
            held = self._upload_status(repo, loc)
            if held == end:
                return loc
            if held == offset or (held == 1 and offset == 0):  # distribution says "0-0" for empty
                return None
            raise NetworkError(
                f"registry {self.registry}: upload session for {desc.digest} was lost after a failed chunk",
                hint="retry the push",
            )

        return self._recovering(
            what, patch, accepted, recover, f"chunk {offset}-{end - 1} of {desc.digest}"
        )

    def _upload_status(self, repo: str, loc: str) -> int | None:
        try:
            resp = self._send("GET", loc, scopes=[push_scope(repo)])
        except NetworkError:
            return None
        resp.close()
        if resp.status_code not in (200, 204):
            return None
        return parse_range_end(resp.headers.get("range")) or 0

    def _finish_upload(self, repo: str, desc: Descriptor, loc: str) -> None:
        what = f'committing blob {desc.digest} in repository "{repo}"'
        url = str(httpx.URL(loc).copy_merge_params({"digest": str(desc.digest)}))

        def put() -> httpx.Response:
            return self._send(
                "PUT",
                url,
                scopes=[push_scope(repo)],
                headers={"Content-Type": "application/octet-stream"},
                content=b"",
                retry=False,
            )

        def recover() -> bool | None:
            if self.has_blob(repo, desc.digest):
                return True
            if self._upload_status(repo, loc) != desc.size:
                raise NetworkError(
                    f"registry {self.registry}: upload session for {desc.digest} was lost",
                    hint="retry the push",
                )
            return None

        self._recovering(
            what, put, lambda r: self._committed(r, desc), recover, f"committing {desc.digest}"
        )

    def _cancel_upload(self, repo: str, loc: str) -> None:
        try:
            resp = self._send("DELETE", loc, scopes=[push_scope(repo)], retry=False)
            resp.close()
        except (XarchError, httpx.HTTPError):
            pass  # best effort: an abandoned session is garbage-collected by the registry

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount. True if mounted; False if the registry declined (the upload
        session it opened instead is cancelled; the caller uploads normally)."""
        what = f'mounting blob {digest} from "{from_repo}" into repository "{repo}"'
        resp = self._send(
            "POST",
            self._path(repo, "blobs/uploads/"),
            scopes=merge_scopes([push_scope(repo)], [pull_scope(from_repo)]),
            params={"mount": str(digest), "from": from_repo},
            headers={"Content-Length": "0"},
        )
        if resp.status_code == 201:
            resp.close()
            self._emit("mount", digest, 0, f"from {from_repo}")
            return True
        if resp.status_code == 202:
            resp.close()
            if resp.headers.get("location"):
                self._cancel_upload(repo, self._location(resp, what))
            return False
        self._raise(resp, what)

    # -- tags ----------------------------------------------------------------------------
    def list_tags(self, repo: str, *, page_size: int | None = None) -> list[str]:
        """All tags, following ``Link: <…>; rel="next"`` pagination."""
        what = f'listing tags of repository "{repo}"'
        url: str | None = self._path(repo, "tags/list")
        params = {"n": str(page_size)} if page_size else None
        tags: list[str] = []
        seen: set[str] = set()
        while url is not None:
            if url in seen or len(seen) > _MAX_PAGES:
                raise RegistryError(
                    f"registry {self.registry}: tag list pagination loops while {what}"
                )
            seen.add(url)
            resp = self._send("GET", url, scopes=[pull_scope(repo)], params=params)
            params = None  # the next link carries its own query
            if resp.status_code != 200:
                self._raise(resp, what, missing=f'repository "{repo}" not found')
            try:
                data = resp.json()
            except ValueError as exc:
                raise RegistryError(f"registry {self.registry}: invalid JSON while {what}") from exc
            page = data.get("tags") if isinstance(data, dict) else None
            tags.extend(t for t in (page or []) if isinstance(t, str))
            nxt = parse_link_next(resp.headers.get("link"))
            url = str(resp.request.url.join(nxt)) if nxt else None
        return tags

    # -- referrers -----------------------------------------------------------------------
    def referrers(
        self, repo: str, digest: str, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """Manifests whose ``subject`` is ``digest``: OCI 1.1 referrers API, or the
        ``<alg>-<hex>`` tag index when the API answers 404."""
        what = f'listing referrers of {digest} in repository "{repo}"'
        url: str | None = self._path(repo, "referrers", digest)
        params = {"artifactType": artifact_type} if artifact_type else None
        found: list[Descriptor] = []
        filtered = False
        seen: set[str] = set()
        while url is not None:
            if url in seen or len(seen) > _MAX_PAGES:
                break
            seen.add(url)
            resp = self._send(
                "GET",
                url,
                scopes=[pull_scope(repo)],
                params=params,
                headers={"Accept": mt.OCI_INDEX},
            )
            params = None
            if resp.status_code == 404 and not found:
                resp.close()
                return self._referrers_fallback(repo, digest, artifact_type)
            if resp.status_code != 200:
                self._raise(resp, what)
            raw = self._read_limited(resp, MAX_MANIFEST_SIZE, what)
            found.extend(_index_descriptors(raw, what))
            filtered = (
                filtered or "artifacttype" in resp.headers.get("oci-filters-applied", "").lower()
            )
            nxt = parse_link_next(resp.headers.get("link"))
            url = str(resp.request.url.join(nxt)) if nxt else None
        if artifact_type and not filtered:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found

    def _referrers_fallback(
        self, repo: str, digest: str, artifact_type: str | None
    ) -> list[Descriptor]:
        try:
            raw, _, _ = self.get_manifest(repo, referrers_tag(digest))
        except RegistryNotFoundError:
            return []
        found = _index_descriptors(raw, f'reading the referrers tag of {digest} in "{repo}"')
        if artifact_type:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found

    def add_referrer(self, repo: str, subject: Descriptor, artifact_desc: Descriptor) -> None:
        """Record ``artifact_desc`` in the referrers fallback tag index of ``subject``."""
        tag = referrers_tag(subject.digest)
        entries = self._fallback_entries(repo, tag)
        if any(e.get("digest") == str(artifact_desc.digest) for e in entries):
            return
        entries.append(artifact_desc.to_json())
        self._put_fallback(repo, tag, entries)

    def remove_referrer(self, repo: str, subject_digest: str, artifact_digest: str) -> None:
        """Drop an artifact from the fallback tag index (call after deleting the artifact)."""
        tag = referrers_tag(subject_digest)
        entries = self._fallback_entries(repo, tag)
        kept = [e for e in entries if e.get("digest") != str(artifact_digest)]
        if len(kept) != len(entries):
            self._put_fallback(repo, tag, kept)

    def _fallback_entries(self, repo: str, tag: str) -> list[dict[str, Any]]:
        try:
            raw, _, _ = self.get_manifest(repo, tag)
        except RegistryNotFoundError:
            return []
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise RegistryError(
                f'registry {self.registry}: referrers tag "{tag}" in "{repo}" is not JSON'
            ) from exc
        manifests = doc.get("manifests") if isinstance(doc, dict) else None
        return [m for m in manifests or [] if isinstance(m, dict)]

    def _put_fallback(self, repo: str, tag: str, entries: list[dict[str, Any]]) -> None:
        doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
        self._put_manifest(repo, tag, canonical_json(doc), mt.OCI_INDEX)


def repo_scope_delete(repo: str) -> str:
    # distribution asks for "delete"; registries that do not know it fall back to push.
    return f"repository:{repo}:delete"


def _index_descriptors(raw: bytes, what: str) -> list[Descriptor]:
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise RegistryError(f"invalid index JSON while {what}") from exc
    manifests = doc.get("manifests") if isinstance(doc, dict) else None
    return [Descriptor.from_json(m) for m in manifests or [] if isinstance(m, dict)]


class _Body:
    """A request body sent as slices of at most ``_SEND_SLICE`` bytes, iterable again for a
    retried request. httpcore re-slices the unsent rest of each write (``buf = buf[n:]``);
    one 50 MB write makes that quadratic, bounded slices keep it linear."""

    def __init__(self, parts: list[bytes], size: int) -> None:
        self.parts = parts
        self.size = size

    def __iter__(self) -> Iterator[bytes]:
        for part in self.parts:
            if len(part) <= _SEND_SLICE:
                yield part
                continue
            view = memoryview(part)
            for off in range(0, len(view), _SEND_SLICE):
                yield view[off:off + _SEND_SLICE]  # type: ignore[misc]  # bytes-like is enough


_SEND_SLICE = 1024 * 1024


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Regroup arbitrary chunks into ``size``-byte pieces (the last may be shorter)."""
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)
