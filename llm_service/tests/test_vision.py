"""Images for a vision model: upright, small, without metadata, sent as a `data:` URL in an
`image_url` content part together with the OCR text (checked at the fake provider), and which
providers see images at all."""

from __future__ import annotations

import base64
import io
import json
import re
from typing import Any

import httpx
import pytest
from PIL import Image

from common.api_clients.llm import CircuitBreaker, OpenAICompatibleClient, get_preset
from common.api_clients.llm.presets import vision_model_for
from common.api_clients.llm.results import TokenUsage
from llm_service.app.extraction.images import UnreadableImage, data_url, vision_jpeg
from llm_service.app.providers.base import Analysis
from llm_service.app.providers.local import LocalProvider
from llm_service.app.providers.registry import build_remote
from llm_service.app.providers.remote import LANGUAGES, NOTHING, PROMPTS_DIR, RemoteProvider, load_prompt
from llm_service.tests.fake_provider import FAKE_API_KEY, FakeProvider, Reply

CAMERA = "JiluTestCam"
COMMENT = b"taken at home"
ORIENTATION, MAKE, GPS_IFD = 0x0112, 0x010F, 0x8825
RED, BLUE = (255, 0, 0), (0, 0, 255)


def photo_with_exif(width: int = 40, height: int = 20, orientation: int = 6) -> bytes:
    """A JPEG, red on the left and blue on the right, with an orientation, a camera, a GPS
    position and a comment in its metadata."""
    image = Image.new("RGB", (width, height), RED)
    image.paste(BLUE, (width // 2, 0, width, height))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[MAKE] = CAMERA
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (39.0, 54.0, 26.0), 3: "E", 4: (116.0, 23.0, 29.0)})
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, comment=COMMENT, quality=95)
    return out.getvalue()


def assert_bare_jpeg(data: bytes) -> Image.Image:
    """A JPEG with pixels only: no EXIF (no camera, no position), no comment, no profile."""
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == "JPEG" and decoded.mode == "RGB"
    assert len(decoded.getexif()) == 0
    assert not {"exif", "comment", "icc_profile", "xmp"} & set(decoded.info)
    assert b"Exif\0\0" not in data and CAMERA.encode() not in data and COMMENT not in data
    return decoded


def near(pixel: Any, colour: tuple[int, int, int]) -> bool:
    return all(abs(a - b) < 40 for a, b in zip(pixel, colour, strict=True))


def make_provider(
    http: httpx.AsyncClient, fake: FakeProvider, vision_model: str | None = "fake-vision"
) -> RemoteProvider:
    client = OpenAICompatibleClient(
        http, fake.base_url, FAKE_API_KEY, "fake-model", breaker=CircuitBreaker(), backoff_base=0.01, max_retries=1
    )
    return RemoteProvider(client, name="fake", supports_json_mode=True, vision_model=vision_model)


# -- the image --------------------------------------------------------------------------


def test_the_input_has_the_metadata_the_output_must_lose() -> None:
    source = Image.open(io.BytesIO(photo_with_exif()))
    assert source.getexif()[MAKE] == CAMERA and source.getexif().get_ifd(GPS_IFD)
    assert source.info["comment"] == COMMENT


def test_a_photo_is_turned_upright_and_loses_its_metadata() -> None:
    decoded = assert_bare_jpeg(vision_jpeg(photo_with_exif(40, 20, orientation=6)))

    # Orientation 6: the camera was turned; shown upright, the left (red) half is on top.
    assert decoded.size == (20, 40)
    assert near(decoded.getpixel((10, 5)), RED) and near(decoded.getpixel((10, 35)), BLUE)


def test_a_large_transparent_screenshot_is_scaled_down_onto_white() -> None:
    screenshot = Image.new("RGBA", (3200, 800), (0, 0, 0, 0))
    screenshot.paste((0, 0, 0, 255), (0, 0, 100, 800))
    out = io.BytesIO()
    screenshot.save(out, "PNG")

    decoded = assert_bare_jpeg(vision_jpeg(out.getvalue()))
    assert decoded.size == (1568, 392)
    assert near(decoded.getpixel((1000, 200)), (255, 255, 255)) and near(decoded.getpixel((10, 200)), (0, 0, 0))
    assert assert_bare_jpeg(vision_jpeg(out.getvalue(), max_side=400)).size == (400, 100)


def test_a_small_image_is_not_scaled_up() -> None:
    assert Image.open(io.BytesIO(vision_jpeg(photo_with_exif(40, 20, orientation=1)))).size == (40, 20)


@pytest.mark.parametrize("data", [b"", b"not an image", photo_with_exif()[:200]])
def test_what_is_not_an_image_is_refused(data: bytes) -> None:
    with pytest.raises(UnreadableImage):
        vision_jpeg(data)


