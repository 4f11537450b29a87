"""The peer of the load benchmark: the smallest Django endpoint that writes a battle and its vote with the ORM.

``benchmarks/load_minimal.py`` serves it the way ``make serve`` serves the site (gunicorn, the same worker class and
count, the same database pool) on the arena's own schema, so that the two runs differ only in what one request does:
here no middleware, no validation, no identity, rate limit, idempotency, matchmaking, tally or reveal. Not part of
the product: nothing imports it but that benchmark.
"""
