"""Read a child process's output line by line while it runs, to wait on what it reports.

A child that proves something about its own timing (a greenlet kept ticking while a fetch was
held) prints `tick <time.monotonic()>` lines as it goes; CLOCK_MONOTONIC is one clock for the
whole machine, so the test can count the ticks that came after a moment of its own.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable

HANG_GUARD_S = 60.0  # how long to wait for a line the child must print: only a hang guard


class ChildLines:
    """Collect a running child's stdout lines in a thread of their own."""

    def __init__(self, process: subprocess.Popen[str]):
        assert process.stdout is not None, "start the child with stdout=subprocess.PIPE"
        self.process = process
        self.lines: list[str] = []
        self.ended = False
        self._stderr: list[str] = []
        self._changed = threading.Condition()
        self._readers = [threading.Thread(target=self._read, daemon=True)]
        if process.stderr is not None:
            # Drained as it comes, so that a chatty child never blocks on a full pipe.
            self._readers.append(threading.Thread(target=self._drain_stderr, daemon=True))
        for reader in self._readers:
            reader.start()

    def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        self._stderr.append(self.process.stderr.read())

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    def wait_until(
        self, found: Callable[[list[str]], bool], what: str, timeout: float = HANG_GUARD_S
    ) -> list[str]:
        """Wait until found(lines) holds and return the lines; fail on timeout or on exit."""
        with self._changed:
            if not self._changed.wait_for(lambda: found(self.lines) or self.ended, timeout):
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            if not found(self.lines):
                raise AssertionError(f"the child ended before {what}: {self.lines[-20:]}")
            return list(self.lines)

    def ticks_after(self, moment: float) -> int:
        """Return how many `tick <monotonic>` lines were stamped after `moment`."""
        with self._changed:
            return sum(
                1
                for line in self.lines
                if line.startswith("tick ") and float(line.split()[1]) > moment
            )

    def wait_for_ticks_after(self, moment: float, count: int, what: str) -> None:
        """Wait until the child has ticked `count` times after `moment`."""
        self.wait_until(lambda _: self.ticks_after(moment) >= count, f"{count} ticks {what}")

    def finish(self, timeout: float = HANG_GUARD_S) -> tuple[list[str], str]:
        """Wait for the child to exit; return its stdout lines and its stderr."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for reader in self._readers:
            reader.join(timeout)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()
        return list(self.lines), "".join(self._stderr)

    def exited(self) -> bool:
        """Return whether the child has exited."""
        return self.process.poll() is not None
