"""Image generation endpoints: requests, answers (b64_json and url), handlers, errors, %%llm.

HTTP details are checked through httpx.MockTransport (exact requests, what each host receives);
the behaviour end to end through the demo server, which makes deterministic PNGs offline.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import struct
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import get_ipython

import nbllm
from nbllm._core.images import ImageResult, sniff_mime
from nbllm._server.demo_images import make_png

PNG = make_png("a fox", 8, 8)
B64 = base64.b64encode(PNG).decode()
KEY = "sk-image-test-key-1234567890"
URL = "https://img.example/v1/images/generations"


def image_ep(**kw: Any) -> nbllm.Endpoint:
    return nbllm.Endpoint(**{"name": "img", "url": URL, "retries": 0, "timeout": 5, **kw})


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


class Hosts:
    """A MockTransport standing for several servers: records each request, answers by host."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        answer = self.answers[f"{request.method} {request.url.host}{request.url.path}"]
        return answer if isinstance(answer, httpx.Response) else httpx.Response(200, json=answer)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))

    def aclient(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


# ---- the endpoint type -------------------------------------------------------------------------


def test_type_is_inferred_from_the_images_url_and_a_base_url_is_completed() -> None:
    ep = image_ep()
    assert (ep.type, ep.dialect, ep.request_url) == ("image", "openai-image", URL)
    base = nbllm.Endpoint(name="b", url="http://h:1/v1", type="image")
    assert base.request_url == "http://h:1/v1/images/generations"
    assert nbllm.Endpoint(name="c", url="http://h:1/v1").type == "chat"  # unchanged for text
    again = nbllm.Endpoint.from_dict(image_ep(price_image=0.04, image_b64_path="$.out[*]").to_dict())
    assert (again.type, again.price_image, again.path("image_b64_path")) == ("image", 0.04, "$.out[*]")
    assert again.path("image_url_path") == "$.data[*].url"  # the dialect's default


def test_text_calls_on_an_image_endpoint_say_what_to_use() -> None:
    with pytest.raises(nbllm.UsageError, match="generates images") as info:
        nbllm.complete(image_ep(), "hi")
    assert "generate_image" in str(info.value)


# ---- HTTP: exact request, b64_json ------------------------------------------------------------


def test_request_is_exact_and_b64_answer_is_decoded() -> None:
    answer = {"created": 1, "data": [{"b64_json": B64, "revised_prompt": "A fox, 8x8"}] * 2}
    hosts = Hosts({"POST img.example/v1/images/generations": answer})
    ep = image_ep(api_key=KEY, model="dall-e-3", price_image=0.04, params={"quality": "hd"})
    with hosts.client() as client:
        r = nbllm.generate_image(ep, "a fox", n=2, size="8x8", response_format="b64_json", client=client)
    (req,) = hosts.seen
    assert req.method == "POST" and str(req.url) == URL
    assert json.loads(req.content) == {
        "model": "dall-e-3",
        "prompt": "a fox",
        "quality": "hd",
        "n": 2,
        "size": "8x8",
        "response_format": "b64_json",
    }
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert isinstance(r, ImageResult) and isinstance(r, nbllm.Result)
    assert [i.data for i in r.images] == [PNG, PNG] and r.image_bytes == PNG
    assert [i.mime for i in r.images] == ["image/png", "image/png"]
    assert [i.revised_prompt for i in r.images] == ["A fox, 8x8"] * 2
    assert r.cost == pytest.approx(0.08) and r.size == "8x8" and r.status_code == 200
    assert r.raw["data"][0]["b64_json"] == f"<{len(B64):,} base64 characters>"  # bytes kept once
    assert r.pil().size == (8, 8)
    assert r._repr_png_() == PNG and r._repr_mimebundle_()["image/png"] == B64


def test_only_given_options_are_sent() -> None:
    hosts = Hosts({"POST img.example/v1/images/generations": {"data": [{"b64_json": B64}]}})
    with hosts.client() as client:
        r = nbllm.generate_image(image_ep(), "a fox", client=client)
    assert json.loads(hosts.seen[0].content) == {"model": "img", "prompt": "a fox"}
    assert r.text == "" and r.images[0].revised_prompt is None and r.cost is None


def test_custom_paths_read_another_image_api() -> None:
    answer = {"result": {"images": [{"base64": B64, "seed": 1}]}, "prompt_used": "fox!"}
    hosts = Hosts({"POST img.example/v1/images/generations": answer})
    ep = image_ep(image_b64_path="$.result.images[*].base64", revised_prompt_path="$.prompt_used")
    with hosts.client() as client:
        r = nbllm.generate_image(ep, "a fox", client=client)
    assert r.image_bytes == PNG and r.text == "fox!"


def test_an_answer_without_images_names_the_paths_and_shows_a_sample() -> None:
    hosts = Hosts({"POST img.example/v1/images/generations": {"created": 1, "output": ["x"]}})
    with hosts.client() as client, pytest.raises(nbllm.ExtractionError) as info:
        nbllm.generate_image(image_ep(), "a fox", client=client)
    text = str(info.value)
    assert "$.data[*].b64_json" in text and '"output"' in text and "image_b64_path" in text


# ---- HTTP: url answers and where the key goes --------------------------------------------------


def test_url_answers_send_the_key_to_the_same_origin_only() -> None:
    answer = {
        "data": [
            {"url": "/v1/images/files/a.png"},  # relative: the endpoint's origin
            {"url": "https://img.example:443/v1/images/files/b.png"},  # same origin, explicit port
            {"url": "https://blob.other.example/b.png?sig=abc"},  # another origin
            {"url": "http://img.example/v1/images/files/c.png"},  # another scheme: another origin
        ]
    }
    png = httpx.Response(200, content=PNG, headers={"content-type": "image/png"})
    hosts = Hosts(
        {
            "POST img.example/v1/images/generations": answer,
            "GET img.example/v1/images/files/a.png": png,
            "GET img.example/v1/images/files/b.png": png,
            "GET img.example/v1/images/files/c.png": png,
            "GET blob.other.example/b.png": png,
        }
    )
    ep = image_ep(api_key=KEY, headers={"X-Team": "ml", "X-Auth-Token": "tok-secret-99"})
    with hosts.client() as client:
        r = nbllm.generate_image(ep, "a fox", client=client)
    assert [i.data for i in r.images] == [PNG] * 4
    gets = hosts.seen[1:]
    assert [str(g.url) for g in gets] == [
        "https://img.example/v1/images/files/a.png",
        "https://img.example/v1/images/files/b.png",  # httpx drops the default port
        "https://blob.other.example/b.png?sig=abc",
        "http://img.example/v1/images/files/c.png",
    ]
    for same in gets[:2]:
        assert same.headers["authorization"] == f"Bearer {KEY}" and same.headers["x-team"] == "ml"
    for other in gets[2:]:
        sent = " ".join(f"{k}: {v}" for k, v in other.headers.items())
        assert KEY not in sent and "tok-secret-99" not in sent and "x-team" not in sent.lower()
        assert "authorization" not in other.headers and "cookie" not in other.headers
    assert r.images[0].url == "https://img.example/v1/images/files/a.png"


def test_async_url_answers_send_no_key_to_another_origin() -> None:
    answer = {"data": [{"url": "https://blob.other.example/x.png"}, {"b64_json": B64}]}
    png = httpx.Response(200, content=PNG)
    hosts = Hosts({"POST img.example/v1/images/generations": answer, "GET blob.other.example/x.png": png})

    async def go() -> ImageResult:
        async with hosts.aclient() as client:
            return await nbllm.agenerate_image(image_ep(api_key=KEY), "a fox", client=client)

    r = asyncio.run(go())
    assert len(r.images) == 1 and r.image_bytes == PNG  # b64 images are taken when the answer has any
    hosts.answers["POST img.example/v1/images/generations"] = {
        "data": [{"url": "https://blob.other.example/x.png"}]
    }

    async def go2() -> ImageResult:
        async with hosts.aclient() as client:
            return await nbllm.agenerate_image(image_ep(api_key=KEY), "a fox", client=client)

    r2 = asyncio.run(go2())
    assert r2.image_bytes == PNG and r2.images[0].mime == "image/png"  # sniffed: no content-type sent
    get = hosts.seen[-1]
    assert get.method == "GET" and "authorization" not in get.headers and KEY not in str(get.headers)


def test_an_image_url_larger_than_max_body_bytes_is_refused() -> None:
    big = httpx.Response(200, content=b"\x89PNG\r\n\x1a\n" + b"0" * 5000)
    hosts = Hosts(
        {
            "POST img.example/v1/images/generations": {"data": [{"url": "/f.png"}]},
            "GET img.example/f.png": big,
        }
    )
    with hosts.client() as client, pytest.raises(nbllm.StreamError, match="max_body_bytes"):
        nbllm.generate_image(image_ep(max_body_bytes=2048), "a fox", client=client)


def test_an_expired_image_url_is_an_http_error_naming_the_image() -> None:
    gone = httpx.Response(403, json={"error": {"message": "Signature expired"}})
    hosts = Hosts(
        {
            "POST img.example/v1/images/generations": {
                "data": [{"url": "https://blob.x/a.png?sig=s3cr3tsig"}]
            },
            "GET blob.x/a.png": gone,
        }
    )
    with hosts.client() as client, pytest.raises(nbllm.HTTPStatusError) as info:
        nbllm.generate_image(image_ep(), "a fox", client=client)
    assert info.value.status_code == 403 and "Signature expired" in str(info.value)
    assert "s3cr3tsig" not in str(info.value)  # a signed URL's credential is masked


# ---- the demo server ---------------------------------------------------------------------------


def test_demo_pngs_are_valid_deterministic_and_capped() -> None:
    a, b = make_png("a fox", 32, 16), make_png("a fox", 32, 16)
    assert a == b and a != make_png("a cat", 32, 16) and png_size(a) == (32, 16)
    # IDAT inflates to one filter byte + RGB per pixel per row; every CRC is right
    pos, raw = 8, b""
    while pos < len(a):
        (length,) = struct.unpack(">I", a[pos : pos + 4])
        kind, data = a[pos + 4 : pos + 8], a[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", a[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind + data)
        if kind == b"IDAT":
            raw = zlib.decompress(data)
        pos += 12 + length
    assert len(raw) == 16 * (1 + 32 * 3)


def test_demo_answers_b64_and_url_sync_and_async(demo: nbllm.DemoServer) -> None:
    ep = nbllm.Endpoint(name="demo-image", url=demo.url, type="image", price_image=0.02)
    r = nbllm.generate_image(ep, "a red fox", n=2, size="9999x16")
    assert [png_size(i.data) for i in r.images] == [(256, 16)] * 2  # size capped at 256
    assert r.images[0].data != r.images[1].data  # each image of a request differs
    assert r.text == "A 256x16 gradient for: a red fox" and r.cost == pytest.approx(0.04)
    again = nbllm.generate_image(ep, "a red fox", n=2, size="9999x16")
    assert [i.data for i in again.images] == [i.data for i in r.images]  # deterministic
    u = asyncio.run(nbllm.agenerate_image(ep, "a red fox", response_format="url"))
    assert u.images[0].url is not None and u.images[0].url.startswith(demo.url + "/images/files/")
    assert u.image_bytes == make_png("a red fox", 64, 64)
    assert demo.requests[-1]["method"] == "GET"


def test_demo_with_a_key_serves_url_images_to_the_same_origin_with_the_key() -> None:
    with nbllm.demo_server(api_key=KEY) as srv:
        ep = nbllm.Endpoint(name="k", url=srv.url + "/images/generations", api_key=KEY)
        r = nbllm.generate_image(ep, "a fox", response_format="url")
        assert r.image_bytes[:8] == b"\x89PNG\r\n\x1a\n"
        assert [q["headers"].get("authorization") for q in srv.requests] == [f"Bearer {KEY}"] * 2


def test_content_policy_400_shows_the_servers_message(demo: nbllm.DemoServer) -> None:
    ep = nbllm.Endpoint(name="demo-image", url=demo.url + "/images/generations", retries=0)
    with pytest.raises(nbllm.HTTPStatusError) as info:
        nbllm.generate_image(ep, "a fox [[policy]]")
    err = info.value
    assert err.status_code == 400 and "rejected as a result of our safety system" in err.server_message
    assert "safety system" in str(err) and "content policy" in (err.hint or "")
    with pytest.raises(nbllm.HTTPStatusError, match="safety system"):
        asyncio.run(nbllm.agenerate_image(ep, "a fox [[policy]]"))


# ---- Python handlers ---------------------------------------------------------------------------


class SyncImages(nbllm.Handler):
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def image_generation(self, prompt: str, **params: Any) -> Any:
        self.calls.append({"prompt": prompt, **params})
        return [make_png(prompt, 4, 4, i) for i in range(params.get("n", 1))]


class AsyncImages:
    async def aimage_generation(self, prompt: str, **params: Any) -> Any:
        await asyncio.sleep(0)
        return {"data": [{"b64_json": B64, "revised_prompt": f"{params['model']}: {prompt}"}]}


def test_handler_sync_and_async_from_both_callers() -> None:
    sync = SyncImages()
    nbllm.register_provider("img-sync", sync)
    nbllm.register_provider("img-async", AsyncImages())  # an image-only handler registers
    r = nbllm.generate_image("img-sync/pix", "a fox", n=2, size="4x4")
    assert [i.data for i in r.images] == [make_png("a fox", 4, 4, i) for i in range(2)]
    assert sync.calls == [{"prompt": "a fox", "model": "pix", "n": 2, "size": "4x4"}]
    ar = asyncio.run(nbllm.agenerate_image("img-sync/pix", "a cat"))  # sync handler, async caller
    assert ar.image_bytes == make_png("a cat", 4, 4, 0)
    r2 = nbllm.generate_image("img-async/m2", "a fox")  # async handler, sync caller
    assert r2.image_bytes == PNG and r2.text == "m2: a fox"
    ar2 = asyncio.run(nbllm.agenerate_image("img-async/m2", "a cat"))
    assert ar2.text == "m2: a cat"


def test_a_handler_without_image_methods_or_raising_is_a_handler_error() -> None:
    class TextOnly(nbllm.Handler):
        def completion(self, messages: list[dict[str, Any]], **params: Any) -> str:
            return "hi"

    class Broken:
        def image_generation(self, prompt: str, **params: Any) -> Any:
            raise ValueError("GPU on fire")

    nbllm.register_provider("img-text", TextOnly())
    nbllm.register_provider("img-broken", Broken())
    with pytest.raises(nbllm.HandlerError, match="neither image_generation nor aimage_generation"):
        nbllm.generate_image("img-text/m", "a fox")
    with pytest.raises(nbllm.HandlerError, match="GPU on fire") as info:
        nbllm.generate_image("img-broken/m", "a fox")
    assert isinstance(info.value.__cause__, ValueError)


def test_sniff_and_pillow_is_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sniff_mime(b"\xff\xd8\xff\xe0....") == "image/jpeg"
    assert sniff_mime(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_mime(b"??", "image/avif; q=1") == "image/avif"
    r = ImageResult([nbllm._core.images.GeneratedImage(PNG, "image/png")], "x")
    monkeypatch.setitem(sys.modules, "PIL", None)  # as if Pillow were not installed
    with pytest.raises(nbllm.UsageError, match="pip install pillow"):
        r.pil()
    assert r.image_bytes == PNG  # the bytes need nothing


# ---- %%llm and %llm_model ----------------------------------------------------------------------


class Recorder(DisplayPublisher):
    """Replaces the shell's display publisher: keeps every published bundle."""

    def __init__(self, shell: InteractiveShell) -> None:
        super().__init__(shell=shell)
        self.bundles: list[dict[str, Any]] = []

    def publish(self, data: Any, *args: Any, **kwargs: Any) -> None:
        self.bundles.append(data)

    def clear_output(self, wait: bool = False) -> None:
        pass


@pytest.fixture()
def ip(monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance() if InteractiveShell.initialized() else get_ipython()
    shell.run_line_magic("load_ext", "nbllm")
    magics = shell.magics_manager.registry["LLMMagics"]
    yield shell
    magics.output = "auto"
    for name in ("_llm_result", "_llm_results", "pic"):
        shell.user_ns.pop(name, None)


def test_llm_cell_shows_the_image_inline_and_o_keeps_the_bytes(
    ip: InteractiveShell, demo: nbllm.DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = Recorder(ip)
    monkeypatch.setattr(ip, "display_pub", rec)
    ip.magics_manager.registry["LLMMagics"].output = "rich"
    res = ip.run_cell(f"%llm_model add demo-image --url {demo.url}/images/generations")
    assert res.success, res.error_in_exec
    nbllm.registry().update("demo-image", price_image=0.02)
    assert nbllm.registry().get("demo-image").type == "image"  # inferred from the URL
    res = ip.run_cell("%%llm -m demo-image -o pic\na lighthouse at dusk")
    assert res.success, res.error_in_exec
    images = [b for b in rec.bundles if "image/png" in b]
    assert len(images) == 1
    assert base64.b64decode(images[0]["image/png"]) == make_png("a lighthouse at dusk", 64, 64)
    texts = [b["text/plain"] for b in rec.bundles if "image/png" not in b]
    assert "revised prompt: A 64x64 gradient for: a lighthouse at dusk" in texts
    footers = [t for t in texts if t.startswith("[demo-image · 64x64 · 1 image · total ")]
    assert len(footers) == 1 and footers[0].endswith(" · $0.02]")
    pic = ip.user_ns["pic"]
    assert isinstance(pic, ImageResult) and pic.image_bytes == make_png("a lighthouse at dusk", 64, 64)
    assert ip.user_ns["_llm_result"] is pic


def test_llm_cell_in_a_terminal_prints_a_summary_and_errors_carry_the_message(
    ip: InteractiveShell, demo: nbllm.DemoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.magics_manager.registry["LLMMagics"].output = "text"
    nbllm.registry().add(nbllm.Endpoint(name="demo-image", url=demo.url, type="image", retries=0))
    assert ip.run_cell("%%llm -m demo-image --param n=2\na fox").success
    out = capsys.readouterr().out
    assert "[image 1 of 2: image/png" in out and "[image 2 of 2: image/png" in out
    assert "[demo-image · 64x64 · 2 images · total" in out
    res = ip.run_cell("%%llm -m demo-image\na fox [[policy]]")
    assert isinstance(res.error_in_exec, nbllm.HTTPStatusError)
    assert "safety system" in str(res.error_in_exec)


# ---- evaluate ----------------------------------------------------------------------------------


def test_evaluate_gives_a_row_per_image_with_files_not_bytes(demo: nbllm.DemoServer, tmp_path: Path) -> None:
    reg = nbllm.registry()
    reg.add(nbllm.Endpoint(name="img", url=demo.url + "/images/generations", price_image=0.02))
    reg.add(nbllm.Endpoint(name="txt", url=demo.url))
    cases = [{"q": "a fox"}, {"q": "a cat [[policy]]"}]
    cache = tmp_path / "cache.sqlite3"
    df = nbllm.evaluate(cases, ["img", "txt"], prompt="{q}", params={"n": 2}, cache=cache, progress=False)
    img = df[df["model"] == "img"].reset_index(drop=True)
    assert len(img) == 3  # the fox: 2 images; the refused prompt: one row with its error
    fox = img[img["error"] == ""]
    assert list(fox["image_mime"]) == ["image/png"] * 2 and list(fox["cost"]) == [0.02, 0.02]
    assert list(fox["output"]) == ["A 64x64 gradient for: a fox"] * 2
    for sha, path, i in zip(fox["image_sha256"], fox["image_path"], range(2), strict=True):
        data = Path(path).read_bytes()
        assert data == make_png("a fox", 64, 64, i) and hashlib.sha256(data).hexdigest() == sha
        assert Path(path).parent == Path(os.environ["NBLLM_CONFIG_DIR"]) / "images"
    refused = img[img["error"] != ""]
    assert "safety system" in refused["error"].iloc[0] and refused["image_path"].iloc[0] == ""
    assert all(isinstance(v, str) for v in df["output"])  # no bytes anywhere in the frame
    assert not any(isinstance(v, bytes) for col in df.columns for v in df[col])
    txt = df[df["model"] == "txt"]
    assert len(txt) == 2 and set(txt["image_path"]) == {""}  # text rows: one each, no image
    again = nbllm.evaluate(cases, ["img", "txt"], prompt="{q}", params={"n": 2}, cache=cache, progress=False)
    hit = again[(again["model"] == "img") & again["cached"]]
    assert list(hit["image_path"]) == list(fox["image_path"])  # cached rows keep their images


def test_the_form_registers_an_image_endpoint_from_its_url() -> None:
    f = nbllm.model_form()
    url = "http://127.0.0.1:9/v1/images/generations"
    try:
        f.form.url.value = url
        assert f.form.type.value == "image"  # inferred from the URL, as chat/completion are
        f.form.model.value = "dall-e-3"
        f.form.inputs["price_image"].value = "0.04"
        f.form.save_button.click()
        ep = nbllm.registry().get("dall-e-3")
        assert (ep.type, ep.price_image, ep.request_url) == ("image", 0.04, url)
    finally:
        f.close_all()


def test_llm_model_add_type_image_completes_a_base_url(ip: InteractiveShell) -> None:
    assert ip.run_cell("%llm_model add pics --url http://127.0.0.1:9/v1 --type image").success
    ep = nbllm.registry().get("pics")
    assert (ep.type, ep.request_url) == ("image", "http://127.0.0.1:9/v1/images/generations")


def test_server_errors_are_retried_like_text_calls() -> None:
    replies = [httpx.Response(503, json={"error": {"message": "busy"}}, headers={"retry-after": "0"})]
    hosts = Hosts({"POST img.example/v1/images/generations": None})

    def answer(request: httpx.Request) -> httpx.Response:
        hosts.seen.append(request)
        return replies.pop() if replies else httpx.Response(200, json={"data": [{"b64_json": B64}]})

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        r = nbllm.generate_image(image_ep(retries=2), "a fox", client=client)
    assert r.image_bytes == PNG and r.retries == 1 and len(hosts.seen) == 2


def test_llm_cell_on_an_image_only_handler_provider(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    nbllm.register_provider("img-cell", AsyncImages())
    ip.magics_manager.registry["LLMMagics"].output = "text"
    res = ip.run_cell("%%llm -m img-cell/painter -o pic\na fox")
    assert res.success, res.error_in_exec
    assert ip.user_ns["pic"].image_bytes == PNG
    assert "revised prompt: painter: a fox" in capsys.readouterr().out


def test_a_gzip_answer_over_a_real_socket_is_inflated_within_the_cap() -> None:
    import gzip
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    body = gzip.compress(json.dumps({"data": [{"b64_json": B64}], "pad": "x" * 4000}).encode())

    class Gzipped(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Gzipped)
    thread = threading.Thread(target=lambda: [server.handle_request() for _ in range(2)], daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1/images/generations"
        r = nbllm.generate_image(nbllm.Endpoint(name="gz", url=url, retries=0), "a fox")
        assert r.image_bytes == PNG and r.raw["pad"] == "x" * 4000
        # decompressed, the answer is over a 2 KiB cap though its gzip is not: refused
        with pytest.raises(nbllm.StreamError, match="max_body_bytes"):
            nbllm.generate_image(nbllm.Endpoint(name="gz", url=url, retries=0, max_body_bytes=2048), "a fox")
    finally:
        thread.join(5)
        server.server_close()


def test_llm_model_test_generates_one_image(
    ip: InteractiveShell, demo: nbllm.DemoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    nbllm.registry().add(nbllm.Endpoint(name="demo-image", url=demo.url + "/images/generations"))
    assert ip.run_cell("%llm_model test demo-image").success
    out = capsys.readouterr().out
    assert "✓ image       HTTP 200 · " in out and "1 image · 64x64 image/png" in out and "(b64_json)" in out
    assert "streaming" not in out and out.rstrip().endswith("OK")
    nbllm.registry().add(nbllm.Endpoint(name="down", url="http://127.0.0.1:9/v1", type="image", retries=0))
    res = ip.run_cell("%llm_model test down")
    assert isinstance(res.error_in_exec, nbllm.NbllmError)
    assert "✗ image       ConnectError: cannot connect" in capsys.readouterr().out


def test_evaluate_preflight_prices_image_endpoints_per_image(
    demo: nbllm.DemoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    nbllm.registry().add(nbllm.Endpoint(name="img", url=demo.url + "/images/generations", price_image=0.5))
    cases = [{"q": "a"}, {"q": "b"}, {"q": "c"}]
    df = nbllm.evaluate(cases, "img", prompt="{q}", params={"n": 2}, cache=False, progress=True)
    out = capsys.readouterr().out
    assert "est. cost ≤ $3.00 (img ≤ $3.00)" in out  # 3 calls x 2 images x $0.50
    assert len(df) == 6 and df["cost"].sum() == pytest.approx(3.0)
