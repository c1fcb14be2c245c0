"""Read a real board's report from its serial console (the UART the firmware prints on).

The board projects print the same "key value" lines as the QEMU runs (``main.c.j2``), so a
flashed board is checked with the same parser (:func:`~.qemu.parse_run`). The port is
opened before flashing (the board prints right after its reset) in raw mode at the
console's baud rate, with the POSIX termios module: no extra dependency. Every read has a
deadline; a port that does not exist, is not a terminal, or stays silent is one line.
"""

from __future__ import annotations

import os
import select
import termios
import time
import tty

from tinymcu.errors import TinymcuError

BAUD = 115200
_SPEEDS = {9600: termios.B9600, 19200: termios.B19200, 38400: termios.B38400,
           57600: termios.B57600, 115200: termios.B115200, 230400: termios.B230400}
END = "TINYMCU_END"


class SerialConsole:
    """A serial port in raw mode; use as a context manager."""

    def __init__(self, path: str, baud: int = BAUD) -> None:
        if baud not in _SPEEDS:
            raise TinymcuError(f"--baud {baud}: choose from {', '.join(map(str, _SPEEDS))}")
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as e:
            raise TinymcuError(f"serial port {path}: {e.strerror}") from None
        self.path = path
        try:
            tty.setraw(self.fd)
            attrs = termios.tcgetattr(self.fd)
            attrs[4] = attrs[5] = _SPEEDS[baud]
            termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
            termios.tcflush(self.fd, termios.TCIFLUSH)
        except termios.error:
            os.close(self.fd)
            raise TinymcuError(f"{path}: not a serial port") from None

    def __enter__(self) -> SerialConsole:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    def read_report(self, timeout: float) -> str:
        """Everything received until the ``TINYMCU_END`` line, or an error at ``timeout``."""
        deadline = time.monotonic() + timeout
        buf = bytearray()
        while True:
            text = buf.decode("ascii", errors="replace").replace("\r", "")
            complete = text[:text.rfind("\n") + 1]
            if any(line.strip().startswith(END) for line in complete.splitlines()):
                return text
            left = deadline - time.monotonic()
            if left <= 0:
                got = f" ({len(buf)} bytes, no {END})" if buf else ""
                raise TinymcuError(f"serial port {self.path}: no complete report within "
                                   f"{timeout:g} s{got}; is the board's console wired to it "
                                   f"at {BAUD} baud?")
            ready, _, _ = select.select([self.fd], [], [], min(left, 0.5))
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except BlockingIOError:
                    continue
                except OSError as e:
                    raise TinymcuError(f"serial port {self.path}: {e.strerror}") from None
                buf += chunk
