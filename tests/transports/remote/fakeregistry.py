"""An in-process registry speaking enough of the OCI distribution spec to be a real test double.

Served through ``httpx.MockTransport``: blobs (HEAD/GET with Range), monolithic and chunked
uploads with Content-Range checks, cross-repo mounts, manifests by tag/digest, tag listing
with Link pagination, the referrers API (can be disabled), basic auth and token auth (a
separate token host with scope checking), plus injectable faults.

Hostile or unusual registries, for the "credentials stay home" and bounded-transfer tests:
``foreign`` origins that serve the registry's content without auth (a CDN, a storage backend)
or answer with challenges of their own, blob reads redirected to one (``blob_redirect``),
upload Locations and Link pages on one (``upload_origin``, ``link_origin``), a lying
``Docker-Content-Digest`` (``manifest_digest_header``) and blob bodies streamed by a hook
(``blob_body``, e.g. a trickle). ``seen`` records every request with its origin and
Authorization header, wherever it went.

It deliberately does not import xarch: it must not share bugs with the code under test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

_ROUTE = re.compile(
    r"^/v2/(?P<name>[a-z0-9]+(?:[._/-][a-z0-9]+)*)/"
    r"(?:(?P<uploads>blobs/uploads/(?P<uuid>[^/]*))|blobs/(?P<blob>[^/]+)|manifests/(?P<mref>[^/]+)"
    r"|(?P<tags>tags/list)|referrers/(?P<rdigest>[^/]+))$"
)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


FaultKind = Literal["status", "connect_error", "read_error", "truncate", "corrupt"]
# How a foreign origin answers: as the registry without auth, or with a challenge of its own.
ForeignKind = Literal["serve", "bearer", "basic"]
EVIL_REALM = "https://evil.test/token"


def origin(url: httpx.URL) -> str:
    """``scheme://host[:port]``, the port only when it is not the scheme's default."""
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}"


@dataclass(frozen=True)
class Seen:
    method: str
    origin: str
    path: str
    authorization: str | None


@dataclass
class Fault:
    method: str
    path: str  # regex searched in the request path
    kind: FaultKind
    times: int = 1  # -1: forever
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    after_bytes: int = 0  # read_error / truncate: bytes delivered before the break
    hits: int = 0


@dataclass
class _Upload:
    repo: str
    data: bytearray = field(default_factory=bytearray)


class _IterStream(httpx.SyncByteStream):
    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks


class _BrokenStream(httpx.SyncByteStream):
    """Delivers ``head`` and then fails like a dropped connection."""

    def __init__(self, head: bytes) -> None:
        self._head = head

    def __iter__(self) -> Iterator[bytes]:
        if self._head:
            yield self._head
        raise httpx.ReadError("connection reset by peer")


