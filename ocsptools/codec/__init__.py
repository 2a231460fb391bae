"""Pure decoders of the bytes ocsptools reads without openssl (DER, PEM, TLS records)."""
