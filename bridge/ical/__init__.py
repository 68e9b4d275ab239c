"""The iCalendar core that store, rules, adapters and the web layer share: a leaf package.

It imports only icalendar, vobject and the standard library, so that every other package may
import it (see ``docs`` for the layers).
"""
