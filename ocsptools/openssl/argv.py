"""Every openssl command line ocsptools runs, built by pure functions from file names and values.

Rules every list follows (``../shared/notes/openssl-cli.md``): the system store is never loaded
(``-no-CApath -no-CAstore``, and an explicit ``-CAfile`` or ``-no-CAfile``); ``-issuer`` and the
digest precede ``-cert`` (the CertID is built while ``-cert`` is parsed); DER travels through files
(``-respin``, ``-reqout``), never ``-respout``; staples are built and checked without a nonce
(``-no_nonce``).  Nothing here runs anything: the facade (``ocsptools.openssl.OpenSSL``) does.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

__all__ = ["NO_DEFAULT_STORE", "HASHES", "STARTTLS", "check_hash", "version", "s_client",
           "pkcs7_certs", "store_certs", "store_text", "verify_issued", "ocsp_request",
           "read_response", "verify_response", "serial_label"]

NO_DEFAULT_STORE = ["-no-CApath", "-no-CAstore"]
#: The CertID hash algorithms, as openssl digest options (``-sha256``).
HASHES = ("sha1", "sha256", "sha384", "sha512")
#: The ``-starttls`` protocols of ``openssl s_client`` (3.0) that ocsp-check offers.
STARTTLS = ("smtp", "lmtp", "imap", "pop3", "ftp", "xmpp", "xmpp-server", "sieve", "nntp",
            "ldap", "postgres", "mysql", "irc")


def check_hash(hash_alg: str) -> str:
    """HASH_ALG if openssl may be asked for CertIDs under it, else ValueError."""
    if hash_alg not in HASHES:
        raise ValueError(f"unsupported CertID hash {hash_alg!r}")
    return hash_alg


def version() -> List[str]:
    """The probe: ``openssl version``."""
    return ["version"]


def s_client(host: str, port: int, msgfile: str, *, servername: Optional[str] = None,
             starttls: Optional[str] = None) -> List[str]:
    """A TLS handshake that asks for the staple (``-status``), prints the chain and dumps every
    message in hex into MSGFILE; no certificate store is loaded (the staple is verified apart)."""
    if starttls is not None and starttls not in STARTTLS:
        raise ValueError(f"unsupported STARTTLS protocol {starttls!r}")
    connect = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    args = ["s_client", "-connect", connect, "-status", "-showcerts", "-msg",
            "-msgfile", msgfile, "-no-CAfile", *NO_DEFAULT_STORE]
    args += ["-servername", servername] if servername else ["-noservername"]
    if starttls is not None:
        args += ["-starttls", starttls]
        if starttls.startswith("xmpp") and servername:
            args += ["-xmpphost", servername]
    return args


def pkcs7_certs(inform: str) -> List[str]:
    """The certificates of a PKCS#7 structure on stdin (INFORM: PEM or DER), as PEM."""
    return ["pkcs7", "-print_certs", "-inform", inform]


def store_certs() -> List[str]:
    """The certificates of whatever openssl can read on stdin (DER), as PEM."""
    return ["storeutl", "-certs", "/dev/stdin"]


def store_text() -> List[str]:
    """The text of every certificate of the PEM on stdin (one process for many certificates)."""
    return ["storeutl", "-noout", "-text", "-certs", "/dev/stdin"]


def verify_issued(issuer_file: str, leaf_files: Sequence[str]) -> List[str]:
    """Did the (first) certificate of ISSUER_FILE sign each of LEAF_FILES?  Anchored at that
    certificate alone (``-partial_chain``), whatever the times (``-no_check_time``)."""
    return ["verify", "-partial_chain", "-no_check_time", "-CAfile", issuer_file,
            *NO_DEFAULT_STORE, "--", *leaf_files]


def ocsp_request(issuer_file: str, cert_files: Sequence[str], hash_alg: str, reqout: str, *,
                 nonce: bool = False, req_text: bool = False) -> List[str]:
    """One DER request holding a CertID per certificate of CERT_FILES, written to REQOUT; with
    REQ_TEXT also printed (to read the nonce back)."""
    args = ["ocsp", "-issuer", issuer_file, f"-{check_hash(hash_alg)}"]
    for path in cert_files:
        args += ["-cert", path]
    args += ["-nonce" if nonce else "-no_nonce", "-reqout", reqout]
    return args + ["-req_text"] if req_text else args


def read_response(resp_file: str) -> List[str]:
    """Print the DER response of RESP_FILE without verifying anything (``-noverify``)."""
    return ["ocsp", "-respin", resp_file, "-noverify", "-no-CAfile", *NO_DEFAULT_STORE, "-resp_text"]


def verify_response(resp_file: str, issuer_file: str, hash_alg: str, *,
                    cert_file: Optional[str] = None, serial: Optional[str] = None) -> List[str]:
    """Verify RESP_FILE for one certificate, named by its file (CERT_FILE) or by SERIAL
    (``serial_label``) under ISSUER_FILE, and print it.  Trust is anchored at the issuer itself
    (``-CAfile ISSUER -partial_chain``): only the issuer, or a certificate it issued with
    id-kp-OCSPSigning that is embedded in the response, can sign."""
    if (cert_file is None) == (serial is None):
        raise ValueError("a response is verified for a certificate file or a serial")
    which = ["-cert", cert_file] if cert_file is not None else ["-serial", str(serial)]
    return ["ocsp", "-respin", resp_file, "-issuer", issuer_file, f"-{check_hash(hash_alg)}",
            *which, "-CAfile", issuer_file, "-partial_chain", *NO_DEFAULT_STORE, "-no_nonce",
            "-resp_text"]


def serial_label(serial: int) -> str:
    """SERIAL as ``-serial`` takes it (``0xAB12``); also the label of openssl's summary line."""
    if serial < 0:
        raise ValueError("negative serial numbers cannot be given to openssl -serial")
    return "0x" + format(serial, "X")
