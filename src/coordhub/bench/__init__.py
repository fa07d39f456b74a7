"""``coord bench``: the load driver that measures a hub against DESIGN.md §6.

Scenarios (``coord bench --list``) drive a hub this command starts (or one
given by ``--url``/``--token``) with simulated agents over loopback HTTP and
report ops/s, p50/p95/p99 latency, errors and the hub's RSS, as a table or
JSON. Throughput is also reported as a ratio to a *ceiling*: the same hot
endpoints on the same server stack, in memory, without auth or durability
(``coordhub.bench.ceiling``), measured in the same run with the same driver,
because on a shared 2-core machine the driver's own CPU moves every absolute
number.
"""
