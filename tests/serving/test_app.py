"""The HTTP API in-process (FastAPI TestClient): every success and every error status."""

from __future__ import annotations

import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from dfdetect.runtime.export import export_onnx
from dfdetect.runtime.onnx_backend import OnnxPredictor
from dfdetect.runtime.torch_backend import TorchPredictor
from dfdetect.serving.app import create_app
from tests.conftest import face_frames, write_video

LIMIT = 300_000


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    )


def jpeg(size: tuple[int, int] = (40, 30), color: str = "tan") -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 30).convert("RGB").save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client(trained_run: Path) -> TestClient:
    return TestClient(create_app(TorchPredictor.from_checkpoint(trained_run, device="cpu"), max_upload_bytes=LIMIT))


def test_health_model_and_page(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/v1/model").json()
    assert info["model"] == "own_cnn" and info["parameters"] == 4_853_569 and info["explain"] is True
    assert info["preprocessing"]["input_size"] == 32 and info["labels"] == {"0": "Fake", "1": "Real"}
    assert info["validation_metrics"]["val_loss"] > 0
    assert info["noise_caution"] == 1.0 and info["noise_routing"] is None and info["small_caution"] == 48
    assert info["decision"] == "fake when p_fake > 0.500 (threshold policy 0.5)"  # the page shows it
    page = client.get("/")
    assert page.status_code == 200 and "/v1/predict" in page.text and "heatmap" in page.text
    assert client.get("/docs").status_code == 200 and "/v1/predict" in client.get("/openapi.json").text


def test_predict_one_and_many(client: TestClient) -> None:
    response = client.post(
        "/v1/predict",
        files=[("files", ("a.jpg", jpeg(), "image/jpeg")), ("files", ("b.png", png_bytes(), "image/png"))],
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["threshold"], body["threshold_policy"]) == (0.5, "0.5")  # the rule its labels follow
    assert [r["filename"] for r in body["results"]] == ["a.jpg", "b.png"]
    for result in body["results"]:
        assert abs(result["p_real"] + result["p_fake"] - 1) < 1e-9
        assert result["label"] == ("real" if result["p_real"] >= 0.5 else "fake")


def test_noisy_and_small_uploads_carry_a_caution(client: TestClient) -> None:
    y, x = np.mgrid[0:32, 0:32] / 32
    smooth = Image.fromarray((np.stack([x, y, x], axis=-1) * 200 + 20).astype(np.uint8))
    buffer = io.BytesIO()
    smooth.save(buffer, "PNG")
    uploads = [
        ("files", ("noisy.jpg", jpeg(), "image/jpeg")),
        ("files", ("smooth.png", buffer.getvalue(), "image/png")),
    ]
    small = io.BytesIO()
    smooth.resize((4, 4)).save(small, "PNG")  # under the run's 32 px input
    uploads.append(("files", ("small.png", small.getvalue(), "image/png")))
    noisy, calm, tiny = client.post("/v1/predict", files=uploads).json()["results"]
    assert noisy["noise"] > 5 and "noisy input" in noisy["caution"] and noisy["caution_codes"][-1] == "noisy"
    assert calm["noise"] < 1 and calm["caution"] is None and calm["caution_codes"] == []
    assert tiny["caution_codes"][0] == "small"
    assert tiny["caution"].startswith("small input (4 px on its shorter side < 32 px): brought up to the network's")


def test_photos_are_framed_like_predict(trained_run: Path) -> None:
    from tests.test_evaluation import tight_face_crop
    from tests.test_faces import scene

    def png(image: Image.Image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        return buffer.getvalue()

    predictor = TorchPredictor.from_checkpoint(trained_run, device="cpu")
    uploads = [("files", ("loose.png", png(scene(150, 60, 80)), "image/png"))]
    uploads.append(("files", ("tight.png", png(tight_face_crop()), "image/png")))
    answers = {}
    for mode in ("auto", "never"):
        response = TestClient(create_app(predictor, crop_face=mode)).post("/v1/predict", files=uploads)
        assert response.status_code == 200
        answers[mode] = response.json()["results"]
    loose, tight = answers["auto"]
    assert loose["faces_found"] == 1 and loose["face"] == 0 and tight["faces_found"] == 1 and tight["face"] is None
    assert loose["p_real"] != pytest.approx(answers["never"][0]["p_real"], abs=1e-6)  # the face, cut out
    assert tight["p_real"] == pytest.approx(answers["never"][1]["p_real"], abs=1e-6)  # a face crop, as it is
    assert answers["never"][0]["faces_found"] is None


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (20, 20), (10, 200, 30, 128)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "status", "error"),
    [
        (b"just some text", 415, "not a supported image"),
        (jpeg()[:200], 400, "corrupt image"),
        (png_bomb(), 413, "image too large"),
        (b"", 400, "corrupt image"),
    ],
)
def test_bad_uploads_get_4xx_with_json(client: TestClient, content: bytes, status: int, error: str) -> None:
    response = client.post("/v1/predict", files={"files": ("upload.jpg", content, "image/jpeg")})
    assert response.status_code == status
    assert response.json()["error"] == error and "upload.jpg" in response.json()["detail"]


def test_upload_over_the_limit_is_413(client: TestClient) -> None:
    big = jpeg((900, 900))
    assert len(big) > LIMIT
    response = client.post("/v1/predict", files={"files": ("big.jpg", big, "image/jpeg")})
    assert response.status_code == 413 and response.json()["error"] == "request too large"


