"""Conformance suite (issue 14): a crafted OCSP corpus with RFC verdicts, and what consumers make of it."""
