"""Git over ssh against a real sshd on 127.0.0.1 with its own host key:
a known host syncs and gets its tag pushed; an unknown host is refused."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cluster.localcluster import LocalCluster
from tests.integration.gitsync_support import GitRemote, free_port, get_obj, sync_once, sync_status


@dataclass
class SshServer:
    port: int
    host_public_key: str
    client_key: Path

    def url(self, repo: Path) -> str:
        return f"ssh://root@127.0.0.1:{self.port}{repo}"


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    d = tmp_path_factory.mktemp("sshd")
    keygen(d / "host_key")
    keygen(d / "client_key")
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    port = free_port()
    (d / "sshd_config").write_text(f"""ListenAddress 127.0.0.1
Port {port}
HostKey {d / 'host_key'}
AuthorizedKeysFile {d / 'authorized_keys'}
PidFile {d / 'sshd.pid'}
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
""")
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
    log = (d / "sshd.log").open("w")
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(d / "sshd_config"), "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {(d / 'sshd.log').read_text()}")
        probe = subprocess.run(["ssh-keyscan", "-p", str(port), "127.0.0.1"], capture_output=True, text=True)
        if probe.stdout.strip():
            break
        time.sleep(0.1)
    try:
        host_key = " ".join((d / "host_key.pub").read_text().split()[:2])
        yield SshServer(port, host_key, d / "client_key")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def known_hosts(path: Path, server: SshServer, key: str | None = None) -> Path:
    path.write_text(f"[127.0.0.1]:{server.port} {key or server.host_public_key}\n")
    return path


def test_ssh_remote_in_known_hosts_is_synced_and_the_tag_pushed(
        cluster: LocalCluster, sshd: SshServer, tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:6]
    remote = GitRemote(tmp_path / "git")
    remote.write("cm.yaml", f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ssh-{uid}, namespace: default}}\n")
    commit = remote.commit()
    proc = sync_once(cluster, tmp_path / "w", "--git-url", sshd.url(remote.bare),
                     "--source-name", f"ssh-{uid}", "--git-ssh-key", str(sshd.client_key),
                     "--git-known-hosts", str(known_hosts(tmp_path / "known_hosts", sshd)))
    assert proc.returncode == 0, proc.stderr
    assert get_obj(cluster, "configmap", f"ssh-{uid}", "default") is not None
    assert remote.tag() == commit


def test_an_unknown_ssh_host_key_is_refused_with_a_clear_message(
        cluster: LocalCluster, sshd: SshServer, tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:6]
    remote = GitRemote(tmp_path / "git")
    remote.write("cm.yaml", f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: nossh-{uid}, namespace: default}}\n")
    remote.commit()
    keygen(tmp_path / "other")  # known_hosts names the host, but with another key
    other = " ".join((tmp_path / "other.pub").read_text().split()[:2])
    for name, hosts in [("empty", tmp_path / "empty_known_hosts"),
                        ("wrong", known_hosts(tmp_path / "wrong_known_hosts", sshd, other))]:
        if name == "empty":
            hosts.write_text("")
        proc = sync_once(cluster, tmp_path / f"w-{name}", "--git-url", sshd.url(remote.bare),
                         "--source-name", f"nossh-{name}-{uid}", "--git-ssh-key", str(sshd.client_key),
                         "--git-known-hosts", str(hosts))
        assert proc.returncode == 1
        error = sync_status(cluster, f"nossh-{name}-{uid}")["pass_error"]
        assert "refused to connect: the SSH host key of 127.0.0.1 port" in error, error
        assert str(hosts) in error and "ssh-keyscan -p" in error
        assert get_obj(cluster, "configmap", f"nossh-{uid}", "default") is None
    assert remote.tag() is None
