"""The MCP server's flags, declared once: ``image-tool mcp`` and ``python -m image_tool.mcp_server``
both take them. Light to import: the command line builds its help from here without the SDK."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._cli.terms import extra_body_flag, number, whole_number
from ..models import DEFAULT_MODEL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    relay = parser.add_argument_group("the relay (its key and address come from the environment)")
    relay.add_argument("--save-dir", type=Path, metavar="DIR", help="save every image here")
    relay.add_argument(
        "--allow-private-downloads",
        action="store_true",
        help="download images from loopback and private addresses too (local relays)",
    )
    relay.add_argument("--stream", action="store_true", help="ask the relay for streamed answers")
    relay.add_argument("--model", default=DEFAULT_MODEL, help=f"the image model (default {DEFAULT_MODEL})")
    relay.add_argument("--api", choices=("chat", "images"), help="the endpoint (default: the model's)")
    relay.add_argument(
        "--image-jobs", action="store_true", help="draw Images API generations as jobs, submitted then polled"
    )
    relay.add_argument(
        "--extra-body",
        type=extra_body_flag,
        default={},
        metavar="JSON",
        help="provider options sent with each request, a JSON object (see docs/models.md)",
    )
    relay.add_argument(
        "--price-per-image", type=number("a price"), metavar="PRICE", help="what the relay charges an image"
    )

    http = parser.add_argument_group("serving a team over HTTP (docs/mcp.md)")
    http.add_argument(
        "--transport",
        choices=("stdio", "http"),
        default="stdio",
        help="stdio (default: one client, which starts the server) or streamable HTTP",
    )
    http.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    http.add_argument(
        "--port",
        type=whole_number(0, 65535),
        default=8000,
        help="the port (default 8000; 0 picks a free one)",
    )
    http.add_argument(
        "--tokens",
        type=Path,
        metavar="FILE",
        help="client name -> token, a JSON object (default: IMAGE_TOOL_MCP_TOKENS, the same JSON)",
    )
    http.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME:PORT",
        help="a Host header clients may send (repeatable; NAME:* for any port); loopback names always pass "
        "when bound to loopback",
    )
    http.add_argument(
        "--allowed-origin", action="append", default=[], metavar="ORIGIN", help="a browser Origin allowed"
    )
    http.add_argument("--tls-cert", type=Path, metavar="PEM", help="serve HTTPS with this certificate chain")
    http.add_argument("--tls-key", type=Path, metavar="PEM", help="and this private key")
    http.add_argument(
        "--shutdown-grace",
        type=number("a number of seconds"),
        default=600.0,
        metavar="SECONDS",
        help="on SIGTERM or Ctrl-C, how long calls in flight may finish (default 600)",
    )

    limits = parser.add_argument_group(
        "limits: for each client (by its token's name), and for the whole server"
    )
    for scope, prefix in (("each client", "--client-"), ("the server", "--")):
        limits.add_argument(
            f"{prefix}max-images",
            type=whole_number(0),
            metavar="N",
            help=f"images {scope} may generate in all",
        )
        limits.add_argument(
            f"{prefix}max-cost",
            type=number("an amount"),
            metavar="AMOUNT",
            help=f"what {scope} may spend in all (needs --price-per-image)",
        )
        limits.add_argument(
            f"{prefix}calls-at-once", type=whole_number(1), metavar="N", help=f"calls {scope} may run at once"
        )
        limits.add_argument(
            f"{prefix}images-per-minute",
            type=whole_number(1),
            metavar="N",
            help=f"images {scope} may draw in any minute",
        )
