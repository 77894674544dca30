"""Keep N cores busy for a bounded time, to run the test suite on a loaded machine.

    python tools/cpu_hog.py --cores 2 --seconds 600          # busy for 10 minutes, then stops
    python tools/cpu_hog.py --cores 2 --seconds 1800 -- make test   # busy while `make test` runs

Each busy process spins on its own deadline, so the load ends after ``--seconds`` even if this
process is killed; with a command after ``--`` it ends as soon as the command does, and the
exit status is the command's. Nothing here touches the network or the disk.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import subprocess
import sys
import time

MAX_SECONDS = 4 * 3600  # a hog forgotten in a terminal still stops


def spin(deadline: float) -> None:
    """Burn one core until ``deadline`` (monotonic), whatever happens to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    while time.monotonic() < deadline:
        for _ in range(100_000):
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="busy processes")
    parser.add_argument("--seconds", type=float, required=True, help=f"at most {MAX_SECONDS}")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- a command to run loaded")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= MAX_SECONDS or args.cores < 1:
        parser.error(f"--seconds must be above 0 and at most {MAX_SECONDS}; --cores at least 1")
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    deadline = time.monotonic() + args.seconds
    hogs = [multiprocessing.Process(target=spin, args=(deadline,)) for _ in range(args.cores)]
    for hog in hogs:
        hog.start()
    print(f"cpu_hog: {args.cores} busy processes for at most {args.seconds:.0f} s", flush=True)
    status = 0
    try:
        if command:
            status = subprocess.run(command, check=False).returncode
        else:
            for hog in hogs:
                hog.join()
    except KeyboardInterrupt:
        status = 130
    finally:
        for hog in hogs:
            if hog.is_alive():
                hog.terminate()
            hog.join()
    print("cpu_hog: stopped", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
