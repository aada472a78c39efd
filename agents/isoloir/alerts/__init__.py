"""Alerting: findings become email and webhook messages that are never lost and never spam.

The pieces, one module each: `secrets` (root-only secret files), `messages`
(French and English text), `routing` (who gets what), `spool` (the SQLite
outbox and finding state), `smtp` and `webhook` (the transports), `service`
(de-duplication, resolved notices, flood guard, digest, delivery with retries),
`sink` (a local SMTP server writing to a maildir) and `cli` (`isoloir alerts`).
"""
