"""``nbllm._base.redact``: remembered keys, ``Bearer`` values and URL credentials are masked in any text."""

from __future__ import annotations

import string
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbllm._base.redact import MASK, contains_secret, forget_all, mask_url, redact, redact_obj, remember


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    forget_all()
    yield
    forget_all()


KEY = "sk-test-9f8e7d6c5b4a3210"


def test_remembered_key_masked_everywhere_in_a_text() -> None:
    assert KEY in redact(f"Invalid API key provided: {KEY}")  # not remembered yet
    remember(KEY + "\n")  # the raw form, as read from a file
    text = redact(f"Invalid API key provided: {KEY}. Headers: {{'x-api-key': '{KEY}'}}")
    assert KEY not in text and text.count(MASK) == 2
    assert contains_secret(f"..{KEY}..") and not contains_secret("nothing here")


def test_longer_key_containing_a_shorter_one_is_masked_whole() -> None:
    remember("abcdef")
    remember("abcdef-long-tail")
    assert redact("k=abcdef-long-tail") == f"k={MASK}"


def test_short_values_are_not_remembered() -> None:
    remember("abc")  # masking every "abc" would mangle texts; so short a key is no secret anyway
    assert redact("abc abc") == "abc abc"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pw-secret@h.example/v1", f"https://user:{MASK}@h.example/v1"),
        ("https://token-only@h.example/v1", f"https://{MASK}@h.example/v1"),
        ("https://h/v1?api_key=AAA&model=x", f"https://h/v1?api_key={MASK}&model=x"),
        ("https://h/v1?key=AAA", f"https://h/v1?key={MASK}"),
        ("https://h/v1?token=AAA#frag", f"https://h/v1?token={MASK}#frag"),
        ("https://a.blob/c?sv=2020&sig=AB%2Bcd&se=1", f"https://a.blob/c?sv=2020&sig={MASK}&se=1"),
        ("https://h/v1?API-KEY=AAA", f"https://h/v1?API-KEY={MASK}"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),  # nothing to mask: unchanged
    ],
)
def test_mask_url(url: str, expected: str) -> None:
    assert mask_url(url) == expected


def test_redact_masks_urls_and_auth_values_inside_texts() -> None:
    text = redact(
        "POST https://u:hunter22@h/v1?key=AIzaSECRET failed; sent Authorization: Bearer sk-unremembered-1234"
    )
    assert "hunter22" not in text and "AIzaSECRET" not in text and "sk-unremembered-1234" not in text
    assert "https://u:" in text and "Bearer " + MASK in text


def test_redact_obj_copies_and_masks_every_string() -> None:
    remember(KEY)
    doc = {"error": {"message": f"bad key {KEY}"}, "n": 1, "list": [KEY, None], KEY: True}
    clean = redact_obj(doc)
    assert KEY not in repr(clean) and clean["n"] == 1 and clean["list"][1] is None
    assert KEY in repr(doc)  # the original is left alone


# ---- properties -------------------------------------------------------------------------------

_secret = st.text(alphabet=string.ascii_letters + string.digits + "-_.~+/", min_size=8, max_size=40)
_junk = st.text(max_size=60)


@settings(max_examples=150, deadline=None)
@given(
    secret=_secret, before=_junk, after=_junk, where=st.sampled_from(["userinfo", "api_key", "sig", "path"])
)
def test_mask_url_never_returns_a_remembered_secret(secret: str, before: str, after: str, where: str) -> None:
    forget_all()
    remember(secret)
    url = {
        "userinfo": f"https://user:{secret}@host.example/v1",
        "api_key": f"https://host.example/v1?api_key={secret}&x=1",
        "sig": f"https://host.example/c?sv=1&sig={secret}",
        "path": f"https://host.example/{secret}/v1",  # known only because it was remembered
    }[where]
    assert secret not in mask_url(url)
    assert secret not in redact(before + " " + url + " " + after)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_mask_url_and_redact_never_raise_on_arbitrary_text(text: str) -> None:
    assert isinstance(mask_url(text), str)
    assert isinstance(redact(text), str)
    assert isinstance(mask_url("http://" + text), str)
    assert isinstance(redact("see https://" + text + "?key=" + text), str)


@settings(max_examples=150, deadline=None)
@given(secret=_secret, text=_junk)
def test_redact_never_returns_a_remembered_secret(secret: str, text: str) -> None:
    forget_all()
    remember(" " + secret + "\n")
    assert secret not in redact(text + secret + text)


@settings(max_examples=150, deadline=None)
@given(
    secret=st.text(alphabet=string.ascii_letters + string.digits + "-_.~%", min_size=8, max_size=40),
    where=st.sampled_from(["userinfo", "user", "api_key", "key", "token", "sig"]),
)
def test_mask_url_masks_url_credentials_it_was_never_told_about(secret: str, where: str) -> None:
    url = {
        "userinfo": f"https://me:{secret}@host.example/v1",
        "user": f"https://{secret}@host.example/v1",
        "api_key": f"https://host.example/v1?model=m&api_key={secret}",
        "key": f"https://host.example/v1beta/models/g:generate?key={secret}",
        "token": f"https://host.example/v1?token={secret}#x",
        "sig": f"https://acct.blob.example/c/b?sv=2022&sig={secret}&se=2030",
    }[where]
    masked = mask_url(url)
    assert secret not in masked and MASK in masked
    assert secret not in redact(f"request to {url} failed")
