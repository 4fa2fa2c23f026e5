"""Time limits that work in any thread.

math-verify's own timeouts use ``signal.alarm``, which only works in the main thread (in a worker
thread it raises, and in a data-loader or a web server the grader would hang on a pathological
expression). :func:`call_with_timeout` uses ``signal.setitimer`` in the main thread (cheap) and, in any
other thread, runs the call in a persistent helper process that is killed and replaced when it
overruns. Only picklable, module-level functions are run this way; model text is passed as data and is
never executed.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

T = TypeVar("T")


class GradingTimeout(Exception):
    """The call ran past its time limit."""


_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _get_pool() -> ProcessPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            # forkserver: never fork a process that holds torch's thread pools
            _pool = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("forkserver"))
        return _pool


def _reset_pool() -> None:
    global _pool
    with _pool_lock:
        if _pool is not None:
            for proc in list(getattr(_pool, "_processes", {}).values()):
                proc.kill()
            _pool.shutdown(wait=False, cancel_futures=True)
            _pool = None


def _alarm_handler(signum, frame):
    raise GradingTimeout()


def call_with_timeout(fn: Callable[..., T], *args: Any, timeout: float | None = 5.0) -> T:
    """Run ``fn(*args)``; raise :class:`GradingTimeout` if it takes longer than ``timeout`` seconds."""
    if timeout is None or timeout <= 0:
        return fn(*args)
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        old = signal.signal(signal.SIGALRM, _alarm_handler)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            return fn(*args)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    future = _get_pool().submit(fn, *args)
    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        _reset_pool()
        raise GradingTimeout() from None
