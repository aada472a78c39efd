"""The relay's log filter: Postfix's syslog lines reach the journal without any
address (docs/mailguard.md, "Logs").

Postfix writes `to=<...>`, `from=<...>` and reply texts holding addresses in
every delivery line, and has no setting to leave them out. Its unit sees this
filter's datagram socket as `/dev/log` (a BindPaths= drop-in); the filter
replaces every address with `[redacted]` and hands the line, with its syslog
priority and tag, to the journal's own syslog socket.

Run by isoloir-maillog.service, socket-activated (sd_listen_fds: fd 3).
"""

from __future__ import annotations

import os
import re
import socket
import sys

LISTEN_FD = 3
JOURNAL_SYSLOG = "/run/systemd/journal/dev-log"
MAX_DATAGRAM = 65536
# Anything around an @ that could be part of an address, quoted local parts included.
_ADDRESS = re.compile(rb"[^\s<>()\[\],;:\"'=@]*@[^\s<>()\[\],;:\"'=]+")
REDACTED = b"[redacted]"


def redact(line: bytes) -> bytes:
    """The line with every address (anything with an @) replaced."""
    return _ADDRESS.sub(REDACTED, line)


def listening_socket() -> socket.socket:
    """The datagram socket systemd passed (LISTEN_PID/LISTEN_FDS), else an error."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
        raise SystemExit("isoloir-maillog: run by isoloir-maillog.socket (one datagram socket)")
    return socket.socket(fileno=LISTEN_FD)


def run(source: socket.socket, target: str = JOURNAL_SYSLOG) -> None:
    out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    while True:
        data = source.recv(MAX_DATAGRAM)
        if not data:
            continue
        try:
            out.sendto(redact(data), target)
        except OSError:
            # The journal is restarting: the line is lost, never written unfiltered.
            continue


def main() -> int:
    run(listening_socket())
    return 0


if __name__ == "__main__":
    sys.exit(main())
