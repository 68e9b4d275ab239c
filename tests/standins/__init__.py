"""Stateful stand-ins of provider APIs that cannot be reached from a test machine (Google Calendar,
Microsoft Graph, EWS): loopback servers that follow the documented protocols, served over TLS."""
