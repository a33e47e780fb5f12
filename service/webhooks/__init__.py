"""Webhooks: signed (Standard Webhooks), queued durably in Redis, retried for a day, SSRF-safe.

- ``messages``: the events, a delivery and its attempts (the struct stored per delivery);
- ``queue``: ``WebhookQueue``, every Redis call of the delivery queue;
- ``signing``: the Standard Webhooks headers;
- ``safety``: which URLs are accepted and which addresses are refused (SSRF);
- ``sender``: one HTTP attempt, to the address that was checked;
- ``service``: ``WebhookDispatcher``, the loop a worker process runs to send due deliveries.

The transport knows nothing of generations: a delivery's payload is bytes built by its caller.
"""
