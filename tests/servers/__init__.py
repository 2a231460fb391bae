"""Real TLS servers (nginx, HAProxy, Exim, lighttpd, Apache) stapling what ocsptools produces.

Every test here carries the ``servers`` marker; each server's module skips
with a reason when its binary is not installed (``scripts/install-sysdeps``
installs them all).  ``harness`` starts the servers in the foreground on
127.0.0.1 and probes them with ``openssl s_client -status``.
"""
