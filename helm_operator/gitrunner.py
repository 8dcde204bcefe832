"""The one way this project runs git.

Place in the flow: the bottom of the house, beside `redaction` (the only
module of the package it imports). The syncer's mirror (`gitsync.mirror`),
Git chart sources (`chartsource.git`) and automation commits
(`automation.gitwrite`, which the CLI uses too) run every git command through
a `GitRunner`; nothing else imports GitPython.

What every call gets:

- a timeout: GitPython's ``Git.execute(kill_after_timeout=...)`` kills git
  and its children (ssh, git-remote-https) when it runs too long;
- credentials only through the environment: an https username and password
  reach git through a credential helper that reads them from two variables of
  the git process, configured through ``GIT_CONFIG_COUNT/KEY/VALUE`` and scoped
  to the remote's origin. Never in argv, in a URL given to git or stored in a
  repository's config, in a file or in a log line: credentials written into a
  URL are taken out of it (`Remote`);
- ssh through ``GIT_SSH_COMMAND`` (`ssh_command` builds a strict one);
- one error tree, classified from git's stderr (redacted), each message
  saying what failed, for which URL, and what to do; `Unreachable` is
  retried (tenacity) for the commands that talk to the remote::

      GitError           git failed (also: git not installed, bad credentials)
      ├── Timeout        killed after the call's timeout
      ├── Unreachable    DNS, refused, reset, HTTP 5xx: transient, retried
      ├── AuthRefused    https 401/403, ssh key refused
      ├── HostKeyUnknown ssh host key unknown or changed
      ├── NotFound       repository, branch or ref not found
      └── PushRejected   the remote branch moved: a push race

Async callers use `arun`: the blocking call runs in a thread pool of its own,
so git hanging on a slow remote never starves the threads the Kubernetes
client uses, and the event loop never blocks.

What this module does NOT do: know what a mirror, a chart or a commit is
(its callers do), or retry a push race (the caller re-applies its edit on
the new head: `automation.gitwrite`). A cancelled `arun` stops waiting at
once, but its git runs on to its end or its timeout.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import shlex
import tempfile
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, cast
from urllib.parse import urlsplit

# A missing git binary is the error of the call that needs it, not of importing us.
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

from git.cmd import Git  # noqa: E402
from git.exc import GitCommandNotFound  # noqa: E402
from tenacity import (  # noqa: E402
    AsyncRetrying, RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential,
)

from helm_operator.redaction import redact_text, redact_url, scrub, split_userinfo  # noqa: E402

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 120.0
NETWORK_ATTEMPTS = 3
NETWORK_COMMANDS = frozenset({"clone", "fetch", "ls-remote", "push", "pull"})
SAFE_PROTOCOLS = "file:git:http:https:ssh"   # for URLs written by users: no ext::, no remote helpers
ENV_USERNAME = "HELM_OPERATOR_GIT_USERNAME"
ENV_PASSWORD = "HELM_OPERATOR_GIT_PASSWORD"
# git runs it with "get", "store" or "erase"; it answers "get" from the environment only.
CREDENTIAL_HELPER = (
    '!f() { if [ "$1" = get ]; then printf \'username=%s\\npassword=%s\\n\' '
    '"$' + ENV_USERNAME + '" "$' + ENV_PASSWORD + '"; fi; }; f'
)
# Variables of our own environment that would point git at another repository.
_REDIRECTING = (
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_CEILING_DIRECTORIES", "GIT_CONFIG", "GIT_PREFIX",
    "GIT_QUARANTINE_PATH",
)
_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="git")


# ---- errors ---------------------------------------------------------------------------


class GitError(Exception):
    """git failed. The message says what (`op`), for which `url`, why and what to do."""

    def __init__(self, reason: str, *, op: str = "", url: str = "", advice: str = "", detail: str = "") -> None:
        self.op, self.url = op, redact_url(url)
        self.reason, self.advice, self.detail = redact_text(reason), advice, redact_text(detail)
        where = f"{op} of {self.url}" if op and url else op
        super().__init__(f"{where} failed: {self.explanation}" if where else self.explanation)

    @property
    def explanation(self) -> str:
        """Why and what to do, without the operation and URL (for callers with their own wording)."""
        text = self.reason + (f"; {self.advice}" if self.advice else "")
        return text + (f" ({self.detail})" if self.detail and self.detail != self.reason else "")


class Timeout(GitError):
    """git ran longer than the call's timeout and was killed."""


