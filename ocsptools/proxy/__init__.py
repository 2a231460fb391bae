"""ocsp-proxy: a caching, verifying OCSP proxy (HTTP server, cache backends, refresher, allow-list, metrics).

Modules, from the wire inwards (pure ones marked so):

* ``server``    -- the asyncio HTTP/1.1 front end (strict parser, limits, timeouts)
* ``service``   -- ``Proxy``: the hot path, cache lookups, single-flight misses, pass-through; its clocks
* ``routing``   -- pure: where a request may go and what it asks (absolute URI or Host + path, allow-list)
* ``paths``     -- pure: the GET path's base64 split off in linear time, RFC 3986 normal form
* ``answers``   -- pure: refusals, tryLater and relayed answers as bytes
* ``hot``       -- a cached answer ready to be written (headers rebuilt once per second)
* ``flight``    -- single-flight: one upstream exchange per CertID at a time
* ``special``   -- /metrics, /healthz, /admin/purge
* ``refresher`` -- the background refresh (pure ``plan``, then the exchange), backoff, the cache's lock
* ``upstream``  -- asking an allowed responder and verifying the answer for a CertID
* ``issuers``   -- what ``--allow``/``--allow-from`` permit: known issuers, leaves and responder URLs
* ``rules``     -- pure: the proxy's settings of ``ocsptools.life`` (POSIX seconds) and caching headers
* ``entry``     -- pure: the cached ``Entry``, its JSON and migration, the counts ``stats`` shows
* ``cache``     -- the backends (``sqlite:///path``, ``redis://host:port/db``) behind ``open_cache``
* ``metrics``   -- Prometheus text exposition
* ``serve``, ``warm``, ``purge``, ``stats`` -- the work of ``ocsp-proxy``'s subcommands
"""
