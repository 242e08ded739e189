"""Run requests concurrently and stop cleanly at the first failure, keeping every finished result.

A thin layer over :class:`concurrent.futures.ThreadPoolExecutor`: results are handed to
``on_result`` in the calling thread as they complete (so the caller can append and flush them),
and after a failure no new request starts, requests already in flight finish and are handed over,
then the first error is raised.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def run_concurrently(items: Iterable[T], work: Callable[[T], R], on_result: Callable[[T, R], None],
                     concurrency: int = 1, on_interrupt: Callable[[], None] | None = None) -> None:
    """Call ``work`` on every item with at most ``concurrency`` in flight; ``on_result`` runs in this thread.

    On an interrupt of this thread (Ctrl-C, or SIGTERM turned into an exception) no new item starts and
    ``on_interrupt`` is called, so that the items in flight can be cut short (their threads are waited for).
    """
    if concurrency <= 1:  # no threads at all: the cheapest path, and the order of the items is kept
        try:
            for item in items:
                on_result(item, work(item))
        except Exception:
            raise
        except BaseException:
            if on_interrupt is not None:
                on_interrupt()
            raise
        return
    pending = iter(items)
    error: BaseException | None = None
    with ThreadPoolExecutor(max(1, concurrency)) as pool:
        running: dict[Future, T] = {}

        def fill() -> None:
            while error is None and len(running) < max(1, concurrency):
                item = next(pending, _END)
                if item is _END:
                    return
                running[pool.submit(work, item)] = item

        try:
            fill()
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    item = running.pop(fut)
                    exc = fut.exception()
                    if exc is not None:
                        error = error or exc
                        continue
                    try:
                        on_result(item, fut.result())
                    except Exception as exc2:  # noqa: BLE001 - a failing writer stops the run too
                        error = error or exc2
                fill()
        except BaseException:  # interrupted: start nothing more, cut the requests in flight short
            pool.shutdown(wait=False, cancel_futures=True)
            if on_interrupt is not None:
                on_interrupt()
            raise
    if error is not None:
        raise error


_END = object()
