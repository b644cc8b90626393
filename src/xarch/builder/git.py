"""``ADD <git repository>``: which sources are git refs, resolving a ref to a commit, checkout.

As BuildKit v0.32's Dockerfile frontend (1.26) and its git source do it:

- a source is a git ref when it is ``git://…``, ``ssh://…``, scp-like ``user@host:path`` or an
  ``http(s)://`` URL whose path ends in ``.git``; any other ``http(s)://`` URL is a download,
  everything else (``./x``, ``github.com/o/r``, ``ftp://…``) a local path
  (dfgitutil.ParseGitRef, gitutil.ParseURL, sshutil's scp regex);
- ``#ref:subdir`` (the subdir cleaned, ``:`` alone for the default branch) and the query
  keys ``ref tag branch subdir checksum commit keep-git-dir submodules mtime fetch-by-commit``;
  an unknown or repeated key is an error;
- the ref resolves with ``git ls-remote`` (the remote's HEAD when none is given; a name
  prefers ``refs/<ref>``, then a branch, then a tag; a full commit hash needs no network), and
  the commit is the cache key, so a moved branch is a new key; ``--checksum``/``?checksum=``
  must be hex and a prefix of the commit (or of the commit an annotated tag points to);
- the checkout runs with umask 022 (files 0644/0755), times of the checkout unless
  ``?mtime=commit``, submodules (``--depth=1``) unless ``?submodules=false``; ``.git`` stays
  only with ``--keep-git-dir`` (or ``?keep-git-dir``) and no subdir: a repository with
  ``origin`` set to the remote, HEAD detached at the commit, the ref fetched ``--depth=1``.

Fetched objects live in one bare repository per remote under the worker's home
(``git/<hash>``, flock'ed), so a pinned commit checks out offline once it was fetched.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from xarch.errors import InputError, IntegrityError, NetworkError, NotFoundError, XarchError

_PROTO = re.compile(r"^[a-zA-Z0-9]+://")
_SCP = re.compile(r"^([a-zA-Z0-9-_]+)@([a-zA-Z0-9-.]+):(.*?)(?:\?(.*?))?(?:#(.*))?$")
_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_HEX = re.compile(r"^[a-fA-F0-9]+$")
_SCHEMES = ("http", "https", "ssh", "git")
_FLAG_KEYS = ("submodules", "keep-git-dir", "fetch-by-commit")
GIT_TIMEOUT = 600.0


@dataclass(frozen=True)
class GitRef:
    """A parsed git source: ``remote`` is what git is given (no fragment, no query)."""

    remote: str
    ref: str = ""
    subdir: str = ""
    checksum: str = ""
    keep_git_dir: bool | None = None
    submodules: bool | None = None
    mtime: str = ""  # "", "checkout" or "commit"
    fetch_by_commit: bool = False
    unencrypted: bool = False  # git:// or http:// (BuildKit: discouraged, allowed)


def is_commit_sha(s: str) -> bool:
    return bool(_SHA.match(s))


def parse_git_ref(src: str) -> GitRef | None:
    """``src`` as a git ref, or None when it is no git source (a local path or an HTTP
    download). A git ref with a bad query raises :class:`InputError`."""
    if src.startswith(("./", "../")) or src.startswith("github.com/"):
        # github.com/o/r is a git ref only as a build context (deprecated): for ADD a path
        return None
    m = _PROTO.match(src)
    query = ""
    fragment = ""
    if m:
        scheme = m.group(0)[:-3].lower()
        if scheme not in _SCHEMES:
            return None
        try:
            u = urlsplit(src)
        except ValueError:
            return None
        if scheme in ("http", "https") and not u.path.endswith(".git"):
            return None
        query, fragment = u.query, u.fragment
        remote = urlunsplit((u.scheme, u.netloc, u.path, "", ""))
        unencrypted = scheme in ("http", "git")
    else:
        sm = _SCP.match(src)
        if sm is None:
            return None
        user, host, path, query, fragment = (g or "" for g in sm.groups())
        remote = f"{user}@{host}:{path}"
        unencrypted = False
    ref = subdir = ""
    if fragment:
        ref, _, sub = fragment.partition(":")
        subdir = os.path.normpath("/" + sub).lstrip("/") if sub else ""
        if subdir == ".":
            subdir = ""
    return _load_query(GitRef(remote=remote, ref=ref, subdir=subdir, unencrypted=unencrypted),
                       query, src)


def _load_query(g: GitRef, query: str, src: str) -> GitRef:
    if not query:
        return g
    seen: dict[str, list[str]] = {}
    for k, val in parse_qsl(query, keep_blank_values=True):
        seen.setdefault(k, []).append(val)
    ref, subdir = g.ref, g.subdir
    checksum, mtime = g.checksum, g.mtime
    keep, submodules, by_commit = g.keep_git_dir, g.submodules, g.fetch_by_commit
    tag = branch = ""

    def fail(msg: str) -> InputError:
        return InputError(f"ADD {src}: {msg}", hint="see the git URL query keys in docs/cli.md")

    def flag(k: str, v: str | None) -> bool:
        if v is None:
            return True
        low = v.lower()
        if low in ("1", "t", "true"):
            return True
        if low in ("0", "f", "false"):
            return False
        raise fail(f"invalid {k} value: {v!r}")

    for k, vs in seen.items():
        if len(vs) > 1:
            raise fail(f"query {k!r} has multiple values")
        v: str | None = vs[0]
        if v == "":
            if k not in _FLAG_KEYS:
                raise fail(f"query {k!r} has no value")
            v = None
        if k == "ref":
            if ref and ref != v:
                raise fail(f"ref conflicts: {ref!r} vs {v!r}")
            ref = v or ""
        elif k == "tag":
            tag = v or ""
        elif k == "branch":
            branch = v or ""
        elif k == "subdir":
            if subdir and subdir != v:
                raise fail(f"subdir conflicts: {subdir!r} vs {v!r}")
            subdir = v or ""
        elif k in ("checksum", "commit"):
            checksum = v or ""
        elif k == "keep-git-dir":
            keep = flag(k, v)
        elif k == "submodules":
            submodules = flag(k, v)
        elif k == "fetch-by-commit":
            by_commit = flag(k, v)
        elif k == "mtime":
            if v not in ("checkout", "commit"):
                raise fail(f'invalid mtime value: {v!r} (must be "checkout" or "commit")')
            mtime = v or ""
        else:
            raise fail(f"unexpected query {k!r}")
    if tag:
        tag = tag if tag.startswith("refs/tags/") else "refs/tags/" + tag
        if ref and ref != tag:
            raise fail(f"ref conflicts: {ref!r} vs {tag!r}")
        ref = tag
    if branch:
        if tag:
            raise fail("branch conflicts with tag")
        branch = branch if branch.startswith("refs/heads/") else "refs/heads/" + branch
        if ref and ref != branch:
            raise fail(f"ref conflicts: {ref!r} vs {branch!r}")
        ref = branch
    return replace(g, ref=ref, subdir=subdir, checksum=checksum, mtime=mtime, keep_git_dir=keep,
                   submodules=submodules, fetch_by_commit=by_commit)


def apply_add_flags(g: GitRef, src: str, *, keep_git_dir: bool, checksum: str) -> GitRef:
    """Merge ``ADD --keep-git-dir``/``--checksum`` into the URL's own settings
    (dispatchCopy: a conflict is an error, the URL's value wins otherwise)."""
    if keep_git_dir and g.keep_git_dir is False:
        raise InputError(f"ADD {src}: inconsistent keep-git-dir configuration",
                         hint="drop --keep-git-dir or the URL's keep-git-dir=false")
    if checksum and g.checksum and checksum != g.checksum:
        raise InputError(f"ADD {src}: checksum mismatch {checksum!r} != {g.checksum!r}",
                         hint="give the commit once, with --checksum or in the URL")
    keep = g.keep_git_dir if g.keep_git_dir is not None else keep_git_dir
    g = replace(g, keep_git_dir=keep, checksum=g.checksum or checksum)
    if g.checksum and not _HEX.match(g.checksum):
        raise InputError(f"ADD {src}: invalid checksum {g.checksum} for Git URL, expected hex commit hash",
                         hint="pass the commit hash, e.g. --checksum=$(git rev-parse HEAD)")
    if g.fetch_by_commit and not is_commit_sha(g.checksum or g.ref):
        raise InputError(f"ADD {src}: fetch-by-commit requires a full commit SHA checksum",
                         hint="add ?checksum=<full commit hash>")
    return g


# -- running git ---------------------------------------------------------------------------

def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", LC_ALL="C",
               GIT_ASKPASS="/bin/false", SSH_ASKPASS="/bin/false")
    return env


