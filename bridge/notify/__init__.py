"""Customer and provider e-mail: a transactional outbox (rows written with the change that causes
them, deduplicated by key), Jinja2 templates in German and English, and an SMTP sender.

- ``address``: the customer's address in a hand-written event (pure).
- ``message``: mails from templates, with the iCalendar attachment (RFC 5546 REQUEST/CANCEL).
- ``queue``: queuing a mail in the caller's transaction (Message-ID and Date fixed, Bcc in the envelope only).
- ``notices``: booking confirmations and notices of hand-written events; ``mirrored``: what the sync
  engine calls per mirrored event; ``alerts``: one mail per episode to the owner and admins.
- ``sender``: SMTP delivery of due rows, at least once, with back-off.

Baselines (first sync, token reset, full resync, option change, re-ingest) queue nothing.
"""
