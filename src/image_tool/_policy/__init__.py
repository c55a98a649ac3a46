"""Decisions around a call: retries and the deadline, failover between relays, concurrency limits
and budgets. No I/O of their own."""
