"""Fixtures of the conformance suite: the corpus, built once per run and served on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from .corpus import Corpus, build_corpus
from .server import CaseServer


def pytest_collection_modifyitems(items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.conformance)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Iterator[Corpus]:
    """Every case built into a session tmp dir; ``corpus.url(case)`` is answered with the case's DER
    (GET and POST, application/ocsp-response) by ``corpus.server`` (its ``requests`` log)."""
    with CaseServer() as server:
        built = build_corpus(tmp_path_factory.mktemp("conformance"), server.port)
        server.cases = {c.name: c.der for c in built.cases}
        built.server = server
        yield built
