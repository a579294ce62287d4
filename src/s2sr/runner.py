"""Overlapping stages of a product run: decode ahead, compute here, write behind.

Band windows of the next tiles are decoded in reader threads (GDAL releases the GIL while it decodes) while
the nets run on this tile in the calling thread, and finished tiles are converted and written by one writer
thread. At most ``readers + 1`` tiles wait decoded and two wait to be written, so memory stays bounded by a
few tiles. Tiles are computed and written in the same order as the sequential loop, by the same functions,
so the output is the same bit for bit. An error in any stage stops the run and is raised here.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
WRITES_IN_FLIGHT = 2


@dataclass
class StageTimes:
    """Seconds spent in each stage of a run, summed over tiles and threads (for ``make bench``).

    With overlapping stages the sums can exceed the run's wall time: they say where the work goes.
    """

    seconds: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    @contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start)

    def timed(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn``, its calls counted under ``stage``."""

        def call(*args: Any) -> Any:
            with self.timing(stage):
                return fn(*args)

        return call


def run_tiles(
    tiles: Iterable[T],
    read: Callable[[T], Any],
    compute: Callable[[T, Any], Any],
    write: Callable[[T, Any], None],
    threads: int = 1,
    progress: Callable[[int], None] | None = None,
    times: StageTimes | None = None,
) -> None:
    """``write(tile, compute(tile, read(tile)))`` for every tile, in order; stages overlap when ``threads`` > 1.

    ``times`` collects the seconds spent reading, computing and writing.
    """
    if times is not None:
        read, compute, write = times.timed("read", read), times.timed("compute", compute), times.timed("write", write)
    if threads <= 1:
        for done, tile in enumerate(tiles, start=1):
            write(tile, compute(tile, read(tile)))
            if progress is not None:
                progress(done)
        return
    readers = max(1, threads - 1)
    read_pool = ThreadPoolExecutor(readers, thread_name_prefix="s2sr-read")
    write_pool = ThreadPoolExecutor(1, thread_name_prefix="s2sr-write")
    queue: deque[tuple[T, Future]] = deque()
    writes: deque[Future] = deque()
    todo = iter(tiles)
    failed = threading.Event()

    def write_unless_failed(tile: T, result: Any) -> None:
        if failed.is_set():  # a write already queued behind one that failed: the run is over
            return
        try:
            write(tile, result)
        except BaseException:
            failed.set()
            raise

    def read_ahead() -> None:
        for tile in todo:
            queue.append((tile, read_pool.submit(read, tile)))
            if len(queue) > readers:
                return

    try:
        read_ahead()
        done = 0
        while queue:
            tile, decoded = queue.popleft()
            context = decoded.result()
            read_ahead()
            writes.append(write_pool.submit(write_unless_failed, tile, compute(tile, context)))
            while len(writes) > WRITES_IN_FLIGHT or (writes and writes[0].done()):
                writes.popleft().result()
            done += 1
            if progress is not None:
                progress(done)
        while writes:
            writes.popleft().result()
    finally:
        read_pool.shutdown(wait=True, cancel_futures=True)
        write_pool.shutdown(wait=True, cancel_futures=True)
