#!/usr/bin/python3
"""Pushes an fd into a service's fd store as if its main process had
(root may name any pid in SCM_CREDENTIALS): fdstore_push.py PID NAME KIND.
KIND: table-bad-checksum (a sealed memfd holding a lease table whose
checksum is wrong) or null (/dev/null)."""
import fcntl
import os
import socket
import struct
import sys

pid, name, kind = int(sys.argv[1]), sys.argv[2], sys.argv[3]
if kind == "table-bad-checksum":
    # magic, version 1, 0 devices, 0 leases, reserved, next id 1, body 0, checksum
    data = b"BKLEASES" + struct.pack("<IIIIQQQ", 1, 0, 0, 0, 1, 0, 0x1234)
    fd = os.memfd_create("bad-table", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.write(fd, data)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
else:
    fd = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd)),
       (socket.SOL_SOCKET, socket.SCM_CREDENTIALS, struct.pack("iII", pid, 0, 0))]
s.sendmsg([f"FDSTORE=1\nFDNAME={name}".encode()], anc, 0, os.environ.get("NOTIFY_SOCKET") or "/run/systemd/notify")