class Unreachable(GitError):
    """The remote could not be reached (DNS, connection, server error): worth another try."""


class AuthRefused(GitError):
    """The remote refused the credentials (https) or the key (ssh)."""


class HostKeyUnknown(GitError):
    """The ssh host key is not in known_hosts, or does not match it."""


class NotFound(GitError):
    """The repository, branch or ref does not exist (or is hidden from these credentials)."""


class PushRejected(GitError):
    """The push was refused because the remote branch moved: fetch, re-apply, push again."""


# ---- remotes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """https basic auth: a username and a password or token."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Remote:
    """A Git remote and how to reach it.

    Credentials written into an http(s) `url` are moved to `credentials`
    (unless credentials are given), so `url` is safe to hand to git, store
    and show. `shown` is how messages name it; the advice fields are what a
    refusal tells the user to check, in the words of the caller's settings.
    """

    url: str
    credentials: Credentials | None = field(default=None, repr=False)
    ssh_command: str | None = None
    ssh_key: Path | None = None
    known_hosts: Path | None = None
    shown: str = ""
    auth_advice: str = "check the username and password (token)"
    not_found_advice: str = "check the repository URL and the branch or ref"

    def __post_init__(self) -> None:
        bare, from_url = split_userinfo(self.url.strip())
        object.__setattr__(self, "url", bare)
        if self.credentials is None and from_url is not None:
            object.__setattr__(self, "credentials", Credentials(*from_url))
        if not self.shown:
            object.__setattr__(self, "shown", redact_url(bare))

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings never to show: the password, and a token sent as the username."""
        c = self.credentials
        if c is None:
            return ()
        return (c.password,) if c.password else (c.username,)


def ssh_command(key: Path | None = None, known_hosts: Path | None = None) -> str:
    """A non-interactive ssh that only talks to hosts whose key it knows."""
    ssh = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    if known_hosts is not None:
        ssh += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
    if key is not None:
        ssh += ["-i", str(key), "-o", "IdentitiesOnly=yes"]
    return " ".join(shlex.quote(a) for a in ssh)


# ---- classifying failures ------------------------------------------------------------------

_HOST_KEY = re.compile(r"host key verification failed|remote host identification has changed"
                       r"|host key is known for|no \S+ host key is known")
_SSH_KEY = re.compile(r"permission denied \(publickey")
_HTTP_AUTH = re.compile(r"authentication failed|could not read (username|password)|terminal prompts disabled"
                        r"|returned error: 40[13]|invalid username or password")
_RACE = re.compile(r"non-fast-forward|fetch first|\[rejected\]|failed to update ref|cannot lock ref|stale info")
_NOT_FOUND = re.compile(r"repository not found|does not appear to be a git repository|does not exist"
                        r"|couldn't find remote ref|returned error: 404|not found")
_UNREACHABLE = re.compile(r"could not resolve|connection refused|timed out|failed to connect|network is unreachable"
                          r"|couldn't connect|no route to host|connection reset|returned error: 5\d\d|rpc failed"
                          r"|the remote end hung up unexpectedly|early eof")
_TELLING = ("fatal:", "error:", "ssh:", "remote:", "!")


def summarize(stderr: str) -> str:
    """The lines of git's (already redacted) stderr that say what went wrong."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    telling = [line for line in lines if line.lower().startswith(_TELLING)]
    return " / ".join((telling or lines[-1:])[:2])


