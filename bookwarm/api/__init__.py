"""The HTTP read API (`bookwarm api`): the front door a reading app calls.

Laid out as Prefect's own server API (prefect/server/api/): a router module per resource in
``routes/``, what every route shares in ``dependencies``, one table mapping bookwarm's errors to
status codes in ``errors``. Routes call the core's read path (bookwarm.cache.reading), the one
`bookwarm lookup` takes; the core knows nothing of HTTP. Stateless: any number of processes, on any
number of machines, behind any load balancer serve one cache.
"""
