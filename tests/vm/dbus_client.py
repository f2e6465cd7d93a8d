#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A python3-dbus client of org.barkeep.Broker1 for tests/vm/suites/50-dbus.sh.

    dbus_client.py fd DEVICE SIZE      request, check the fd, the lease object, release
    dbus_client.py errors              each refusal and its error name
    dbus_client.py expect-error NAME DEVICE SIZE [OPTION=VALUE...]
    dbus_client.py hold DEVICE SIZE FILE
                                       request and hold; write the lease path to FILE;
                                       then print every signal until killed
    dbus_client.py listen FILE         hold nothing; print every signal of the
                                       interface until killed (FILE: ready mark)
    dbus_client.py grant DEVICE SIZE FILE
                                       request, Grant to a token; write the token to
                                       FILE; hold until killed
    dbus_client.py open TOKEN [OWNER_LEASE_PATH]
                                       Open by token: check the fd and the info (and
                                       the owner's lease object's Holders); a second
                                       Open with it is refused
    dbus_client.py free DEVICE         print the device's FreeBytes from ListDevices
    dbus_client.py xml FILE DEVICE     FILE (the shipped interface XML) describes
                                       what the live objects introspect as

Prints "ok   NAME" / "FAIL NAME: why" lines and "N passed, N failed" where it checks.
Runs with the host's /usr/bin/python3 (the guest sees the host's root).
"""
import os
import sys

import dbus

NAME = "org.barkeep.Broker1"
PATH = "/org/barkeep/Broker1"
IFACE = "org.barkeep.Broker1"
passed = failed = 0


def check(name, cond, why=""):
    global passed, failed
    if cond:
        print("ok   " + name)
        passed += 1
    else:
        print("FAIL " + name + (": " + why if why else ""))
        failed += 1


def broker(bus):
    return dbus.Interface(bus.get_object(NAME, PATH), IFACE)


def fdinfo(fd):
    with open("/proc/self/fdinfo/%d" % fd) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def opts(args):
    out = {}
    for a in args:
        k, v = a.split("=", 1)
        if v in ("true", "false"):
            out[k] = dbus.Boolean(v == "true")
        elif k == "grace_ms":
            out[k] = dbus.UInt32(int(v))
        else:
            out[k] = dbus.UInt64(int(v, 0))
    return dbus.Dictionary(out, signature="sv")


def cmd_fd(device, size):
    bus = dbus.SystemBus()
    b = broker(bus)
    path, fd, info = b.RequestBuffer(device, dbus.UInt64(int(size, 0)), opts([]))
    fd = fd.take()
    n = os.lseek(fd, 0, os.SEEK_END)
    check("python3-dbus: RequestBuffer gives an fd of the asked size", n == int(size, 0),
          "lseek says %d" % n)
    exp = fdinfo(fd).get("exp_name")
    check("python3-dbus: the fd is a dma-buf exported by vfio_pci_core", exp == "vfio_pci_core",
          "exp_name %r" % exp)
    check("python3-dbus: info has offset, size, generation, device",
          all(k in info for k in ("offset", "size", "generation", "device")) and
          info["size"] == n, repr(dict(info)))
    props = dbus.Interface(bus.get_object(NAME, path), "org.freedesktop.DBus.Properties")
    lp = props.GetAll(IFACE + ".Lease")
    check("lease object: Owner is the caller's unique name", lp["Owner"] == bus.get_unique_name(),
          "%s vs %s" % (lp["Owner"], bus.get_unique_name()))
    check("lease object: Size and Offset match info", lp["Size"] == n and lp["Offset"] == info["offset"],
          repr(dict(lp)))
    dev = dbus.Interface(bus.get_object(NAME, lp["Device"]), "org.freedesktop.DBus.Properties")
    dp = dev.GetAll(IFACE + ".Device")
    check("device object: Address and BarSize", dp["Address"] == info["address"] and dp["BarSize"] >= n,
          repr(dict(dp)))
    os.close(fd)
    b.ReleaseBuffer(path)
    try:
        props.GetAll(IFACE + ".Lease")
        check("lease object vanishes on ReleaseBuffer", False, "it still answers")
    except dbus.DBusException as e:
        check("lease object vanishes on ReleaseBuffer", "UnknownObject" in e.get_dbus_name() or
              "UnknownInterface" in e.get_dbus_name(), e.get_dbus_name())
    try:
        b.ReleaseBuffer(path)
        check("second ReleaseBuffer is NoSuchLease", False, "it succeeded")
    except dbus.DBusException as e:
        check("second ReleaseBuffer is NoSuchLease", e.get_dbus_name() == IFACE + ".Error.NoSuchLease",
              e.get_dbus_name() + ": " + e.get_dbus_message())


def expect_error(bus, label, name, method, *args):
    try:
        getattr(broker(bus), method)(*args)
        check(label, False, "it succeeded")
    except dbus.DBusException as e:
        check(label, e.get_dbus_name() == IFACE + ".Error." + name and len(e.get_dbus_message()) > 10,
              "%s: %s" % (e.get_dbus_name(), e.get_dbus_message()))
        print("     (%s: %s)" % (e.get_dbus_name(), e.get_dbus_message()))


def cmd_expect_error(name, device, size, *rest):
    bus = dbus.SystemBus()
    expect_error(bus, "RequestBuffer(%s, %s) is %s" % (device or '""', size, name), name,
                 "RequestBuffer", device, dbus.UInt64(int(size, 0)), opts(rest))


def cmd_hold(device, size, mark):
    from gi.repository import GLib
    import dbus.mainloop.glib
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.SystemBus()
    b = broker(bus)

    def on_signal(*args, **kw):
        member = kw["member"]
        print("signal %s %s" % (member, " ".join(str(a) for a in args)), flush=True)
        if member == "DevicePaused":
            b.AcknowledgePause(args[0], args[2])
            print("acknowledged %s %s" % (args[0], args[2]), flush=True)

    bus.add_signal_receiver(on_signal, dbus_interface=IFACE, member_keyword="member")
    path, fd, info = b.RequestBuffer(device, dbus.UInt64(int(size, 0)),
                                     opts(["acknowledge_pauses=true"]))
    fd = fd.take()
    with open(mark, "w") as f:
        f.write(str(path) + "\n")
    print("holding %s" % path, flush=True)
    GLib.MainLoop().run()


def cmd_listen(mark):
    from gi.repository import GLib
    import dbus.mainloop.glib
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.SystemBus()

    def on_signal(*args, **kw):
        print("signal %s %s" % (kw["member"], " ".join(str(a) for a in args)), flush=True)

    bus.add_signal_receiver(on_signal, dbus_interface=IFACE, member_keyword="member")
    broker(bus).ListDevices()  # a round trip: the match is in place
    with open(mark, "w") as f:
        f.write("listening\n")
    GLib.MainLoop().run()


def members(xml_text):
    """{(interface, kind, name, signature)} of the org.barkeep interfaces."""
    import xml.etree.ElementTree as ET
    out = set()
    for iface in ET.fromstring(xml_text).iter("interface"):
        if not iface.get("name").startswith("org.barkeep."):
            continue
        for m in iface:
            if m.tag == "property":
                sig = m.get("type") + ":" + m.get("access")
            else:
                sig = ",".join("%s %s %s" % (a.get("direction", "out" if m.tag == "signal" else "in"),
                                            a.get("type"), a.get("name")) for a in m.iter("arg"))
            out.add((iface.get("name"), m.tag, m.get("name"), sig))
    return out


def cmd_xml(path, device):
    bus = dbus.SystemBus()
    b = broker(bus)
    lease, fd, info = b.RequestBuffer(device, dbus.UInt64(4096), opts([]))
    live = set()
    for obj in (PATH, info["device_path"], lease):
        live |= members(dbus.Interface(bus.get_object(NAME, obj),
                                       "org.freedesktop.DBus.Introspectable").Introspect())
    with open(path) as f:
        shipped = members(f.read())
    check("%s describes the live interfaces" % os.path.basename(path), live == shipped,
          "only live: %s; only in the file: %s" % (sorted(live - shipped), sorted(shipped - live)))


def cmd_free(device):
    bus = dbus.SystemBus()
    for d in broker(bus).ListDevices():
        if d[2] == device or d[3] == device:
            print(int(d[7]))
            return
    sys.exit("no device " + device)


def cmd_grant(device, size, out):
    import time
    b = broker(dbus.SystemBus())
    path, fd, info = b.RequestBuffer(device, dbus.UInt64(int(size, 0)), opts([]))
    grant, token = b.Grant(path, dbus.Dictionary({"token": dbus.Boolean(True)}, signature="sv"))
    with open(out + ".tmp", "w") as f:
        f.write("%s %d %d %s\n" % (token, grant, info["id"], path))
    os.rename(out + ".tmp", out)
    time.sleep(120)


def cmd_open(token, owner_path=None):
    b = broker(dbus.SystemBus())
    o = dbus.Dictionary({"token": token}, signature="sv")
    path, fd, info = b.Open(o)
    fd = fd.take()
    n = os.lseek(fd, 0, os.SEEK_END)
    check("python3-dbus: Open by token gives an fd of the window's size", n == info["size"],
          "lseek %d, info %r" % (n, dict(info)))
    name = fdinfo(fd).get("name", "")
    check("python3-dbus: the opened dma-buf is named after the window",
          name == "barkeep:%d:%d" % (info["shared_lease"], os.getuid()), name)
    check("python3-dbus: Open's info names the owner and the grant",
          info["owner_uid"] == 0 and info["grant"] > 0 and not info["read_only"], repr(dict(info)))
    if owner_path:
        props = dbus.Interface(dbus.SystemBus().get_object(NAME, owner_path),
                               "org.freedesktop.DBus.Properties")
        holders = props.Get(IFACE + ".Lease", "Holders")
        check("python3-dbus: the owner's lease object lists the holder",
              [(int(h[0]), int(h[2])) for h in holders] == [(int(info["id"]), os.getuid())],
              repr(holders))
    os.close(fd)
    try:
        b.Open(o)
        check("python3-dbus: a used token is refused", False, "it opened again")
    except dbus.DBusException as e:
        check("python3-dbus: a used token is refused", e.get_dbus_name() ==
              IFACE + ".Error.PermissionDenied" and "already used" in e.get_dbus_message(),
              e.get_dbus_name() + ": " + e.get_dbus_message())
    b.ReleaseBuffer(path)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "fd":
        cmd_fd(*args)
    elif cmd == "xml":
        cmd_xml(*args)
    elif cmd == "expect-error":
        cmd_expect_error(*args)
    elif cmd == "hold":
        cmd_hold(*args)
        return
    elif cmd == "listen":
        cmd_listen(*args)
        return
    elif cmd == "open":
        cmd_open(*args)
    elif cmd == "grant":
        cmd_grant(*args)
        return
    elif cmd == "free":
        cmd_free(*args)
        return
    else:
        sys.exit("unknown command " + cmd)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


main()
