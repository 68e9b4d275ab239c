"""The sync engine's side of the store: what external calendars leave in it and how.

:mod:`bridge.sync.mirror` writes mirrored items (origin ``connection:<id>``) through
:mod:`bridge.rules` and re-applies a connection's options when they change.
"""
