"""ocsptools: keep OCSP staples fresh for TLS servers, and tell monitoring when they are not."""

__version__ = "0.1.0"