def test_streamed_upload_over_the_limit_is_413(client: TestClient) -> None:
    boundary = "xyz"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="s.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()

    def body():  # no Content-Length: the server must count while reading
        yield head
        for _ in range(40):
            yield b"\0" * 10_000
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/v1/predict", content=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 413


def test_missing_files_field_is_422(client: TestClient) -> None:
    assert client.post("/v1/predict").status_code == 422
    assert client.post("/v1/predict", data={"other": "x"}).status_code == 422


def test_explain_returns_a_png_of_the_image_size(client: TestClient) -> None:
    response = client.post("/v1/explain", files={"files": ("face.jpg", jpeg((64, 48)), "image/jpeg")})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (64, 48)
    assert response.headers["x-label"] in {"real", "fake"} and 0 <= float(response.headers["x-p-real"]) <= 1
    two = client.post(
        "/v1/explain", files=[("files", ("a.jpg", jpeg(), "image/jpeg")), ("files", ("b.jpg", jpeg(), "image/jpeg"))]
    )
    assert two.status_code == 400 and two.json()["error"] == "one image expected"
    bad = client.post("/v1/explain", files={"files": ("x.txt", b"hello", "text/plain")})
    assert bad.status_code == 415


def test_concurrent_requests_give_the_same_answers(client: TestClient) -> None:
    payloads = [jpeg((40 + i, 30 + i)) for i in range(8)]

    def score(content: bytes) -> float:
        response = client.post("/v1/predict", files={"files": ("c.jpg", content, "image/jpeg")})
        assert response.status_code == 200
        return float(response.json()["results"][0]["p_real"])

    sequential = [score(p) for p in payloads]
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(score, payloads * 2))
    assert concurrent == pytest.approx(sequential * 2, abs=1e-6)
    with ThreadPoolExecutor(4) as pool:  # explanations hook the model: they must not interfere either
        statuses = list(
            pool.map(
                lambda p: client.post("/v1/explain", files={"files": ("e.jpg", p, "image/jpeg")}).status_code,
                payloads[:4],
            )
        )
    assert statuses == [200] * 4


def test_onnx_backed_server_has_no_explain(trained_run: Path, tmp_path: Path) -> None:
    app = create_app(OnnxPredictor(export_onnx(trained_run, tmp_path / "m.onnx")))
    client = TestClient(app)
    assert client.get("/v1/model").json()["explain"] is False
    assert client.post("/v1/explain", files={"files": ("a.jpg", jpeg(), "image/jpeg")}).status_code == 404
    assert client.post("/v1/predict", files={"files": ("a.jpg", jpeg(), "image/jpeg")}).status_code == 200


@pytest.fixture(scope="module")
def video_client(trained_run: Path) -> TestClient:
    predictor = TorchPredictor.from_checkpoint(trained_run, device="cpu")
    return TestClient(create_app(predictor, max_files=3, max_video_bytes=2_000_000, video_frames=4))


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    pytest.importorskip("av")
    folder = tmp_path_factory.mktemp("clips")
    face = write_video(folder / "face.mp4", face_frames(8)[0]).read_bytes()
    grey = write_video(folder / "grey.mp4", [np.full((96, 128, 3), 120, dtype=np.uint8)] * 6).read_bytes()
    return {"face": face, "grey": grey, "truncated": face[:900]}


def test_a_video_gets_its_verdict_and_per_frame_scores(video_client: TestClient, clips: dict[str, bytes]) -> None:
    files = [("files", ("clip.mp4", clips["face"], "video/mp4")), ("files", ("still.png", png_bytes(), "image/png"))]
    response = video_client.post("/v1/predict", files=files)
    assert response.status_code == 200, response.text
    video, image = response.json()["results"]
    assert (video["kind"], video["filename"], video["frames_read"], video["faces_found"]) == ("video", "clip.mp4", 4, 4)
    assert len(video["frames"]) == 4 and all(0 <= frame["p_fake"] <= 1 for frame in video["frames"])
    noises = sorted(frame["noise"] for frame in video["frames"])
    assert video["noise"] == pytest.approx((noises[1] + noises[2]) / 2, abs=0.01)  # the median face's
    assert image["kind"] == "image" and image["frames"] is None


@pytest.mark.parametrize(
    ("name", "status", "error"),
    [("truncated", 400, "corrupt video"), ("grey", 422, "no face found")],
)
def test_bad_videos_get_a_4xx(
    video_client: TestClient, clips: dict[str, bytes], name: str, status: int, error: str
) -> None:
    response = video_client.post("/v1/predict", files={"files": (f"{name}.mp4", clips[name], "video/mp4")})
    assert response.status_code == status and response.json()["error"] == error
    assert f"{name}.mp4" in response.json()["detail"]


def test_limits_on_files_and_video_size(video_client: TestClient, client: TestClient, clips: dict[str, bytes]) -> None:
    many = [("files", (f"{i}.png", png_bytes(), "image/png")) for i in range(4)]
    response = video_client.post("/v1/predict", files=many)
    assert response.status_code == 413 and response.json()["error"] == "too many files"
    assert "at most 3" in response.json()["detail"]
    big = b"\x00" * 2_100_000
    response = video_client.post("/v1/predict", files={"files": ("big.mp4", big, "video/mp4")})
    assert response.status_code == 413
    response = client.post("/v1/predict", files={"files": ("clip.mp4", clips["face"], "video/mp4")})
    assert response.status_code == 415 and response.json()["error"] == "videos not accepted"
