"""Dask worker preload: a Ctrl-C at the controller's terminal must not kill the workers.

The terminal sends SIGINT to its whole foreground process group, local workers included. The
controller handles Ctrl-C itself (stop scheduling, SIGTERM to running stages, record finished ones);
a worker dying of it would instead make the scheduler retry its stage elsewhere.
"""

import signal
import threading


def dask_setup(worker) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