def test_the_data_url_carries_the_jpeg() -> None:
    jpeg = vision_jpeg(photo_with_exif())
    url = data_url(jpeg)
    assert url.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(url.removeprefix("data:image/jpeg;base64,"), validate=True) == jpeg


# -- the request ----------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_describe_image_prompt_exists_in_both_languages(language: str) -> None:
    assert (PROMPTS_DIR / language / "describe_image.txt").is_file()
    prompt = load_prompt(language, "describe_image")
    assert prompt.system and "JSON" in prompt.system
    assert set(re.findall(r"\{(\w+)\}", prompt.system + prompt.user)) == {"ocr_text"}
    assert prompt.system != load_prompt("en" if language != "en" else "zh-CN", "describe_image").system


async def test_the_request_carries_the_image_as_a_data_url_and_the_ocr_text(http, shared_fake) -> None:
    answer = {"title": "会议室预订", "summary": "一张会议室预订页面的截图：下午两点，三楼。", "tags": ["工作", "会议"]}
    reply = "```json\n" + json.dumps(answer, ensure_ascii=False) + "\n```"
    shared_fake.script(Reply(text=reply, usage=(900, 40)))
    jpeg = vision_jpeg(photo_with_exif())

    analysis, usage = await make_provider(http, shared_fake).describe_image(
        jpeg, ocr_text="3F 会议室 14:00", language="zh-CN"
    )

    assert analysis == Analysis("会议室预订", "一张会议室预订页面的截图：下午两点，三楼。", ("工作", "会议"))
    assert usage == TokenUsage(prompt_tokens=900, completion_tokens=40)
    [request] = shared_fake.chat_requests
    body = request.json
    assert body["model"] == "fake-vision"  # the vision model, not the chat model
    assert "response_format" not in body
    system, user = body["messages"]
    assert system == {"role": "system", "content": load_prompt("zh-CN", "describe_image").system}
    assert user["role"] == "user"
    text_part, image_part = user["content"]
    assert text_part["type"] == "text" and "3F 会议室 14:00" in text_part["text"]
    assert image_part["type"] == "image_url"
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    sent = base64.b64decode(url.removeprefix("data:image/jpeg;base64,"), validate=True)
    assert sent == jpeg
    assert_bare_jpeg(sent)
    assert "3F 会议室 14:00" in shared_fake.received_text()


async def test_an_image_without_ocr_text_says_so_in_english(http, shared_fake) -> None:
    shared_fake.script(Reply(text='{"title": "Sunset", "summary": "A sunset over the sea.", "tags": ["travel"]}'))
    analysis, _ = await make_provider(http, shared_fake).describe_image(
        vision_jpeg(photo_with_exif()), ocr_text="  ", language="en"
    )

    assert analysis.title == "Sunset"
    text_part = shared_fake.chat_requests[-1].json["messages"][1]["content"][0]
    assert f"<<<OCR\n{NOTHING}\nOCR>>>" in text_part["text"]
    assert text_part["text"].startswith(load_prompt("en", "describe_image").user.split("\n")[0])


async def test_providers_without_a_vision_model_do_not_see(http, shared_fake) -> None:
    local = LocalProvider()
    assert local.can_see_images is False
    with pytest.raises(NotImplementedError):
        await local.describe_image(b"", ocr_text="", language="en")
    assert make_provider(http, shared_fake, vision_model=None).can_see_images is False
    assert make_provider(http, shared_fake).can_see_images is True


# -- which providers see and hear -------------------------------------------------------


def test_vision_models_are_told_by_name() -> None:
    ollama, qwen = get_preset("ollama"), get_preset("qwen")
    for model in ("llava:13b", "qwen2.5vl:7b", "llama3.2-vision:11b", "minicpm-v:8b", "Qwen/Qwen2-VL-7B-Instruct"):
        assert vision_model_for(ollama, model) == model
    for model in ("qwen2.5:7b", "deepseek-r1:8b", "vlad-7b"):
        assert vision_model_for(ollama, model) is None
    assert vision_model_for(qwen, "qwen-plus") == "qwen-vl-plus"
    assert vision_model_for(None, "my-model") is None


async def test_presets_say_which_providers_transcribe_and_see(http, make_settings) -> None:
    settings = make_settings()

    def built(name: str, model: str = "", base_url: str = "") -> tuple[str | None, str | None]:
        provider = build_remote(http, settings, name, base_url, model, "sk-test")
        assert provider.can_transcribe == bool(provider.transcription_model)
        assert provider.can_see_images == bool(provider.vision_model)
        return provider.transcription_model, provider.vision_model

    assert built("openai") == ("gpt-4o-mini-transcribe", "gpt-4o-mini")
    assert built("deepseek") == (None, None)
    assert built("qwen") == (None, "qwen-vl-plus")
    assert built("ollama") == (None, None)
    assert built("ollama", "llava:13b") == (None, "llava:13b")
    assert built("custom", "my-model", "https://llm.example.com/v1") == (None, None)