def _tail(text: str, limit: int = 300) -> str:
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    tail = " | ".join(lines[-3:])
    return tail if len(tail) <= limit else "..." + tail[-limit:]


class GitFailed(Exception):
    def __init__(self, args: Sequence[str], stderr: str) -> None:
        super().__init__(f"git {' '.join(args)}: {_tail(stderr) or 'failed'}")
        self.stderr = stderr


def git(*args: str, cwd: Path | None = None, git_dir: Path | None = None,
        work_tree: Path | None = None) -> str:
    """Run the system ``git`` (umask 022, as BuildKit's), return stdout; GitFailed on error."""
    exe = shutil.which("git")
    if exe is None:
        raise XarchError("ADD of a git repository needs git, which is not installed",
                         hint="install git (scripts/install-deps.sh)")
    cmd = [exe]
    if git_dir is not None:
        cmd.append(f"--git-dir={git_dir}")
    if work_tree is not None:
        cmd.append(f"--work-tree={work_tree}")
    # git's default protocol.file.allow=user stays: a repository's submodule URL must never
    # name a path on this machine (file:///root/..., CVE-2022-39253), only our own commands may
    cmd += ["-c", "advice.detachedHead=false", *args]
    try:
        r = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True,
                           timeout=GIT_TIMEOUT, umask=0o022, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise GitFailed(args, f"timed out after {GIT_TIMEOUT:.0f}s") from None
    if r.returncode != 0:
        raise GitFailed(args, r.stderr or r.stdout)
    return r.stdout


