#!/usr/bin/env python3
"""A worker that speaks the systemd notification protocol, for readiness.yaml.

It warms up, says READY=1 with a STATUS= line on $NOTIFY_SOCKET (the socket
taskmasterd gives each instance), then feeds the watchdog every 2 seconds.
The same datagrams `systemd-notify --ready` or sd_notify(3) send.
"""

import os
import socket
import time


def notify(message: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(os.environ["NOTIFY_SOCKET"])
        s.send(message.encode())


time.sleep(0.5)  # warming up: STARTING until READY=1
notify("READY=1\nSTATUS=warmed up, serving")
while True:
    time.sleep(2)
    notify("WATCHDOG=1")
