"""Event streams for integrations: the public event format and everything that carries it.

* ``cloudevents`` — which events are published and how each becomes a CloudEvent (the one
  place personal data is withheld);
* ``reader`` — reading published events in global order (pages, and following live);
* ``feed`` — REST catch-up feed ``GET /events`` and Server-Sent Events ``GET /events/stream``;
* ``nats_publisher`` — a worker publishing every event to NATS JetStream (at least once);
* ``webhooks`` / ``webhook_api`` — the webhook dispatcher and its delivery history;
* ``asyncapi`` — the AsyncAPI 3.0 document generated from the event classes;
* ``hub`` — wiring: the commit signal and the stream workers of one process.
"""
