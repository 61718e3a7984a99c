"""Stops a stage command's (or the tracking server's) whole process group when the process that started it dies.

Run as a script: `python orphan_guard.py GRACE_SECONDS ARGV...`, as `guarded(ARGV, GRACE)` spells it,
started by `subprocess.Popen(..., start_new_session=True, preexec_fn=die_with_parent)`. The worker starts
it in a new session (so it leads the process group) with PR_SET_PDEATHSIG = SIGHUP; it starts ARGV
(the user's shell with the stage's cmd) in its own group and waits. The kernel's death signal
reaches only the guard, never the shell's children: `/bin/sh -c "python train.py"` (dash) forks
python instead of exec'ing it, so a death signal set on the shell alone leaves python running as an
orphan that races the stage's retry on another worker. On SIGHUP the guard sends SIGTERM to the
whole group (training saves its state and marks its MLflow run KILLED), then SIGKILL after GRACE
seconds if any of it is still there. A SIGTERM sent to the group by the controller reaches the
command directly; the guard ignores it and exits with the command's status.

Kept free of rescom imports so it starts in milliseconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

_orphaned_at: float | None = None


def guarded(argv: list[str], grace: float) -> list[str]:
    """argv run under this guard."""
    return [sys.executable, __file__, str(grace), *argv]


def die_with_parent() -> None:
    """In the guard before exec: SIGHUP when the process that started it dies (Linux). The kernel
    sends it when the starting *thread* ends, so start the guard from a thread that lives as long."""
    import contextlib
    import ctypes

    with contextlib.suppress(OSError):  # not Linux: an orphan is possible after kill -9 of the starter
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGHUP)  # 1 = PR_SET_PDEATHSIG


def _stop_group(signum, frame) -> None:
    """The worker died: SIGTERM to every process of our group (ourselves included, ignored)."""
    global _orphaned_at
    if _orphaned_at is None:
        _orphaned_at = time.monotonic()
        os.killpg(0, signal.SIGTERM)


def _others_in_group() -> bool:
    """Whether any process but this one is left in our process group (from /proc: Linux, as the
    death signal itself)."""
    group, me = os.getpgid(0), os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue  # gone meanwhile
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        if fields[0] != "Z" and int(fields[2]) == group:
            return True
    return False


def main(grace: float, argv: list[str]) -> int:
    # Python-level handlers (not SIG_IGN) so the command does not inherit them across exec.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    signal.signal(signal.SIGHUP, _stop_group)
    command = subprocess.Popen(argv)
    if os.getppid() == 1:  # the worker died before the death signal was armed
        _stop_group(signal.SIGHUP, None)
    while True:
        try:
            returncode = command.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            if _orphaned_at is not None and time.monotonic() - _orphaned_at > grace:
                os.killpg(0, signal.SIGKILL)
    if _orphaned_at is not None:
        # The shell may have gone first; wait for the rest of the group (its children) too.
        while _others_in_group() and time.monotonic() - _orphaned_at <= grace:
            time.sleep(0.1)
        if _others_in_group():
            os.killpg(0, signal.SIGKILL)
    return returncode


if __name__ == "__main__":
    sys.exit(main(float(sys.argv[1]), sys.argv[2:]))