@dataclass(frozen=True)
class Resolved:
    """What a ref names on the remote: ``commit`` is what the files come from, ``sha`` what
    the ref points at (an annotated tag's object for a tag), ``ref`` the full ref name
    (``refs/heads/main``) or the commit itself."""

    commit: str
    sha: str
    ref: str


def resolve(g: GitRef, url: str) -> Resolved:
    """``g``'s ref -> commit, with ``git ls-remote`` (none for a full commit hash)."""
    if g.fetch_by_commit:
        # trusted as the commit, no ls-remote; an unqualified name is a branch (BuildKit)
        ref = g.ref if not g.ref or g.ref.startswith("refs/") else "refs/heads/" + g.ref
        return Resolved(g.checksum, g.checksum, ref or g.checksum)
    if is_commit_sha(g.ref):
        return check_checksum(g, Resolved(g.ref, g.ref, g.ref), url)
    ref = g.ref
    try:
        if not ref:
            out = git("ls-remote", "--symref", "--", g.remote, "HEAD")
            m = re.search(r"^ref: (refs/\S+)\tHEAD$", out, re.M)
            if m is None:
                raise NotFoundError(f"ADD {url}: could not find the default branch of {g.remote}",
                                    hint="name a branch, tag or commit after '#'")
            ref = m.group(1)
        out = git("ls-remote", "--", g.remote, ref, ref + "^{}")
    except GitFailed as e:
        raise NetworkError(f"ADD {url}: failed to fetch remote {g.remote}: {_tail(e.stderr)}",
                           hint="check the URL and that the repository is reachable") from None
    bare = ref.removeprefix("refs/")
    partial, head = "refs/" + bare, "refs/heads/" + ref.removeprefix("refs/heads/")
    tag = "refs/tags/" + ref.removeprefix("refs/tags/")
    found: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, name = line.partition("\t")
        found.setdefault(name, sha)
    peeled = found.get(tag + "^{}", "")
    # git checkout prefers branches when a name is ambiguous
    if partial in found:
        sha, used = found[partial], partial
    elif head in found:
        sha, used = found[head], head
    else:
        sha, used = found.get(tag, ""), tag
    if sha and used != tag:
        peeled = ""
    if not sha:
        raise NotFoundError(f"ADD {url}: the repository has no ref {ref}",
                            hint="use an existing branch, tag or full commit hash after '#'")
    return check_checksum(g, Resolved(peeled or sha, sha, used), url)


def check_checksum(g: GitRef, r: Resolved, url: str) -> Resolved:
    """``--checksum``: a prefix of the commit (or of the annotated tag's object)."""
    if g.checksum and not (r.sha.startswith(g.checksum) or r.commit.startswith(g.checksum)):
        got = r.sha + (f" or {r.commit}" if r.commit != r.sha else "")
        raise IntegrityError(f"ADD {url}: expected checksum to match {g.checksum}, got {got}",
                             hint="fix ADD --checksum, or pin the commit the ref names now")
    return r


def cache_key(g: GitRef, r: Resolved) -> str:
    """BuildKit's shaToCacheKey: the commit, plus what changes the files it yields."""
    key = r.sha if g.keep_git_dir else r.commit
    if g.keep_git_dir:
        key += ".git#" + r.ref
    if g.subdir:
        key += ":" + g.subdir
    if g.submodules is False:
        key += "(skip-submodules)"
    if g.mtime and g.mtime != "checkout":
        key += f"(mtime={g.mtime})"
    return f"git:{g.remote}:{key}"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _has_commit(bare: Path, sha: str) -> bool:
    try:
        git("cat-file", "-e", "--", sha + "^{commit}", git_dir=bare)
        return True
    except GitFailed:
        return False


