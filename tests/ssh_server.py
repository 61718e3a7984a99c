"""Debian's sshd on 127.0.0.1 for the sharing tests: a DVC SSH remote that the test starts and stops.

Key authentication only (a key made here), the sftp subsystem DVC's SSH plugin needs ("Can't create
any SFTP connections!" without it), no configuration file of the machine (`-f /dev/null`).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def unavailable() -> str | None:
    """Why no sshd can be started here, or None."""
    if not Path(SSHD).is_file() or shutil.which("ssh-keygen") is None:
        return "Debian's openssh-server (/usr/sbin/sshd, ssh-keygen) is not installed"
    try:
        import dvc_ssh  # noqa: F401
    except ImportError:
        return "DVC's SSH plugin is not installed (pip install dvc-ssh, or the test extra)"
    if os.geteuid() != 0:
        return "sshd with privilege separation needs root here"
    return None


@dataclass
class Server:
    port: int
    user: str
    keyfile: Path

    def url(self, path: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{path}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def sshd(directory: Path):
    """A running sshd on 127.0.0.1 that takes the key directory/client; stopped on exit."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / name)], check=True)
    authorized = directory / "authorized_keys"
    shutil.copy(directory / "client.pub", authorized)
    authorized.chmod(0o600)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation (Debian's service makes it)
    port = _free_port()
    log = (directory / "sshd.log").open("w")
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", "/dev/null", "-h", str(directory / "host"), "-p", str(port),
         "-o", "ListenAddress=127.0.0.1", "-o", "Subsystem=sftp internal-sftp",
         "-o", f"AuthorizedKeysFile={authorized}", "-o", "StrictModes=no", "-o", "PasswordAuthentication=no",
         "-o", f"PidFile={directory / 'sshd.pid'}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while "Server listening" not in (directory / "sshd.log").read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {(directory / 'sshd.log').read_text()}")
            time.sleep(0.05)
        yield Server(port, getpass.getuser(), directory / "client")
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
