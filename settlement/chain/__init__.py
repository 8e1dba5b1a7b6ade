"""The chain settlement talks to: ``client`` (contract calls, signing, sending), ``embedded`` (the in-process EVM)
and ``anvil`` are Django-free; ``config`` is the platform's wiring (settings read at start-up, keys, the deployment
row, one connection per process)."""
