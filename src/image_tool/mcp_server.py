"""An MCP server that offers image-tool's ``generate_image`` to MCP clients: over stdio, or over
streamable HTTP to a team, each client with a token of its own (``image_tool._mcp``).

    IMAGE_TOOL_API_KEY=... IMAGE_TOOL_BASE_URL=... python -m image_tool.mcp_server --save-dir ./images

Needs the ``mcp`` extra (``pip install 'image-tool[mcp]'``); nothing else in image-tool imports it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import uuid
from typing import TYPE_CHECKING, Any

from langchain_core.messages import ToolMessage
from langchain_core.messages.tool import tool_call
from langchain_core.runnables import RunnableConfig

from ._io import tracing
from ._mcp.limits import Gate, LimitReachedError, Limits
from ._mcp.options import add_arguments
from ._mcp.tokens import ClientTokens, read_tokens
from ._tool.advice import describe_failure
from ._version import __version__
from ._wire.imagetypes import mime_type
from ._wire.redaction import REDACTED, scrub
from .errors import ConfigurationError
from .models import GeneratedImage, ImageGenerationResult
from .tool import USER_CONFIG_KEY, ImageGenerationTool

if TYPE_CHECKING:
    from mcp.server import Server
    from mcp.types import CallToolResult, ContentBlock, ImageContent

MCP_MISSING = "The MCP server needs the mcp extra: pip install 'image-tool[mcp]'"


def create_server(tool: ImageGenerationTool, gate: Gate | None = None) -> Server[Any]:
    """An MCP server with one tool, ``tool``, whose arguments are the tool's own (those its
    model takes, ``image_tool._tool.arguments``). Over HTTP each call is its client's (the
    token's name): the tool's budgets per user and its image ids are that client's, and ``gate``
    holds it to its calls at once and images per minute."""
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
        arguments = dict(params.arguments or {})
        call = tool_call(name=tool.name, args=arguments, id=f"mcp_{uuid.uuid4().hex}")
        client = _client_name()
        config: RunnableConfig = {"configurable": {USER_CONFIG_KEY: client}} if client else {}

        def limits() -> dict[str, Any] | None:
            return gate.report(client or "") if gate else None

        try:
            admitted = gate.admit(client or "", _images_asked(arguments)) if gate else None
        except LimitReachedError as error:
            return _text_result(str(error), is_error=True, limits=limits())
        try:
            with tracing.tool_call(tool.name, call["id"], client):  # the generation's parent span
                message = await tool.ainvoke(call, config)
            if not isinstance(message, ToolMessage):  # a ToolCall always gets a ToolMessage back
                raise TypeError(f"{tool.name} returned {type(message).__name__}, not a ToolMessage")
            if admitted is not None:  # a failed call drew nothing it could return
                drawn = message.artifact.images if isinstance(message.artifact, ImageGenerationResult) else []
                admitted.settle(len(drawn))
            return await _call_result(message, secret, limits())
        except Exception as error:
            return _text_result(scrub(describe_failure(error), secret), is_error=True)
        finally:
            if admitted is not None:
                admitted.leave()

    return Server("image-tool", version=__version__, on_list_tools=list_tools, on_call_tool=call_tool)


def _client_name() -> str | None:
    """The name of the token the request came with (HTTP); ``None`` on stdio."""
    from mcp.server.auth.middleware.auth_context import get_access_token

    token = get_access_token()
    return token.client_id if token is not None else None


def _images_asked(arguments: dict[str, Any]) -> int:
    """The images a call reserves against the per-minute limits (the tool checks ``n`` itself)."""
    n = arguments.get("n", 1)
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1


def _text_result(text: str, *, is_error: bool, limits: dict[str, Any] | None = None) -> CallToolResult:
    from mcp.types import CallToolResult, TextContent

    structured = {"limits": limits} if limits else None
    return CallToolResult(
        content=[TextContent(type="text", text=text)], is_error=is_error, structured_content=structured
    )


async def _call_result(message: ToolMessage, secret: str, limits: dict[str, Any] | None) -> CallToolResult:
    """The tool's text for the model, then each image it saved or received inline; over HTTP, what
    the client has used of its limits."""
    from mcp.types import CallToolResult, TextContent

    # The client already redacts the key from relay errors; this guards every other path.
    text = message.text.replace(secret, REDACTED) if secret else message.text
    content: list[ContentBlock] = [TextContent(type="text", text=text)]
    structured = {"limits": limits} if limits else None
    if message.status == "error":
        return CallToolResult(content=content, is_error=True, structured_content=structured)
    if not isinstance(message.artifact, ImageGenerationResult):
        return CallToolResult(content=content, structured_content=structured)
    for image in message.artifact.images:
        if (item := await _image_content(image)) is not None:
            content.append(item)
    # The result for programs: links, revised prompts, saved paths, usage (not the base64 again).
    result = message.artifact.model_dump(mode="json", exclude={"images": {"__all__": {"b64_json"}}})
    return CallToolResult(content=content, structured_content={**result, **(structured or {})})


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
    """Run the MCP server (stdio, or HTTP with ``--transport http``), configured from the flags and
    the environment; 2 when it is not configured."""
    parser = argparse.ArgumentParser(
        description="Serve image-tool's generate_image over MCP: stdio, or streamable HTTP for a team. "
        "The relay comes from IMAGE_TOOL_API_KEY and IMAGE_TOOL_BASE_URL."
    )
    add_arguments(parser)
    return serve(parser.parse_args(argv))


def serve(args: argparse.Namespace) -> int:
    """Serve with the flags of ``image_tool._mcp.options`` until the client leaves (stdio) or a
    SIGTERM or Ctrl-C (HTTP, after the calls in flight end)."""
    from ._mcp import http

    options = http.HttpOptions(
        host=args.host,
        port=args.port,
        allowed_hosts=args.allowed_host,
        allowed_origins=args.allowed_origin,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        shutdown_grace=args.shutdown_grace,
    )
    try:
        tool = ImageGenerationTool(
            save_dir=args.save_dir,
            allow_private_downloads=args.allow_private_downloads,
            stream=args.stream,
            model=args.model,
            api=args.api,
            image_jobs=args.image_jobs,
            extra_body=args.extra_body,
            price_per_image=args.price_per_image,
            max_images=args.max_images,
            max_cost=args.max_cost,
            max_images_per_user=args.client_max_images,
            max_cost_per_user=args.client_max_cost,
        )
        if args.transport == "stdio":
            server = create_server(tool)
        else:
            tokens = ClientTokens(read_tokens(args.tokens))
            http.check(options)
            per_client = Limits(args.client_calls_at_once, args.client_images_per_minute)
            server = create_server(tool, Gate(per_client, Limits(args.calls_at_once, args.images_per_minute)))
            app = http.http_app(server, tokens, options)
            sock = http.bind(options)
    except ConfigurationError as error:
        print(f"image-tool mcp: {error}", file=sys.stderr)
        return 2

    async def run() -> None:
        try:
            if args.transport == "stdio":
                await _serve_stdio(server)
            else:
                host, port = sock.getsockname()[:2]
                names = ", ".join(tokens.names)
                print(
                    f"image-tool mcp: serving {options.scheme}://{host}:{port}{http.PATH} to {names}",
                    file=sys.stderr,
                )
                await http.serve(app, sock, options)
        finally:
            await tool.client.aclose()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
