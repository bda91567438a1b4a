"""The HTTP API through FastAPI's TestClient: every success and error path."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from colorquant.web import WebSettings, create_app

from .conftest import encoded, png_claiming


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def photo_bytes():
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.coffee()[::2, ::2].copy()).save(buffer, "PNG")
    return buffer.getvalue()


def upload(data: bytes, name: str = "coffee.png"):
    return {"file": (name, data, "application/octet-stream")}


def test_health(client):
    response = client.get("/api/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_page_and_docs_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "colorquant" in page.text and "/static/app.js" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # offline: no CDN
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/docs").status_code == 200
    assert "/api/compress" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("method", ["kmeans", "minibatch", "gmm"])
def test_compress_returns_palette_png_with_figures(client, photo_bytes, method):
    response = client.post("/api/compress", files=upload(photo_bytes), data={"method": method, "colors": "12"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    image = Image.open(io.BytesIO(response.content))
    assert image.mode == "P" and len(image.getcolors(256)) <= 12
    assert int(response.headers["x-colorquant-colors"]) == 12
    assert int(response.headers["x-colorquant-bytes-out"]) == len(response.content)
    assert int(response.headers["x-colorquant-bytes-in"]) == len(photo_bytes)
    assert 20 < float(response.headers["x-colorquant-psnr"]) < 45
    assert 0 < float(response.headers["x-colorquant-ssim"]) <= 1
    assert len(response.headers["x-colorquant-palette"].split(",")) == 12
    assert f'filename="coffee-{method}-k12.png"' in response.headers["content-disposition"]


def test_compress_with_psnr_target(client, photo_bytes):
    response = client.post("/api/compress/json", files=upload(photo_bytes), data={"target_psnr": "30"})
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["psnr"] >= 30 and len(record["search"]) >= 2
    image = Image.open(io.BytesIO(base64.b64decode(record["png_base64"])))
    assert len(image.getcolors(256)) == record["colors"]


def test_compare_runs_all_three(client, photo_bytes):
    response = client.post("/api/compare", files=upload(photo_bytes), data={"colors": "8"})
    assert response.status_code == 200
    assert [r["method"] for r in response.json()] == ["kmeans", "minibatch", "gmm"]


def test_client_file_name_never_becomes_a_path(client, photo_bytes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    response = client.post("/api/compress", files=upload(photo_bytes, "../../etc/evil\";.png"))
    assert response.status_code == 200
    disposition = response.headers["content-disposition"]
    assert ".." not in disposition.split("filename=")[1].strip('"').replace("..png", "")
    assert "/" not in disposition and '";' not in disposition[:-1]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("data, fragment", [
    ({"colors": "1"}, "colors"),
    ({"colors": "300"}, "colors"),
    ({"colors": "many"}, "colors"),
    ({"method": "dbscan"}, "method"),
    ({"target_psnr": "-3"}, "target_psnr"),
    ({"target_psnr": "120"}, "target_psnr"),
    ({"dither": "2"}, "dither"),
])
def test_bad_parameters_are_422(client, photo_bytes, data, fragment):
    response = client.post("/api/compress", files=upload(photo_bytes), data=data)
    assert response.status_code == 422
    assert fragment in response.json()["error"]


def test_missing_file_is_422(client):
    response = client.post("/api/compress", data={"colors": "8"})
    assert response.status_code == 422 and "file" in response.json()["error"]


def test_unreachable_target_is_422_with_best_value(client, photo_bytes):
    response = client.post("/api/compress", files=upload(photo_bytes), data={"target_psnr": "80", "colors": "4"})
    assert response.status_code == 422 and "best PSNR" in response.json()["error"]


@pytest.mark.parametrize("content", [b"hello, not an image", b"%!PS-Adobe-3.0 EPSF-3.0\n", b""])
def test_not_an_image_is_415(client, content):
    response = client.post("/api/compress", files=upload(content, "x.png"))
    assert response.status_code == 415
    assert response.json()["error"]


def test_truncated_image_is_415(client, photo_bytes):
    response = client.post("/api/compress", files=upload(photo_bytes[: len(photo_bytes) // 2]))
    assert response.status_code == 415 and "truncated" in response.json()["error"]


def test_too_many_pixels_is_413(client):
    bomb = png_claiming(8000, 6000, idat_bytes=20_000)  # 48 MP > 40 MP
    response = client.post("/api/compress", files=upload(bomb))
    assert response.status_code == 413 and "over the limit of 40,000,000" in response.json()["error"]


def test_upload_over_size_limit_is_413_while_streaming():
    app = create_app(WebSettings(max_upload_bytes=50_000))
    with TestClient(app) as small_client:
        big = b"\x89PNG" + b"\0" * 200_000
        response = small_client.post("/api/compress", files=upload(big))
        assert response.status_code == 413 and "larger than the limit" in response.json()["error"]

        # no Content-Length (chunked): a well-formed multipart body, counted as it streams in
        def chunks():
            yield (b"--boundary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
                   b"Content-Type: application/octet-stream\r\n\r\n")
            for _ in range(20):
                yield b"\0" * 10_000
            yield b"\r\n--boundary--\r\n"

        response = small_client.post("/api/compress", content=chunks(),
                                     headers={"content-type": "multipart/form-data; boundary=boundary"})
        assert response.status_code == 413 and "larger than the limit" in response.json()["error"]


def test_too_many_in_flight_is_503():
    app = create_app(WebSettings(max_in_flight=1))
    with TestClient(app) as busy_client:
        app.state.slots.in_use, app.state.slots.pixels = 1, 1  # one image already in progress
        response = busy_client.post("/api/compress", files=upload(b"x"))
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert "busy" in response.json()["error"]
        app.state.slots.in_use, app.state.slots.pixels = 0, 0
        assert busy_client.get("/api/health").status_code == 200


def test_images_in_progress_share_a_pixel_budget(coffee):
    # What a request costs follows its pixels: a second image that would take the pixels in
    # progress over the budget waits (503), a small one goes ahead, one alone always goes.
    app = create_app(WebSettings(max_in_flight=2, max_pixels_in_flight=300_000))
    photo = encoded(coffee)  # 400 x 600 = 240,000 pixels
    small = encoded(coffee[:100, :100])
    with TestClient(app) as shared:
        assert shared.post("/api/compress", files=upload(photo)).status_code == 200  # alone
        app.state.slots.in_use, app.state.slots.pixels = 1, 240_000  # that photo in progress
        refused = shared.post("/api/compress", files=upload(photo))
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert shared.post("/api/compress", files=upload(small)).status_code == 200
        assert (app.state.slots.in_use, app.state.slots.pixels) == (1, 240_000)  # given back


def test_every_response_carries_the_security_headers(client):
    for response in (client.get("/"), client.get("/api/health"), client.get("/nowhere"),
                     client.post("/api/compress", files=upload(b"not an image"))):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self';" in policy
        assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    assert "style-src 'self';" in client.get("/").headers["content-security-policy"]


def test_page_has_no_inline_script_or_style(client):
    import re

    page = client.get("/").text
    assert re.findall(r"<script\b[^>]*>", page) == ['<script src="/static/zip.js">', '<script src="/static/app.js">']
    assert "<style" not in page and " style=" not in page
    assert re.search(r"\son[a-z]+\s*=", page) is None  # no inline event handlers
    assert client.get("/static/favicon.svg").status_code == 200


def test_api_docs_work_offline(client):
    docs = client.get("/docs")
    assert docs.status_code == 200 and "http://" not in docs.text and "https://" not in docs.text
    assert "<script>" not in docs.text  # no inline script: the policy holds on the docs too
    for asset in ("/static/docs/swagger-ui-bundle.js", "/static/docs/swagger-ui.css", "/static/docs.js"):
        response = client.get(asset)
        assert response.status_code == 200 and len(response.content) > 50, asset
    assert client.get("/openapi.json").json()["openapi"].startswith("3.")


@pytest.mark.parametrize("method, path, status", [("GET", "/nowhere", 404), ("DELETE", "/api/health", 405),
                                                  ("GET", "/api/compress", 405), ("GET", "/static/nothing.js", 404)])
def test_http_errors_have_the_documented_shape(client, method, path, status):
    response = client.request(method, path)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error", "status"} and body["status"] == status and path in body["error"]


def test_only_allowed_host_names_are_answered():
    app = create_app(WebSettings(allowed_hosts=("localhost", "127.0.0.1", "::1")))
    with TestClient(app) as local:
        refused = local.get("/api/health", headers={"host": "evil.example:8000"})
        assert refused.status_code == 400 and refused.json()["status"] == 400
        assert "host name" in refused.json()["error"]
        for host in ("localhost:8000", "127.0.0.1", "[::1]:8000", "LOCALHOST"):
            assert local.get("/api/health", headers={"host": host}).status_code == 200, host


def test_download_names_are_the_clis_for_an_image_of_few_colours(client, run_cli, tmp_path):
    two = np.zeros((32, 48, 3), np.uint8)
    two[:, 24:] = 255
    data = encoded(two)
    response = client.post("/api/compress", files=upload(data, "bw.png"))
    assert response.status_code == 200
    (tmp_path / "bw.png").write_bytes(data)
    assert run_cli("compress", tmp_path / "bw.png").status == 0
    cli_name = next(p.name for p in tmp_path.iterdir() if p.name != "bw.png")
    assert response.headers["content-disposition"] == f'attachment; filename="{cli_name}"'
    assert cli_name == "bw-kmeans-k200.png"


def test_head_is_answered_where_get_is(client):
    for path in ("/", "/api/health", "/api/methods", "/api/settings", "/docs"):
        response = client.head(path)
        assert response.status_code == 200, path
        assert response.content == b""


def test_metrics_all_is_every_figure_as_on_the_command_line(client, coffee):
    from colorquant.metrics import METRICS

    response = client.post("/api/compress/json", files=upload(encoded(coffee[:64, :64])),
                           data={"metrics": "all", "colors": "8"})
    assert response.status_code == 200, response.text
    record = response.json()
    assert all(record[name] is not None for name in METRICS)
