"""LangChain's standard tool suites, unmodified."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests

from image_tool import ImageGenerationTool

from ..conftest import RelayTarget

EXAMPLE_ARGS = {"prompt": "A lighthouse on a cliff at dawn", "size": "1792x1024", "style": "natural"}


class TestImageGenerationToolUnit(ToolsUnitTests):
    @property
    def tool_constructor(self) -> type[ImageGenerationTool]:
        return ImageGenerationTool

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"api_key": "unit-key", "base_url": "https://relay.example.com/v1"}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return EXAMPLE_ARGS

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        environment = {"IMAGE_TOOL_API_KEY": "env-key", "IMAGE_TOOL_BASE_URL": "https://relay.example.com/v1"}
        return environment, {}, {"name": "generate_image", "user": None}


@pytest.mark.vcr
class TestImageGenerationToolIntegration(ToolsIntegrationTests):
    """Built from the environment, which points at the recorded (or recording) relay."""

    @pytest.fixture(autouse=True)
    def _relay_environment(self, relay: RelayTarget, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("IMAGE_TOOL_API_KEY", relay.api_key)
        monkeypatch.setenv("IMAGE_TOOL_BASE_URL", relay.base_url)

    @property
    def tool_constructor(self) -> type[ImageGenerationTool]:
        return ImageGenerationTool

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return EXAMPLE_ARGS
