"""How long a thread that wakes up waits for the GIL while another thread runs Python: the cost
``sys.setswitchinterval`` bounds, and why the server sets 1 ms (``journeyscope.server.run``).

A probe thread sleeps 2 ms at a time and measures how late it runs again, while a second thread runs
pure Python (as the server's writer, derive loop and timers do between their DuckDB calls), then once
alone at the same moment (what the machine adds). Interleaved rounds of the default 5 ms and 1 ms:

    python benchmarks/bench_switch.py [--rounds 3] [--seconds 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time


def _busy(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        for i in range(1000):
            x += i * i


def _lateness(seconds: float) -> list[float]:
    late = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        began = time.perf_counter()
        time.sleep(0.002)
        late.append(time.perf_counter() - began - 0.002)
    return sorted(late)


def _ms(values: list[float], q: float) -> float:
    return (statistics.median(values) if q == 0.5 else values[int(len(values) * q) - 1]) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    for _ in range(args.rounds):
        for interval in (0.005, 0.001):
            sys.setswitchinterval(interval)
            stop = threading.Event()
            busy = threading.Thread(target=_busy, args=(stop,))
            busy.start()
            shared = _lateness(args.seconds)
            stop.set()
            busy.join()
            alone = _lateness(args.seconds / 4)
            print(f"switch interval {interval * 1000:.0f} ms: wake-up delay beside a busy thread "
                  f"p50 {_ms(shared, 0.5):.2f} ms, p99 {_ms(shared, 0.99):.2f} ms; "
                  f"alone p50 {_ms(alone, 0.5):.2f} ms, p99 {_ms(alone, 0.99):.2f} ms")


if __name__ == "__main__":
    main()
