"""Watching the platform from outside: signed webhooks (endpoints, deliveries with retries and a log) for the events
``core.events`` carries, and the public explorer (anchors, receipts, snapshot roots, executed proposals) that reads
every app's public objects. It sits after settlement, so it may read every app; only ``demo`` imports it."""
