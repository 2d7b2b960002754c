"""The asyncio event loop that runs a :class:`~streamml.log.kafka.KafkaLog`'s aiokafka clients.

aiokafka clients are bound to one event loop and are not thread-safe, while the
log interface is synchronous. Each ``KafkaLog`` owns one :class:`LoopThread`: a
daemon thread running an event loop, started on first use and stopped by
``KafkaLog.close()``. Callers hand it coroutines and block on the result::

    >>> import asyncio
    >>> loop = LoopThread("doc")
    >>> loop.run(asyncio.sleep(0, result=42))
    42
    >>> loop.call(sorted, [3, 1, 2])
    [1, 2, 3]
    >>> loop.stop()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: Upper bound of one blocking call into the loop when the caller gives none.
DEFAULT_TIMEOUT_S = 120.0


class LoopThread:
    """An event loop in a daemon thread; coroutines are submitted from other threads."""

    def __init__(self, name: str = "streamml-kafka") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, started on first use."""
        loop = self._loop
        if loop is not None:
            return loop
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                loop.call_soon(ready.set)
                self._thread = threading.Thread(
                    target=loop.run_forever, name=self._name, daemon=True
                )
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    @property
    def running(self) -> bool:
        return self._loop is not None

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop; return a thread-safe future of its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run ``coro`` on the loop; wait for its result (``TimeoutError`` after ``timeout_s``)."""
        future = self.submit(coro)
        try:
            return future.result(DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def call(self, fn: Callable[..., T], *args: Any, timeout_s: float | None = None) -> T:
        """Call a plain function in the loop thread (for non-thread-safe aiokafka methods)."""

        async def call() -> T:
            return fn(*args)

        return self.run(call(), timeout_s)

    def stop(self) -> None:
        """Cancel leftover tasks, stop the loop and join its thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return

        async def drain() -> None:
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await loop.shutdown_asyncgens()

        try:
            asyncio.run_coroutine_threadsafe(drain(), loop).result(10.0)
        except (concurrent.futures.TimeoutError, RuntimeError):
            pass
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10.0)
        if not thread.is_alive():
            loop.close()
