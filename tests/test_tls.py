"""TLS verification over real HTTPS on 127.0.0.1: a private CA, a CA bundle path, verify off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

import nbllm
from nbllm import DemoServer, Endpoint


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def https_demo(ca: trustme.CA) -> Iterator[DemoServer]:
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    with nbllm.demo_server(ssl_context=ctx) as srv:
        yield srv


def test_private_ca_bundle_path_verifies(https_demo: DemoServer, ca: trustme.CA, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    ep = Endpoint(name="internal", url=https_demo.url, verify=str(bundle))
    assert https_demo.url.startswith("https://127.0.0.1:")
    assert nbllm.complete(ep, "over tls").text == "You said: over tls"


def test_unknown_ca_is_refused_with_a_readable_error(https_demo: DemoServer) -> None:
    ep = Endpoint(name="internal", url=https_demo.url, retries=0)
    with pytest.raises(nbllm.ConnectError) as info:
        nbllm.complete(ep, "hi")
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value) and "endpoint 'internal'" in str(info.value)
    assert "verify='/path/to/ca-bundle.pem'" in str(info.value)


def test_verify_off(https_demo: DemoServer) -> None:
    ep = Endpoint(name="internal", url=https_demo.url, verify=False)
    with nbllm.stream(ep, "no verify") as s:
        assert "".join(s) == "You said: no verify"
