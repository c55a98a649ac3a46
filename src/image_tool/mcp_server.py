"""An MCP server (stdio) that offers image-tool's ``generate_image`` to MCP clients.

    IMAGE_TOOL_API_KEY=... IMAGE_TOOL_BASE_URL=... python -m image_tool.mcp_server --save-dir ./images

Needs the ``mcp`` extra (``pip install 'image-tool[mcp]'``); nothing else in image-tool imports it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.messages import ToolMessage
from langchain_core.messages.tool import tool_call

from ._tool.advice import describe_failure
from ._version import __version__
from ._wire.imagetypes import mime_type
from ._wire.redaction import REDACTED, scrub
from .errors import ConfigurationError
from .models import DEFAULT_MODEL, GeneratedImage, ImageGenerationResult
from .tool import ImageGenerationTool

if TYPE_CHECKING:
    from mcp.server import Server
    from mcp.types import CallToolResult, ContentBlock, ImageContent

MCP_MISSING = "The MCP server needs the mcp extra: pip install 'image-tool[mcp]'"


def create_server(tool: ImageGenerationTool) -> Server[Any]:
    """An MCP server with one tool, ``tool``, whose arguments are the tool's own (those its
    model takes, ``image_tool._tool.arguments``)."""
    _require_mcp()
    from mcp import types
    from mcp.server import Server
    from mcp.server.context import ServerRequestContext
    from mcp.shared.exceptions import MCPError

    # The low-level server publishes this schema as it is (defaults, enums, descriptions, and
    # any field added later); MCPServer would derive one from a signature.
    schema = tool.argument_model.model_json_schema()
    listing = types.Tool(name=tool.name, description=tool.description, input_schema=schema)

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[listing])

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        if params.name != tool.name:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {params.name}")
        # The tool validates the arguments itself, answering bad ones with advice for the model,
        # and turns every failure into an error message; this guard keeps even a failure of its
        # own from becoming the SDK's bare "Internal server error".
        secret = tool.client.api_key.get_secret_value()
        call = tool_call(name=tool.name, args=dict(params.arguments or {}), id=f"mcp_{uuid.uuid4().hex}")
        try:
            message = await tool.ainvoke(call)
            if not isinstance(message, ToolMessage):  # a ToolCall always gets a ToolMessage back
                raise TypeError(f"{tool.name} returned {type(message).__name__}, not a ToolMessage")
            return await _call_result(message, secret)
        except Exception as error:
            text = scrub(describe_failure(error), secret)
            return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)

    return Server("image-tool", version=__version__, on_list_tools=list_tools, on_call_tool=call_tool)


async def _call_result(message: ToolMessage, secret: str) -> CallToolResult:
    """The tool's text for the model, then each image it saved or received inline."""
    from mcp.types import CallToolResult, TextContent

    # The client already redacts the key from relay errors; this guards every other path.
    text = message.text.replace(secret, REDACTED) if secret else message.text
    content: list[ContentBlock] = [TextContent(type="text", text=text)]
    if message.status == "error":
        return CallToolResult(content=content, is_error=True)
    if not isinstance(message.artifact, ImageGenerationResult):
        return CallToolResult(content=content)
    for image in message.artifact.images:
        if (item := await _image_content(image)) is not None:
            content.append(item)
    # The result for programs: links, revised prompts, saved paths, usage (not the base64 again).
    result = message.artifact.model_dump(mode="json", exclude={"images": {"__all__": {"b64_json"}}})
    return CallToolResult(content=content, structured_content=result)


async def _image_content(image: GeneratedImage) -> ImageContent | None:
    """The image as MCP content: the saved file, else the inline base64; ``None`` for a bare link."""
    from mcp.types import ImageContent

    data = None
    if image.path is not None:
        try:
            data = await asyncio.to_thread(image.path.read_bytes)
        except OSError:
            data = None  # removed since: fall back to the inline copy or the link in the text
    if data is None and image.b64_json:
        try:
            data = base64.b64decode(image.b64_json, validate=True)
        except ValueError:
            return None  # the text still describes the image
    if data is None:
        return None
    return ImageContent(type="image", data=base64.b64encode(data).decode(), mime_type=mime_type(data[:16]))


def _require_mcp() -> None:
    try:
        import mcp  # noqa: F401
    except ImportError as error:
        raise ConfigurationError(MCP_MISSING) from error


async def _serve_stdio(server: Server[Any]) -> None:
    """Serve ``server`` on stdin/stdout until the client disconnects."""
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def main(argv: list[str] | None = None) -> int:
    """Run the MCP server on stdio, configured from the environment; 2 when it is not configured."""
    from ._cli.terms import extra_body_flag

    parser = argparse.ArgumentParser(
        description="Serve image-tool's generate_image over MCP (stdio). The relay comes from "
        "IMAGE_TOOL_API_KEY and IMAGE_TOOL_BASE_URL."
    )
    parser.add_argument("--save-dir", type=Path, metavar="DIR", help="save every image here")
    parser.add_argument(
        "--allow-private-downloads",
        action="store_true",
        help="download images from loopback and private addresses too (local relays)",
    )
    parser.add_argument("--stream", action="store_true", help="ask the relay for streamed answers")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"the image model (default {DEFAULT_MODEL})")
    parser.add_argument("--api", choices=("chat", "images"), help="the endpoint (default: the model's)")
    parser.add_argument(
        "--image-jobs", action="store_true", help="draw Images API generations as jobs, submitted then polled"
    )
    parser.add_argument(
        "--extra-body",
        type=extra_body_flag,
        default={},
        metavar="JSON",
        help="provider options sent with each request, a JSON object (see docs/models.md)",
    )
    args = parser.parse_args(argv)
    try:
        tool = ImageGenerationTool(
            save_dir=args.save_dir,
            allow_private_downloads=args.allow_private_downloads,
            stream=args.stream,
            model=args.model,
            api=args.api,
            image_jobs=args.image_jobs,
            extra_body=args.extra_body,
        )
        server = create_server(tool)
    except ConfigurationError as error:
        print(error, file=sys.stderr)
        return 2

    async def serve() -> None:
        try:
            await _serve_stdio(server)
        finally:
            await tool.client.aclose()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