class FakeRegistry:
    def __init__(
        self,
        host: str = "registry.test",
        *,
        scheme: Literal["https", "http"] = "https",
        auth: Literal["none", "basic", "token"] = "none",
        users: dict[str, str] | None = None,
        refresh_tokens: dict[str, str] | None = None,
        anonymous_pull: bool = False,
        referrers_api: bool = True,
        delete_enabled: bool = True,
        token_host: str = "auth.test",
        token_ttl: int = 300,
        default_page_size: int | None = None,
        range_support: bool = True,
        foreign: dict[str, ForeignKind] | None = None,
        blob_redirect: str | None = None,
        upload_origin: str | None = None,
        link_origin: str | None = None,
        manifest_digest_header: str | None = None,
        blob_body: Callable[[bytes], Iterable[bytes]] | None = None,
    ) -> None:
        self.host = host
        self.scheme = scheme
        self.auth = auth
        self.users = users if users is not None else {"alice": "s3cret"}
        self.refresh_tokens = refresh_tokens or {}  # refresh token -> user
        self.anonymous_pull = anonymous_pull
        self.referrers_api = referrers_api
        self.delete_enabled = delete_enabled
        self.token_host = token_host
        self.token_ttl = token_ttl
        self.default_page_size = default_page_size
        self.range_support = range_support
        self.foreign = foreign or {}
        self.blob_redirect = blob_redirect
        self.upload_origin = upload_origin
        self.link_origin = link_origin
        self.manifest_digest_header = manifest_digest_header
        self.blob_body = blob_body
        self.seen: list[Seen] = []
        self.acl: dict[str, set[str]] = {}  # user -> repos the user may access ({} = all)
        self.blobs: dict[str, bytes] = {}
        self.repo_blobs: dict[str, set[str]] = {}
        self.manifests: dict[str, dict[str, tuple[bytes, str]]] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.uploads: dict[str, _Upload] = {}
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str]] = []  # (method, path?query)
        self.token_requests: list[dict[str, Any]] = []
        self._tokens: dict[str, tuple[str, frozenset[str]]] = {}  # token -> (user, scopes)
        self._lock = threading.RLock()
        self.transport = httpx.MockTransport(self.handle)

    # -- seeding helpers ------------------------------------------------------------
    def add_blob(self, repo: str, data: bytes) -> str:
        d = sha256(data)
        with self._lock:
            self.blobs[d] = data
            self.repo_blobs.setdefault(repo, set()).add(d)
        return d

    def add_manifest(self, repo: str, raw: bytes, media_type: str, tag: str | None = None) -> str:
        d = sha256(raw)
        with self._lock:
            self.manifests.setdefault(repo, {})[d] = (raw, media_type)
            if tag:
                self.tags.setdefault(repo, {})[tag] = d
        return d

    def add_fault(self, method: str, path: str, kind: FaultKind, **kw: Any) -> Fault:
        fault = Fault(method, path, kind, **kw)
        self.faults.append(fault)
        return fault

    def count(self, method: str, pattern: str = "") -> int:
        return sum(1 for m, p in self.log if m == method and re.search(pattern, p))

    # -- dispatch -------------------------------------------------------------------
    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            return self._handle(request)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        path = url.path
        self.log.append((request.method, path + ("?" + url.query.decode() if url.query else "")))
        self.seen.append(
            Seen(request.method, origin(url), path, request.headers.get("authorization"))
        )
        if url.host == self.token_host:
            return self._token_endpoint(request)
        kind = self.foreign.get(origin(url))
        if kind is not None:
            return self._foreign(request, kind)
        if url.host != self.host.split(":")[0] or (url.port or None) != self._port():
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if url.scheme != self.scheme:
            if url.scheme == "https":
                raise httpx.ConnectError(
                    "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1000)",
                    request=request,
                )
            return httpx.Response(400, text="Client sent an HTTP request to an HTTPS server.")
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        fault = self._take_fault(request.method, path)
        if fault is not None and fault.kind == "connect_error":
            raise httpx.ConnectError("[Errno 104] Connection reset by peer", request=request)
        if fault is not None and fault.kind == "status":
            return httpx.Response(
                fault.status, headers=fault.headers, json=_errors("UNAVAILABLE", "injected fault")
            )
        if (
            self.blob_redirect
            and request.method in ("GET", "HEAD")
            and "/blobs/" in path
            and "/blobs/uploads/" not in path
        ):
            # Like distribution with a storage middleware: the bytes live elsewhere.
            return httpx.Response(
                307, headers={"Location": f"{self.blob_redirect}{path}?X-Amz-Signature=abc"}
            )
        response = self._route(request)
        if fault is not None:
            response = self._mangle(response, fault)
        return response

    @property
    def home(self) -> str:
        """The registry's own origin."""
        return f"{self.scheme}://{self.host}"

    def _foreign(self, request: httpx.Request, kind: ForeignKind) -> httpx.Response:
        if request.url.path in ("/v2/", "/v2"):
            # A CDN or storage backend serves the URLs it hands out, not the API root: a ping
            # there must not take it for the registry.
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if kind == "bearer":
            return httpx.Response(
                401,
                headers={"WWW-Authenticate": f'Bearer realm="{EVIL_REALM}",service="evil"'},
                json=_errors("UNAUTHORIZED", "authentication required"),
            )
        if kind == "basic":
            return httpx.Response(
                401,
                headers={"WWW-Authenticate": 'Basic realm="elsewhere"'},
                json=_errors("UNAUTHORIZED", "authentication required"),
            )
        return self._route(request)

    def foreign_requests(self) -> list[Seen]:
        """Requests that went anywhere but the registry itself and its token host."""
        return [
            s
            for s in self.seen
            if s.origin != self.home and s.origin != f"https://{self.token_host}"
        ]

    def _upload_location(self, path: str) -> str:
        return f"{self.upload_origin}{path}" if self.upload_origin else path

    def _port(self) -> int | None:
        _, _, port = self.host.partition(":")
        return int(port) if port else None

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if (
                fault.method == method
                and re.search(fault.path, path)
                and (fault.times < 0 or fault.hits < fault.times)
            ):
                fault.hits += 1
                return fault
        return None

    def _mangle(self, response: httpx.Response, fault: Fault) -> httpx.Response:
        body = response.read()
        headers = dict(response.headers)
        if fault.kind == "corrupt":
            flipped = bytes([body[0] ^ 0xFF]) + body[1:] if body else b"x"
            return httpx.Response(response.status_code, headers=headers, content=flipped)
        if fault.kind == "truncate":
            # Full Content-Length header, short body, clean end: a proxy that cut the stream.
            return httpx.Response(
                response.status_code, headers=headers, content=body[: fault.after_bytes]
            )
        if fault.kind == "read_error":
            headers.pop("content-length", None)
            return httpx.Response(
                response.status_code,
                headers=headers,
                stream=_BrokenStream(body[: fault.after_bytes]),
            )
        return response

    # -- auth -----------------------------------------------------------------------
    def _required_scope(self, request: httpx.Request) -> list[tuple[str, str]]:
        """(repo, action) pairs the request needs."""
        m = _ROUTE.match(request.url.path)
        if not m:
            return []
        name = m["name"]
        method = request.method
        if method in ("GET", "HEAD"):
            needs = [(name, "pull")] if not m["uploads"] else [(name, "push")]
        elif method == "DELETE" and (m["mref"] or m["blob"]):
            needs = [(name, "delete")]
        else:
            needs = [(name, "push"), (name, "pull")]
        params = request.url.params
        if m["uploads"] is not None and method == "POST" and params.get("from"):
            needs.append((params["from"], "pull"))
        return needs

    def _challenge(self, request: httpx.Request, error: str | None = None) -> httpx.Response:
        if self.auth == "basic":
            header = 'Basic realm="fake registry"'
        else:
            needs = self._required_scope(request)
            scope = " ".join(f"repository:{r}:{a}" for r, a in _group(needs))
            header = f'Bearer realm="https://{self.token_host}/token",service="{self.host}"'
            if scope:
                header += f',scope="{scope}"'
            if error:
                header += f',error="{error}"'
        return httpx.Response(
            401,
            headers={"WWW-Authenticate": header},
            json=_errors("UNAUTHORIZED", "authentication required"),
        )

    def _check_auth(self, request: httpx.Request) -> httpx.Response | None:
        if self.auth == "none":
            return None
        authz = request.headers.get("authorization", "")
        if self.auth == "basic":
            user = self._basic_user(authz)
            return None if user else self._challenge(request)
        # token
        if not authz.startswith("Bearer "):
            return self._challenge(request)
        entry = self._tokens.get(authz[len("Bearer ") :])
        if entry is None:
            return self._challenge(request, "invalid_token")
        _, granted = entry
        for repo, action in self._required_scope(request):
            if f"{repo}:{action}" not in granted:
                return self._challenge(request, "insufficient_scope")
        return None

    def _basic_user(self, authz: str) -> str | None:
        if not authz.startswith("Basic "):
            return None
        try:
            user, _, pw = base64.b64decode(authz[6:]).decode().partition(":")
        except Exception:
            return None
        return user if self.users.get(user) == pw else None

    def _token_endpoint(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            form = urllib.parse.parse_qs(request.content.decode())
            record = {"method": "POST", **{k: v for k, v in form.items()}}
            self.token_requests.append(record)
            if form.get("grant_type") != ["refresh_token"]:
                return httpx.Response(400, json={"error": "unsupported_grant_type"})
            user = self.refresh_tokens.get(form.get("refresh_token", [""])[0])
            if user is None:
                return httpx.Response(401, json={"error": "invalid_grant"})
            scopes = " ".join(form.get("scope", [])).split()
        else:
            params = request.url.params
            scopes = params.get_list("scope")
            self.token_requests.append(
                {
                    "method": "GET",
                    "scope": scopes,
                    "service": params.get("service"),
                    "account": params.get("account"),
                    "authorization": "authorization" in request.headers,
                }
            )
            if params.get("service") != self.host:
                return httpx.Response(400, json={"details": "wrong service"})
            authz = request.headers.get("authorization")
            if authz:
                user = self._basic_user(authz)
                if user is None:
                    return httpx.Response(401, json={"details": "incorrect username or password"})
            else:
                user = ""
        granted: set[str] = set()
        for scope in scopes:
            typ, _, rest = scope.partition(":")
            repo, _, actions = rest.rpartition(":")
            if typ != "repository":
                continue
            for action in actions.split(","):
                if user and (not self.acl.get(user) or repo in self.acl[user]):
                    granted.add(f"{repo}:{action}")
                elif action == "pull" and self.anonymous_pull:
                    granted.add(f"{repo}:pull")
        token = secrets.token_hex(8)
        self._tokens[token] = (user, frozenset(granted))
        return httpx.Response(
            200, json={"token": token, "access_token": token, "expires_in": self.token_ttl}
        )

    # -- API ------------------------------------------------------------------------
    def _route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v2/" or path == "/v2":
            return httpx.Response(200, json={})
        m = _ROUTE.match(path)
        if not m:
            return httpx.Response(404, text="404 page not found")
        name = m["name"]
        method = request.method
        if m["uploads"] is not None:
            return self._uploads(request, name, m["uuid"])
        if m["blob"]:
            return self._blob(request, name, m["blob"])
        if m["mref"]:
            return self._manifest(request, name, m["mref"])
        if m["tags"]:
            return self._tags(request, name)
        if m["rdigest"] and method == "GET":
            if not self.referrers_api:
                return httpx.Response(404, text="404 page not found")
            return self._referrers(request, name, m["rdigest"])
        return httpx.Response(405)

    def _blob(self, request: httpx.Request, name: str, digest: str) -> httpx.Response:
        if digest not in self.repo_blobs.get(name, set()):
            return httpx.Response(404, json=_errors("BLOB_UNKNOWN", "blob unknown to registry"))
        data = self.blobs[digest]
        headers = {
            "Docker-Content-Digest": digest,
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
        }
        if request.method == "HEAD":
            return httpx.Response(200, headers={**headers, "Content-Length": str(len(data))})
        rng = request.headers.get("range")
        if rng and self.range_support:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng)[1])  # type: ignore[index]
            part = data[start:]
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            return self._body(206, headers, part)
        return self._body(200, headers, data)

    def _body(self, status: int, headers: dict[str, str], data: bytes) -> httpx.Response:
        if self.blob_body is None:
            return httpx.Response(status, headers=headers, content=data)
        headers = {**headers, "Content-Length": str(len(data))}
        return httpx.Response(status, headers=headers, stream=_IterStream(self.blob_body(data)))

    def _uploads(self, request: httpx.Request, name: str, uuid: str) -> httpx.Response:
        method = request.method
        params = request.url.params
        if method == "POST" and not uuid:
            mount, frm = params.get("mount"), params.get("from")
            if mount and frm and mount in self.repo_blobs.get(frm, set()):
                self.repo_blobs.setdefault(name, set()).add(mount)
                return httpx.Response(
                    201,
                    headers={
                        "Location": f"/v2/{name}/blobs/{mount}",
                        "Docker-Content-Digest": mount,
                    },
                )
            digest = params.get("digest")
            if digest:  # single-POST monolithic upload
                body = request.read()
                if sha256(body) != digest:
                    return httpx.Response(
                        400,
                        json=_errors(
                            "DIGEST_INVALID", "provided digest did not match uploaded content"
                        ),
                    )
                self.blobs[digest] = body
                self.repo_blobs.setdefault(name, set()).add(digest)
                return httpx.Response(201, headers={"Location": f"/v2/{name}/blobs/{digest}"})
            new = secrets.token_hex(8)
            self.uploads[new] = _Upload(name)
            return httpx.Response(
                202,
                headers={
                    "Location": self._upload_location(f"/v2/{name}/blobs/uploads/{new}?_state=s{new}"),
                    "Range": "0-0",
                    "Docker-Upload-UUID": new,
                },
            )
        upload = self.uploads.get(uuid)
        if upload is None or upload.repo != name:
            return httpx.Response(
                404, json=_errors("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
            )
        if method == "GET":
            return httpx.Response(
                204,
                headers={
                    "Range": f"0-{max(len(upload.data) - 1, 0)}",
                    "Location": str(request.url.copy_with(query=None).path),
                },
            )
        if method == "DELETE":
            del self.uploads[uuid]
            return httpx.Response(204)
        body = request.read()
        if method == "PATCH":
            cr = request.headers.get("content-range")
            if cr:
                m = re.fullmatch(r"(\d+)-(\d+)", cr)
                if not m or int(m[1]) != len(upload.data) or int(m[2]) - int(m[1]) + 1 != len(body):
                    return httpx.Response(
                        416,
                        headers={"Range": f"0-{max(len(upload.data) - 1, 0)}"},
                        json=_errors("BLOB_UPLOAD_INVALID", "invalid content range"),
                    )
            upload.data += body
            return httpx.Response(
                202,
                headers={
                    "Location": self._upload_location(
                        f"/v2/{name}/blobs/uploads/{uuid}?_state=p{len(upload.data)}"
                    ),
                    "Range": f"0-{len(upload.data) - 1}",
                    "Docker-Upload-UUID": uuid,
                },
            )
        if method == "PUT":
            upload.data += body
            digest = params.get("digest")
            if not digest:
                return httpx.Response(400, json=_errors("DIGEST_INVALID", "digest missing"))
            if sha256(bytes(upload.data)) != digest:
                return httpx.Response(
                    400,
                    json=_errors(
                        "DIGEST_INVALID", "provided digest did not match uploaded content"
                    ),
                )
            self.blobs[digest] = bytes(upload.data)
            self.repo_blobs.setdefault(name, set()).add(digest)
            del self.uploads[uuid]
            return httpx.Response(
                201,
                headers={"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest},
            )
        return httpx.Response(405)

    def _resolve(self, name: str, ref: str) -> str | None:
        if ":" in ref:
            return ref if ref in self.manifests.get(name, {}) else None
        return self.tags.get(name, {}).get(ref)

    def _manifest(self, request: httpx.Request, name: str, ref: str) -> httpx.Response:
        method = request.method
        if method in ("GET", "HEAD"):
            digest = self._resolve(name, ref)
            if digest is None:
                return httpx.Response(404, json=_errors("MANIFEST_UNKNOWN", "manifest unknown"))
            raw, media_type = self.manifests[name][digest]
            headers = {
                "Content-Type": media_type,
                "Docker-Content-Digest": self.manifest_digest_header or digest,
                "Content-Length": str(len(raw)),
            }
            return httpx.Response(200, headers=headers, content=b"" if method == "HEAD" else raw)
        if method == "PUT":
            raw = request.read()
            digest = sha256(raw)
            if ":" in ref and ref != digest:
                return httpx.Response(
                    400,
                    json=_errors(
                        "DIGEST_INVALID", "provided digest did not match uploaded content"
                    ),
                )
            try:
                doc = json.loads(raw)
            except ValueError:
                return httpx.Response(400, json=_errors("MANIFEST_INVALID", "manifest invalid"))
            media_type = request.headers.get("content-type", "")
            missing = self._missing_refs(name, doc)
            if missing:
                return httpx.Response(
                    400,
                    json=_errors("MANIFEST_BLOB_UNKNOWN", f"blob unknown to registry: {missing}"),
                )
            self.manifests.setdefault(name, {})[digest] = (raw, media_type)
            if ":" not in ref:
                self.tags.setdefault(name, {})[ref] = digest
            headers = {
                "Location": f"/v2/{name}/manifests/{digest}",
                "Docker-Content-Digest": digest,
            }
            if self.referrers_api and isinstance(doc.get("subject"), dict):
                headers["OCI-Subject"] = doc["subject"].get("digest", "")
            return httpx.Response(201, headers=headers)
        if method == "DELETE":
            if not self.delete_enabled:
                return httpx.Response(
                    405, json=_errors("UNSUPPORTED", "The operation is unsupported.")
                )
            digest = self._resolve(name, ref)
            if digest is None or ":" not in ref:
                return httpx.Response(404, json=_errors("MANIFEST_UNKNOWN", "manifest unknown"))
            del self.manifests[name][digest]
            for tag, d in list(self.tags.get(name, {}).items()):
                if d == digest:
                    del self.tags[name][tag]
            return httpx.Response(202)
        return httpx.Response(405)

    def _missing_refs(self, name: str, doc: dict[str, Any]) -> str | None:
        if "manifests" in doc:
            for m in doc.get("manifests") or []:
                if m.get("digest") not in self.manifests.get(name, {}):
                    return str(m.get("digest"))
            return None
        for d in [doc.get("config") or {}, *(doc.get("layers") or [])]:
            if d and d.get("digest") not in self.repo_blobs.get(name, set()):
                return str(d.get("digest"))
        return None

    def _tags(self, request: httpx.Request, name: str) -> httpx.Response:
        if name not in self.tags and name not in self.manifests:
            return httpx.Response(
                404, json=_errors("NAME_UNKNOWN", "repository name not known to registry")
            )
        all_tags = sorted(self.tags.get(name, {}))
        params = request.url.params
        last = params.get("last")
        n = int(params["n"]) if params.get("n") else self.default_page_size
        if last:
            all_tags = [t for t in all_tags if t > last]
        headers = {}
        page = all_tags
        if n is not None and len(all_tags) > n:
            page = all_tags[:n]
            link = f"/v2/{name}/tags/list?last={page[-1]}&n={n}"
            headers["Link"] = f'<{self.link_origin or ""}{link}>; rel="next"'
        return httpx.Response(200, headers=headers, json={"name": name, "tags": page})

    def _referrers(self, request: httpx.Request, name: str, digest: str) -> httpx.Response:
        artifact_type = request.url.params.get("artifactType")
        entries = []
        for d, (raw, media_type) in sorted(self.manifests.get(name, {}).items()):
            doc = json.loads(raw)
            subject = doc.get("subject")
            if not isinstance(subject, dict) or subject.get("digest") != digest:
                continue
            at = doc.get("artifactType") or (doc.get("config") or {}).get("mediaType")
            if artifact_type and at != artifact_type:
                continue
            entry: dict[str, Any] = {"mediaType": media_type, "digest": d, "size": len(raw)}
            if doc.get("annotations"):
                entry["annotations"] = doc["annotations"]
            if at:
                entry["artifactType"] = at
            entries.append(entry)
        headers = {"Content-Type": OCI_INDEX}
        if artifact_type:
            headers["OCI-Filters-Applied"] = "artifactType"
        return httpx.Response(
            200,
            headers=headers,
            json={"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries},
        )


def _errors(code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message}]}


def _group(needs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    merged: dict[str, list[str]] = {}
    for repo, action in needs:
        acts = merged.setdefault(repo, [])
        if action not in acts:
            acts.append(action)
    return [(repo, ",".join(sorted(acts))) for repo, acts in merged.items()]
