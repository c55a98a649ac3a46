"""Relay profiles: the relay software in front of an upstream, and what it does to its answers.

With a profile other than ``vendor``, FakeRelay's scripted replies are its upstream's answers, and
the profile sends them on as that software does. The comment beside each behaviour names the file
it comes from, in:

- one-api: songquanpeng/one-api at 8df4a26 (February 2025);
- new-api: QuantumNous/new-api, which forked one-api and keeps its layout (files read at several
  commits; the 429 rewrite is controller/relay.go at c9b8af7, commented out in later versions);
- LiteLLM: the litellm proxy 1.108, also run in front of FakeRelay to compare the wire bytes.

``gateway`` changes the upstream instead: an OpenRouter-style gateway that draws on the chat
endpoint (``_gateway.py``), its errors sent on as scripted.
"""

from __future__ import annotations

from typing import get_args

from ._answers import (
    Answer,
    GenerationRequest,
)
from ._gateway import gateway_answer, read_gateway_request
from ._go_relays import NewApi, OneApi
from ._litellm import LiteLLM
from ._profile import Profile
from ._replies import RelayProfile, Reply


def profile_named(name: RelayProfile) -> Profile:
    profiles: dict[str, type[Profile]] = {
        "vendor": Profile,
        "new-api": NewApi,
        "one-api": OneApi,
        "litellm": LiteLLM,
        "gateway": Gateway,
    }
    if name not in profiles:
        raise ValueError(
            f"unknown relay profile {name!r}: expected one of {', '.join(get_args(RelayProfile))}"
        )
    return profiles[name]()


class Gateway(Profile):
    """An OpenRouter-style gateway (OpenRouter, the Vercel AI Gateway): the chat endpoint draws
    when ``modalities`` holds ``"image"``, the images in ``message.images``; errors as the vendor's."""

    def read(self, body: bytes) -> GenerationRequest:
        return read_gateway_request(body)

    def upstream(self, request: GenerationRequest, origin: str, reply: Reply) -> Answer:
        return gateway_answer(request, origin, reply)