def classify(stderr: str, *, op: str, remote: Remote | None, command: str = "") -> GitError:
    """The error for a failed git `command` (its subcommand), from its redacted stderr."""
    text = stderr.lower()
    detail = summarize(stderr) or "no error output"
    url = remote.shown if remote else ""
    kw: dict[str, Any] = {"op": op, "url": url, "detail": detail}
    if _HOST_KEY.search(text):
        host, port = _ssh_host(remote.url if remote else "")
        known = str((remote.known_hosts if remote else None) or _ssh_option(remote, r"UserKnownHostsFile=(\S+)")
                    or "~/.ssh/known_hosts")
        where = f"{host} port {port}" if port else host
        scan = f"ssh-keyscan -p {port} {host}" if port else f"ssh-keyscan {host}"
        return HostKeyUnknown(f"refused to connect: the SSH host key of {where} is not in {known} or does not "
                              f"match it", advice=f"verify the host's fingerprint, then add it (for example "
                              f"`{scan} >> {known}`)", **kw)
    if _SSH_KEY.search(text):
        key = (remote.ssh_key if remote else None) or _ssh_option(remote, r"-i\s+(\S+)") or "(default key)"
        return AuthRefused(f"the SSH server refused the key {key}",
                           advice="add its public key as a deploy key with the needed access", **kw)
    if _HTTP_AUTH.search(text):
        return AuthRefused("https authentication failed",
                           advice=remote.auth_advice if remote else "check the credentials", **kw)
    if command == "push" and _RACE.search(text):
        return PushRejected("the push was rejected: the remote branch moved",
                            advice="fetch, re-apply the change on the new head and push again", **kw)
    if _NOT_FOUND.search(text):
        return NotFound("the repository, branch or ref was not found",
                        advice=remote.not_found_advice if remote else "", **kw)
    if _UNREACHABLE.search(text):
        return Unreachable("the server is unreachable",
                           advice="check the URL and the network, or try again later", **kw)
    return GitError(detail, op=op, url=url)


def _ssh_host(url: str) -> tuple[str, str | None]:
    """(host, port or None) of an ssh URL or scp-like address."""
    m = re.match(r"^ssh://(?:[^@/]+@)?(\[[^\]]+\]|[^:/]+)(?::(\d+))?", url)
    if m:
        return m[1], m[2]
    m = re.match(r"^(?:[^@/]+@)?([^:/]+):", url)
    return (m[1], None) if m else (url, None)


def _ssh_option(remote: Remote | None, pattern: str) -> str | None:
    """An option of the remote's ssh command (the key, the known_hosts file), to name it in advice."""
    m = re.search(pattern, remote.ssh_command or "") if remote else None
    return m[1].strip("'\"") if m else None


# ---- running --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Completed:
    """A finished git call: exit status, stdout, and stderr with secrets removed."""

    status: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace").strip()


