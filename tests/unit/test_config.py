"""Settings: where the key and address come from, and how a misconfiguration is reported."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, assert_type

import httpx2
import pytest
from pydantic import SecretStr

from image_tool import ClientSettings, ConfigurationError, ImageClient, ImageGenerationTool
from image_tool._io.connection import normalise_base_url, resolve_connection

RELAY = "https://relay.example.com/v1"


def test_arguments_win_over_the_environment() -> None:
    environ = {"IMAGE_TOOL_API_KEY": "env-key", "IMAGE_TOOL_BASE_URL": "https://other.example/v1"}
    assert resolve_connection("arg-key", RELAY, environ) == ("arg-key", RELAY)


def test_image_tool_variables() -> None:
    environ = {"IMAGE_TOOL_API_KEY": "env-key", "IMAGE_TOOL_BASE_URL": RELAY + "/"}
    assert resolve_connection(None, None, environ) == ("env-key", RELAY)


def test_openai_variables_as_a_pair() -> None:
    environ = {"OPENAI_API_KEY": "openai-key", "OPENAI_BASE_URL": RELAY}
    assert resolve_connection(None, None, environ) == ("openai-key", RELAY)


@pytest.mark.parametrize(
    ("api_key", "base_url", "environ", "named"),
    [
        # The OpenAI key alone is never sent to an address that came from elsewhere.
        (None, RELAY, {"OPENAI_API_KEY": "openai-key"}, "IMAGE_TOOL_API_KEY"),
        (None, None, {"IMAGE_TOOL_BASE_URL": RELAY, "OPENAI_API_KEY": "k"}, "IMAGE_TOOL_API_KEY"),
        ("key", None, {"OPENAI_BASE_URL": RELAY}, "IMAGE_TOOL_BASE_URL"),
        (None, None, {"OPENAI_API_KEY": "openai-key"}, "IMAGE_TOOL_BASE_URL"),
        (None, None, {}, "IMAGE_TOOL_API_KEY and IMAGE_TOOL_BASE_URL"),
        (None, None, {"IMAGE_TOOL_API_KEY": "  ", "IMAGE_TOOL_BASE_URL": ""}, "IMAGE_TOOL_API_KEY"),
    ],
)
def test_missing_settings_name_the_variables_to_set(
    api_key: str | None, base_url: str | None, environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        resolve_connection(api_key, base_url, environ)


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("https://relay.example.com/v1", RELAY),
        ("https://relay.example.com/v1/", RELAY),
        ("https://relay.example.com//v1", RELAY),  # the vendor's own examples
        ("  https://relay.example.com//v1//  ", RELAY),
        ("https://relay.example.com/v1/chat/completions", RELAY),
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1"),
        ("https://relay.example.com", "https://relay.example.com"),
    ],
)
def test_base_url_is_normalised(given: str, normalised: str) -> None:
    assert normalise_base_url(given) == normalised


@pytest.mark.parametrize(
    "bad", ["relay.example.com/v1", "ftp://relay.example.com", "https://", "https://h/v1?x=1"]
)
def test_invalid_base_url_fails_with_the_fix(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="IMAGE_TOOL_BASE_URL"):
        normalise_base_url(bad)


def test_client_fails_at_construction_naming_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="IMAGE_TOOL_API_KEY and IMAGE_TOOL_BASE_URL"):
        ImageClient()


def test_client_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGE_TOOL_API_KEY", "env-key")
    monkeypatch.setenv("IMAGE_TOOL_BASE_URL", "https://relay.example.com//v1/")
    client = ImageClient()
    assert client.api_key.get_secret_value() == "env-key"
    assert client.endpoint == "https://relay.example.com/v1/chat/completions"
    assert client.model == "gpt-4o-image"


def test_client_settings() -> None:
    client = ImageClient(
        api_key="k", base_url=RELAY, model="gpt-4o-image-vip", timeout=300, default_headers={"X-A": "1"}
    )
    assert client.model == "gpt-4o-image-vip"
    assert client.timeout == 300
    assert client.default_headers == {"X-A": "1"}
    assert ImageClient(api_key="k", base_url=RELAY, timeout=httpx2.Timeout(5.0)).timeout == httpx2.Timeout(
        5.0
    )


def test_default_timeout_fits_minutes_long_generations() -> None:
    timeout = httpx2.Timeout(ImageClient(api_key="k", base_url=RELAY).timeout)
    assert timeout.read is not None and timeout.read >= 300
    assert timeout.connect is not None and timeout.connect <= 30


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="api_kye"):
        ImageClient(api_key="k", base_url=RELAY, api_kye="typo")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"total_timeout": 0}, "total_timeout"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"timeout": "soon"}, "timeout"),
    ],
)
def test_invalid_settings_fail_at_construction(settings: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named) as caught:
        ImageClient(api_key="sk-settings-secret-0123456789", base_url=RELAY, **settings)
    assert "sk-settings-secret" not in str(caught.value)


def test_credentials_in_the_base_url_are_refused_without_being_shown() -> None:
    # httpx2 would send them as Basic auth in place of the key; the password never shows.
    with pytest.raises(ConfigurationError, match="user name or password") as caught:
        ImageClient(api_key="k", base_url="https://user:hunter2@relay.example.com/v1")
    assert "hunter2" not in str(caught.value)
    assert "relay.example.com" in str(caught.value)
    with pytest.raises(ConfigurationError) as caught:
        ImageClient(api_key="k", base_url="ftp://user:hunter2@relay.example.com/v1")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("base_url", "allowed"),
    [
        ("http://relay.example.com/v1", False),
        ("http://10.0.0.5:3000/v1", False),
        ("http://127.0.0.1:3000/v1", True),
        ("http://localhost:3000/v1", True),
        ("http://[::1]:3000/v1", True),
        ("https://relay.example.com/v1", True),
    ],
)
def test_the_key_never_travels_in_clear_to_another_host(base_url: str, allowed: bool) -> None:
    if allowed:
        assert ImageClient(api_key="k", base_url=base_url).base_url == base_url
    else:
        with pytest.raises(ConfigurationError, match="allow_insecure_http=True"):
            ImageClient(api_key="k", base_url=base_url)
        assert ImageClient(api_key="k", base_url=base_url, allow_insecure_http=True).base_url == base_url


def test_each_setting_is_declared_once_and_typed_as_given() -> None:
    # ClientSettings declares the settings; the client has them as fields, the tool takes them as
    # keywords. Type checkers see the wider type a setting is given in (mypy checks this file).
    client = ImageClient(api_key="k", base_url=RELAY, save_dir="images", timeout=30)
    assert_type(client.api_key, SecretStr)
    assert_type(client.save_dir, Path | None)
    assert client.save_dir == Path("images")
    assert ImageClient.model_fields.keys() == ClientSettings.model_fields.keys()
    tool = ImageGenerationTool(api_key="k", base_url=RELAY, save_dir="images", stream=True, user="u")
    assert tool.client.save_dir == Path("images")
    assert tool.client.stream is True
    if TYPE_CHECKING:  # what type checkers refuse (mypy reports an ignore that is not needed)
        ImageClient(api_key=42)  # type: ignore[arg-type]
        ImageGenerationTool(max_retries="2")  # type: ignore[arg-type]
        ImageGenerationTool(api_kye="typo")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("setting", "make"),
    [
        ("http_client", lambda httpx: httpx.Client()),
        ("http_async_client", lambda httpx: httpx.AsyncClient()),
        ("timeout", lambda httpx: httpx.Timeout(5.0)),
    ],
)
def test_an_httpx_object_is_refused_naming_httpx2(setting: str, make: Any) -> None:
    """httpx's (installed in the test environment by langchain-tests) is not httpx2's."""
    httpx = pytest.importorskip("httpx")
    value = make(httpx)
    with pytest.raises(
        ConfigurationError, match=rf"{setting} is an httpx \w+, .* pass an httpx2\.\w+ instead"
    ):
        ImageClient(api_key="k", base_url=RELAY, **{setting: value})
    with pytest.raises(ConfigurationError, match="httpx2"):
        ImageGenerationTool(api_key="k", base_url=RELAY, **{setting: value})
