"""Run a generator in a background thread, one item ahead of its consumer.

For pipelines where producing an item is CPU work in Python and consuming it mostly waits on another process (a
database): the two overlap. The queue is bounded, so memory holds at most ``depth`` items besides the one being
consumed and the one being produced. An exception in the producer is raised in the consumer at the point it
happened; a consumer that stops early (break, exception) stops the producer and closes its generator.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


def in_background(items: Iterator[T], *, depth: int = 1) -> Iterator[T]:
    channel: queue.Queue[tuple[object, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(kind: object, value: object) -> bool:
        while not stop.is_set():
            try:
                channel.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put("item", item):
                    return
            put(_END, None)
        except BaseException as exc:  # handed to the consumer, which raises it
            put("raise", exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="in-background", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = channel.get()
            if kind is _END:
                return
            if kind == "raise":
                assert isinstance(value, BaseException)
                raise value
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
