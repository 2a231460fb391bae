"""A second opinion on each corpus case: GnuTLS's ``ocsptool -e``, normalised into the verdict classes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Tuple

if TYPE_CHECKING:
    from .corpus import Case

OCSPTOOL = os.environ.get("OCSPTOOLS_TEST_OCSPTOOL", "ocsptool")

#: Kinds of check (corpus.CHECKS) that ``ocsptool -e`` makes: it parses the response, verifies the
#: signature with the --load-signer certificate or with an embedded certificate that certificate
#: issued with id-kp-OCSPSigning, and checks that embedded signer's validity at the current time.
CHECKED = ("format", "signature", "signer", "signer-validity", "status")
#: Kinds it does not make, so it cannot judge those cases (its verdict there is "n/a").
UNCHECKED = {
    "certid": "does not compare any CertID with a certificate",
    "times": "does not read thisUpdate, nextUpdate or producedAt",
}

_VERIFYING = re.compile(r"Verifying OCSP Response: (.*?)\.?\s*$", re.M)
_SINGLE = re.compile(r"Serial Number: ([0-9a-fA-F]+)\s*\n\s*Certificate Status: (\w+)")


@dataclass(frozen=True)
class Opinion:
    verdict: str      # good | revoked | unknown | refuse | n/a
    detail: str       # what ocsptool said, free of times and serials
    argv: Tuple[str, ...]
    rc: int
    stdout: str
    stderr: str


def available() -> bool:
    return shutil.which(OCSPTOOL) is not None


def version() -> str:
    """``ocsptool 3.7.9``: the first line of ``ocsptool --version``."""
    out = subprocess.run([OCSPTOOL, "--version"], capture_output=True, text=True, timeout=10).stdout
    return out.splitlines()[0].strip() if out else "ocsptool (version unknown)"


def argv(case: "Case") -> List[str]:
    """Trust anchored at the leaf's issuer, as a TLS client that knows the chain would."""
    return [OCSPTOOL, "--verify-response", f"--load-signer={case.issuer}",
            f"--load-response={case.response}"]


def run(case: "Case", timeout: float = 20) -> Opinion:
    args = argv(case)
    env = dict(os.environ, LC_ALL="C")
    cp = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env,
                        stdin=subprocess.DEVNULL)
    verdict, detail = classify(case, cp.returncode, cp.stdout, cp.stderr)
    return Opinion(verdict, detail, tuple(args), cp.returncode, cp.stdout, cp.stderr)


def classify(case: "Case", rc: int, stdout: str, stderr: str) -> Tuple[str, str]:
    """(verdict, detail) from one ocsptool run on CASE (pure)."""
    said = _VERIFYING.findall(stdout + "\n" + stderr)
    if "importing response:" in stderr:
        return "refuse", stderr.split("importing response:", 1)[1].strip().splitlines()[0].rstrip(".")
    if rc != 0 or not said or not said[-1].startswith("Success"):
        text = said[-1] if said else (stderr.strip().splitlines() or ["exit status %d" % rc])[0]
        return "refuse", text.replace("Failure, ", "")
    if case.check in UNCHECKED:
        return "n/a", f"signature and signer verified; ocsptool {UNCHECKED[case.check]}"
    statuses = [s for serial, s in _SINGLE.findall(stdout) if int(serial, 16) == case.serial]
    if len(statuses) != 1:
        return "n/a", "signature and signer verified; no single status for this serial"
    return statuses[0], "verified"