class GitRunner:
    """Runs git for one remote (or none) with one timeout and one environment policy.

    `isolated` (for the operator's own remotes) ignores the machine's
    credential helpers and hooks and never asks anyone for a password; off
    (for a person's CLI), the user's git configuration applies. `protocols`
    limits the transports git may use (`SAFE_PROTOCOLS` for URLs users write).
    """

    def __init__(self, remote: Remote | None = None, *, timeout: float = DEFAULT_TIMEOUT, git: str = "git",
                 isolated: bool = True, protocols: str | None = None, env: Mapping[str, str] | None = None,
                 attempts: int = NETWORK_ATTEMPTS) -> None:
        self.remote, self.timeout, self.git, self.attempts = remote, timeout, git, attempts
        self.isolated, self.protocols, self.env = isolated, protocols, dict(env or {})

    @property
    def shown(self) -> str:
        return self.remote.shown if self.remote else ""

    def run(self, *args: str, cwd: Path | None = None, git_dir: Path | None = None, stdin: bytes | None = None,
            stdout: IO[bytes] | None = None, check: bool = True, env: Mapping[str, str] | None = None,
            op: str | None = None) -> Completed:
        """Run ``git [--git-dir G] args`` and wait; raise a `GitError` when `check` and it fails.

        Blocking: for code outside the event loop (the CLI). A timeout raises
        `Timeout` even without `check`.
        """
        call = functools.partial(self._once, args, cwd, git_dir, stdin, stdout, check, env, op)
        return Retrying(**self._retry_policy(args, op))(call)

    async def arun(self, *args: str, cwd: Path | None = None, git_dir: Path | None = None,
                   stdin: bytes | None = None, stdout: IO[bytes] | None = None, check: bool = True,
                   env: Mapping[str, str] | None = None, op: str | None = None) -> Completed:
        """`run` in the runner's thread pool; retries wait on the event loop."""
        call = functools.partial(self._once, args, cwd, git_dir, stdin, stdout, check, env, op)

        async def once() -> Completed:
            return await asyncio.get_running_loop().run_in_executor(_POOL, call)

        return await AsyncRetrying(**self._retry_policy(args, op))(once)

    # ---- internals ---------------------------------------------------------------------------

    def _retry_policy(self, args: tuple[str, ...], op: str | None) -> dict[str, Any]:
        network = bool(args) and args[0] in NETWORK_COMMANDS
        what = op or f"git {args[0] if args else ''}"

        def note(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.info("%s; trying again in %.1fs (attempt %d of %d)", error or what,
                     state.upcoming_sleep, state.attempt_number + 1, self.attempts)

        return {"retry": retry_if_exception_type(Unreachable),
                "stop": stop_after_attempt(self.attempts if network else 1),
                "wait": wait_exponential(multiplier=0.5, max=4), "before_sleep": note, "reraise": True}

    def _once(self, args: tuple[str, ...], cwd: Path | None, git_dir: Path | None, stdin: bytes | None,
              stdout: IO[bytes] | None, check: bool, env: Mapping[str, str] | None, op: str | None) -> Completed:
        op = op or f"git {args[0] if args else ''}"
        environment = {**self._environment(op), **(env or {})}
        unset = [name for name in _REDIRECTING if name in os.environ]
        prefix = ["env", *(arg for name in unset for arg in ("-u", name))] if unset else []
        command = [*prefix, self.git, *(["--git-dir", str(git_dir)] if git_dir else []), *args]
        started = time.monotonic()
        try:
            with _input(stdin) as istream:
                result: Any = Git(str(cwd) if cwd else None).execute(
                    command, istream=cast("BinaryIO | None", istream), output_stream=cast("BinaryIO | None", stdout),
                    env=environment, kill_after_timeout=self.timeout, with_extended_output=True,
                    with_exceptions=False, stdout_as_string=False, strip_newline_in_stdout=False)
            status, out, err = cast("tuple[int, bytes | None, str | bytes]", result)
        except GitCommandNotFound:
            raise GitError(f"cannot run {self.git}", op=op, url=self.shown,
                           advice="is git installed and on the PATH?") from None
        elapsed = time.monotonic() - started
        secrets = self.remote.secrets if self.remote else ()
        stderr = scrub(redact_text(err if isinstance(err, str) else err.decode("utf-8", "replace")), secrets)
        log.debug("%s%s: exit %d in %.2fs", op, f" of {self.shown}" if self.shown else "", status, elapsed)
        if status != 0 and elapsed >= self.timeout:
            raise Timeout(f"timed out after {self.timeout:g}s",
                          advice="the server is slow or unreachable; try again later", op=op, url=self.shown)
        if status != 0 and check:
            raise classify(stderr, op=op, remote=self.remote, command=args[0] if args else "")
        return Completed(status, out if isinstance(out, bytes) else b"", stderr)

    def _environment(self, op: str) -> dict[str, str]:
        env = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "LANGUAGE": "C", "GIT_LITERAL_PATHSPECS": "1"}
        config: list[tuple[str, str]] = []
        first = 0
        if self.isolated:
            env.update(GIT_ASKPASS="", GIT_CONFIG_PARAMETERS="")
            config += [("credential.helper", ""), ("core.hooksPath", os.devnull)]
        else:   # the user's own command-line configuration stays; ours comes after it
            count = os.environ.get("GIT_CONFIG_COUNT", "0")
            first = int(count) if count.isdigit() else 0
        if self.protocols:
            env["GIT_ALLOW_PROTOCOL"] = self.protocols
        remote = self.remote
        if remote is not None and remote.ssh_command:
            env["GIT_SSH_COMMAND"] = remote.ssh_command
        creds = remote.credentials if remote else None
        if remote is not None and creds is not None and "://" in remote.url:
            parts = urlsplit(remote.url)
            if parts.scheme.lower() in ("http", "https"):
                if any(c in value for value in (creds.username, creds.password) for c in "\r\n\0"):
                    raise AuthRefused("the username or password contains a line break", op=op, url=remote.shown,
                                      advice=remote.auth_advice)
                key = f"credential.{parts.scheme}://{parts.netloc}.helper"
                config += [(key, ""), (key, CREDENTIAL_HELPER)]
                env.update({ENV_USERNAME: creds.username, ENV_PASSWORD: creds.password})
        if config:
            env["GIT_CONFIG_COUNT"] = str(first + len(config))
            for i, (key, value) in enumerate(config, first):
                env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
        env.update(self.env)
        return env


@contextmanager
def _input(data: bytes | None) -> Iterator[IO[bytes] | None]:
    """`data` as a file git can read as its stdin."""
    if data is None:
        yield None
        return
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.seek(0)
        yield f
