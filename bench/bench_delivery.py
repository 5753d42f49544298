"""How long one delivery attempt takes, and what it holds in memory, against receivers that
misbehave. Prints figures; asserts nothing.

    .venv/bin/python bench/bench_delivery.py [--timeout 5s] [--repeat 3]

Each receiver runs on 127.0.0.1 (tests/support/hostile.py); each attempt is the signed POST
the alert dispatcher makes, with the whole exchange under ``--timeout`` (alerting.timeout).
The tests check that the attempt ends and what it says; the seconds are measured here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/support, when run as a file

from cbmon.delivery.post import post_signed
from cbmon.durations import format_duration, parse_duration
from tests.support.hostile import (
    DRIP_BODY,
    DRIP_STATUS,
    HUGE_BODY,
    OK,
    SILENT,
    hostile,
    server_context,
)
from tests.support.tls import make_self_signed

CASES = [
    (OK, "answers 200 at once"),
    (SILENT, "reads the request, never answers"),
    (DRIP_STATUS, "status line and headers, 1 byte/s"),
    (DRIP_BODY, "200 at once, then its body at 1 byte/s"),
    (HUGE_BODY, "200 and a 200 MB body, as fast as it is read"),
    ("self-signed", "TLS with a self-signed certificate"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", default="5s", help="alerting.timeout (default 5s)")
    parser.add_argument("--repeat", type=int, default=3, help="attempts per receiver (3)")
    args = parser.parse_args()
    timeout = parse_duration(args.timeout)
    print(f"one delivery attempt, alerting.timeout {format_duration(timeout)}, median of "
          f"{args.repeat}")  # fmt: skip
    print(f"{'receiver':<46} {'attempt':>9} {'Python peak':>12} {'sent to cbmon':>14}  outcome")
    with tempfile.TemporaryDirectory() as folder:
        cert = make_self_signed(Path(folder))
        for behaviour, words in CASES:
            tls = server_context(cert.cert, cert.key) if behaviour == "self-signed" else None
            with hostile(OK if tls else behaviour, interval=1.0, tls=tls) as receiver:
                seconds, peaks, outcome = [], [], ""
                for _ in range(args.repeat):
                    tracemalloc.start()
                    started = time.perf_counter()
                    attempt = post_signed(
                        receiver.url, b"{}", msg_id="msg_bench", secret=None, timeout=timeout
                    )
                    seconds.append(time.perf_counter() - started)
                    peaks.append(tracemalloc.get_traced_memory()[1])
                    tracemalloc.stop()
                    outcome = "delivered" if attempt.delivered else str(attempt.error)
                sent = receiver.sent / max(1, receiver.connections)
            print(
                f"{words:<46} {statistics.median(seconds):>8.3f}s "
                f"{statistics.median(peaks) / 1024:>9.0f} KiB {sent / 1024:>10.0f} KiB  {outcome}"
            )


if __name__ == "__main__":
    main()
