"""A stand-in clock for the app's age-limited caches (`page_cache.AgedCache`), which read time.monotonic:
time-machine does not move it, and sleeping would make the tests slow and a slow machine's delays age
the copies too."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from app.services.core.page_cache import AgedCache


@contextmanager
def stand_in_clock(cache: AgedCache) -> Iterator[Callable[[float], None]]:
    """Give `cache` a clock that stands still until `wait(seconds)` moves it; yields `wait`.

    It starts at the real clock's next whole second: copies kept before are no younger than that, and an
    age adds up exactly (a float start plus 60 less that start may come to 59.99999999999).
    """
    real_clock, waited = cache._clock, [0.0]
    start = math.ceil(real_clock())
    cache._clock = lambda: start + waited[0]

    def wait(seconds: float) -> None:
        waited[0] += seconds

    try:
        yield wait
    finally:
        cache._clock = real_clock