def _fetch(bare: Path, g: GitRef, r: Resolved, url: str) -> None:
    """Make ``r.sha`` (and the commit) present in ``bare``: shallow by ref, else by commit."""
    if _has_commit(bare, r.sha):
        return
    attempts: list[list[str]] = []
    if not is_commit_sha(r.ref):
        attempts.append(["fetch", "--depth=1", "--no-tags", "--force", "--", g.remote, f"+{r.ref}:{r.ref}"])
    attempts.append(["fetch", "--depth=1", "--no-tags", "--", g.remote, r.sha])
    # a server that refuses unadvertised commits: everything, then look again
    full = ["fetch", "--tags", "--force"] + (["--unshallow"] if (bare / "shallow").exists() else [])
    attempts.append([*full, "--", g.remote, "+refs/heads/*:refs/remotes/all/*"])
    last = ""
    for args in attempts:
        if (bare / "shallow.lock").exists():
            (bare / "shallow.lock").unlink()
        try:
            git(*args, git_dir=bare)
        except GitFailed as e:
            last = _tail(e.stderr)
            continue
        if _has_commit(bare, r.sha):
            return
        last = f"the ref no longer points at {r.sha}"
    raise NetworkError(f"ADD {url}: could not fetch commit {r.sha} from {g.remote}: {last}",
                       hint="check the URL is reachable and the commit still exists")


def checkout(g: GitRef, r: Resolved, url: str, repos_dir: Path, tmp_dir: Path) -> tuple[Path, Path]:
    """Check ``r`` out into a new directory under ``tmp_dir``; returns it (the caller removes
    it) and the directory in it whose contents ADD copies (the subdir when one is named)."""
    repos_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = hashlib.sha256(g.remote.encode()).hexdigest()[:32]
    bare = repos_dir / name
    work = Path(tempfile.mkdtemp(prefix="git-", dir=tmp_dir))
    co = work / "checkout"
    keep = bool(g.keep_git_dir) and not g.subdir
    try:
        with _locked(repos_dir / f"{name}.lock"):
            if not (bare / "HEAD").exists():
                shutil.rmtree(bare, ignore_errors=True)
                git("init", "--bare", "-q", str(bare))
            _fetch(bare, g, r, url)
            # pins the commit for the checkout's fetch (and against gc)
            pin = f"refs/xarch/{r.sha}"
            git("update-ref", pin, r.sha, git_dir=bare)
            git("-c", "init.defaultBranch=master", "init", "-q", str(co))
            git("remote", "add", "origin", bare.as_uri(), cwd=co)
            # BuildKit fetches "<ref>:<ref>" (an annotated tag into refs/tags/), a commit bare
            pullref = pin if is_commit_sha(r.ref) else f"{pin}:{r.ref}"
            git("fetch", "-q", "-u", "--depth=1", "--no-tags", "--", "origin", pullref, cwd=co)
        git("checkout", "-q", "FETCH_HEAD", cwd=co)
        git("remote", "set-url", "origin", g.remote, cwd=co)
        if g.submodules is not False and (co / ".gitmodules").exists():
            git("submodule", "update", "--init", "--recursive", "--depth=1", cwd=co)
        if g.mtime == "commit":
            t = int(git("log", "-1", "--format=%ct", "FETCH_HEAD^{commit}", cwd=co).strip())
            _set_mtimes(co, t)
        git("reflog", "expire", "--all", "--expire=now", cwd=co)
        with contextlib.suppress(FileNotFoundError):
            (co / ".git" / "FETCH_HEAD").unlink()
        if not keep:
            shutil.rmtree(co / ".git")
        return work, (_subdir(co, g.subdir, url) if g.subdir else co)
    except GitFailed as e:
        shutil.rmtree(work, ignore_errors=True)
        raise NetworkError(f"ADD {url}: git checkout of {r.commit[:12]} failed: {_tail(e.stderr)}",
                           hint="check the repository and its submodules are reachable") from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _subdir(co: Path, subdir: str, url: str) -> Path:
    """The subdir of the checkout: directories only on the way (no symlink out)."""
    p = co
    for part in PurePosixPath(subdir).parts:
        if part in ("/", "."):
            continue
        p = p / part
        if p.is_symlink() or not p.is_dir():
            raise NotFoundError(f"ADD {url}: invalid subdir {subdir}: {part} is not a directory in the repository",
                                hint="fix the path after ':' in the URL fragment")
    return p


def _set_mtimes(root: Path, t: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        if ".git" in PurePosixPath(dirpath).relative_to(root).parts:
            continue
        for n in filenames + dirnames:
            os.utime(os.path.join(dirpath, n), (t, t), follow_symlinks=False)
        os.utime(dirpath, (t, t))
