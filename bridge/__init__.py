"""calbridge: a CalDAV/iCalendar bridge server for appointment-booking systems."""

__version__ = "0.1.0"
