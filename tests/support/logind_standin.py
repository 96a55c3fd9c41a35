#!/usr/bin/env python3
"""A stand-in for systemd-logind on a private system bus, for tests only.

Owns org.freedesktop.login1 on $DBUS_SYSTEM_BUS_ADDRESS and answers what
kosli-credd asks: GetSessionByPID (session "pid1", or with --outside-session
the error logind gives a process outside any session), GetSession, GetUser and
the user's Display (session "display1"). A test makes it emit signals through
its own interface, org.kosli.StandIn, on /org/freedesktop/login1:
  Lock(s id)     emits org.freedesktop.login1.Session.Lock on session `id`
  SetLockedHint(s id, b locked)
                 sets session `id`'s LockedHint, as a desktop's own screen
                 locker does, and emits PropertiesChanged for it
  Sleep(b start) emits org.freedesktop.login1.Manager.PrepareForSleep(start)
Prints "ready" once the name is owned.
"""
import argparse
import sys

import dbus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

LOGIND = "org.freedesktop.login1"
MANAGER = "org.freedesktop.login1.Manager"
SESSION = "org.freedesktop.login1.Session"
USER = "org.freedesktop.login1.User"
ROOT = "/org/freedesktop/login1"


def session_path(session_id):
    return ROOT + "/session/" + session_id


class Session(dbus.service.Object):
    def __init__(self, bus, session_id):
        super().__init__(bus, session_path(session_id))
        self.locked_hint = False

    @dbus.service.signal(SESSION, signature="")
    def Lock(self):
        pass

    @dbus.service.signal(dbus.PROPERTIES_IFACE, signature="sa{sv}as")
    def PropertiesChanged(self, interface, changed, invalidated):
        pass

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="ss", out_signature="v")
    def Get(self, interface, name):
        if interface == SESSION and name == "LockedHint":
            return dbus.Boolean(self.locked_hint)
        raise dbus.exceptions.DBusException("no such property", name="org.freedesktop.DBus.Error.UnknownProperty")

    def set_locked_hint(self, locked):
        self.locked_hint = bool(locked)
        self.PropertiesChanged(SESSION, dbus.Dictionary({"LockedHint": dbus.Boolean(self.locked_hint)},
                                                        signature="sv"), dbus.Array([], signature="s"))


class User(dbus.service.Object):
    def __init__(self, bus, uid):
        super().__init__(bus, "%s/user/_%d" % (ROOT, uid))

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="ss", out_signature="v")
    def Get(self, interface, name):
        if interface == USER and name == "Display":
            return dbus.Struct(("display1", dbus.ObjectPath(session_path("display1"))), signature="so")
        raise dbus.exceptions.DBusException("no such property", name="org.freedesktop.DBus.Error.UnknownProperty")


class Manager(dbus.service.Object):
    def __init__(self, bus, outside_session):
        super().__init__(bus, ROOT)
        self.bus = bus
        self.outside_session = outside_session
        self.sessions = {sid: Session(bus, sid) for sid in ("pid1", "display1")}
        self.users = {}

    @dbus.service.method(MANAGER, in_signature="u", out_signature="o")
    def GetSessionByPID(self, pid):
        if self.outside_session:
            raise dbus.exceptions.DBusException("PID %d does not belong to any known session" % pid,
                                                name="org.freedesktop.login1.NoSessionForPID")
        return dbus.ObjectPath(session_path("pid1"))

    @dbus.service.method(MANAGER, in_signature="s", out_signature="o")
    def GetSession(self, session_id):
        if session_id not in self.sessions:
            raise dbus.exceptions.DBusException("No session '%s' known" % session_id,
                                                name="org.freedesktop.login1.NoSuchSession")
        return dbus.ObjectPath(session_path(session_id))

    @dbus.service.method(MANAGER, in_signature="u", out_signature="o")
    def GetUser(self, uid):
        if uid not in self.users:
            self.users[uid] = User(self.bus, uid)
        return dbus.ObjectPath("%s/user/_%d" % (ROOT, uid))

    @dbus.service.signal(MANAGER, signature="b")
    def PrepareForSleep(self, start):
        pass

    @dbus.service.method("org.kosli.StandIn", in_signature="s", out_signature="")
    def Lock(self, session_id):
        self.sessions[session_id].Lock()

    @dbus.service.method("org.kosli.StandIn", in_signature="sb", out_signature="")
    def SetLockedHint(self, session_id, locked):
        self.sessions[session_id].set_locked_hint(locked)

    @dbus.service.method("org.kosli.StandIn", in_signature="b", out_signature="")
    def Sleep(self, start):
        self.PrepareForSleep(start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--outside-session", action="store_true")
    args = parser.parse_args()
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.SystemBus()
    manager = Manager(bus, args.outside_session)
    name = dbus.service.BusName(LOGIND, bus, do_not_queue=True)
    print("ready", flush=True)
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, 15, loop.quit)
    loop.run()
    del name, manager


if __name__ == "__main__":
    sys.exit(main())
