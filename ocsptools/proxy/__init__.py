"""ocsp-proxy: a caching, verifying OCSP proxy (HTTP server, cache backends, refresher, allow-list, metrics).

Modules:

* ``der``      -- a small, strict DER walker: OCSP requests (CertIDs, nonce), issuer hashes, request encoding
* ``rules``    -- pure decisions: refresh time, backoff, newer-than, HTTP caching headers
* ``cache``    -- the cache backends (``sqlite:///path``, ``redis://host:port/db``) and the Entry value
* ``issuers``  -- what ``--allow``/``--allow-from`` permit: known issuers, leaves and responder URLs
* ``upstream`` -- asking an allowed responder and verifying the answer for a CertID
* ``service``  -- the proxy itself: routing, hot in-memory layer, single-flight misses, refresher
* ``server``   -- the asyncio HTTP/1.1 front end (strict parser, limits, timeouts)
* ``metrics``  -- Prometheus text exposition
"""
