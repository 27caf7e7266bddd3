"""Cloud embedding services, declared as data: each one's engine name (``cloud:<name>``), the model
id and version it asks for, the size of its vectors, where its credentials come from, whether it
reads other languages, its status, and where its adapter lives (imported only when it is used).
``make_embedder`` is the only code that turns a service's name into an adapter.

A service's vectors are a vector set of the film, over the film's own frame times, so it is
searched, compared and evaluated like any model (``engines.cloud``); prices are in the price
table (``tagging/prices.json``: per 1 000 images and per 1 000 queries, with the date they were
read)."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

from tagging.embedders.base import Embedder

CLOUD = "cloud:"  # the engine names of embedding services: cloud:titan, cloud:azure, ...


@dataclass(frozen=True)
class EmbeddingService:
    """A cloud embedding service. ``credentials``: groups of environment variables, any group fully
    set meaning the service is configured; ``status``: GA, deprecated or retiring, with dates."""

    name: str  # the engine name, cloud:<short name>
    adapter: str  # "module:Class"
    provider: str
    model_id: str
    dim: int
    credentials: tuple[tuple[str, ...], ...]
    multilingual: bool
    status: str

    def embedder_class(self) -> type[Embedder]:
        module, _, name = self.adapter.partition(":")
        return getattr(importlib.import_module(module), name)

    def configured(self) -> bool:
        """Whether its credentials are set (boto3's chain also reads a profile or an instance role)."""
        return any(all(os.environ.get(v) for v in group) for group in self.credentials)


AWS_CREDENTIALS = (("AWS_ACCESS_KEY_ID",), ("AWS_PROFILE",))
BUILT_IN = (
    EmbeddingService(
        "cloud:titan",
        "tagging.embedders.bedrock:TitanEmbedder",
        "Amazon Bedrock",
        "amazon.titan-embed-image-v1",
        1024,
        AWS_CREDENTIALS,
        multilingual=False,
        status="GA",
    ),
    EmbeddingService(
        "cloud:nova",
        "tagging.embedders.bedrock:NovaEmbedder",
        "Amazon Bedrock",
        "amazon.nova-2-multimodal-embeddings-v1:0",
        1024,
        AWS_CREDENTIALS,
        multilingual=True,
        status="GA (launched 2025-10-28)",
    ),
    EmbeddingService(
        "cloud:marengo",
        "tagging.embedders.bedrock:MarengoEmbedder",
        "Amazon Bedrock (TwelveLabs)",
        "twelvelabs.marengo-embed-3-0-v1:0",
        512,
        AWS_CREDENTIALS,
        multilingual=True,
        status="GA (Marengo 2.7 reached end of life on 2026-11-30; its vectors are incompatible)",
    ),
    EmbeddingService(
        "cloud:gemini",
        "tagging.embedders.google:GeminiEmbedder",
        "Google (Gemini API or Vertex AI)",
        "gemini-embedding-2",
        1024,
        (("GEMINI_API_KEY",), ("GOOGLE_API_KEY",), ("GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_CLOUD_PROJECT")),
        multilingual=True,
        status="GA (gemini-embedding-2-preview was its preview)",
    ),
    EmbeddingService(
        "cloud:azure",
        "tagging.embedders.azure:AzureEmbedder",
        "Azure AI Vision",
        "multimodal embeddings 2023-04-15",
        1024,
        (("AZURE_VISION_ENDPOINT", "AZURE_VISION_KEY"),),
        multilingual=True,
        status="deprecated: retires 2028-09-25",
    ),
)


def embedding_services() -> dict[str, EmbeddingService]:
    """Every cloud embedding service by engine name."""
    return {s.name: s for s in BUILT_IN}


def embedding_service(name: str) -> EmbeddingService:
    """The service an engine name ``cloud:<name>`` names; ValueError naming them for any other."""
    try:
        return embedding_services()[name]
    except KeyError:
        raise ValueError(
            f"unknown cloud embedding service {name!r} (choose from {', '.join(embedding_services())})"
        ) from None


def make_embedder(name: str, **options) -> Embedder:
    """The adapter of ``name``; it reads its credentials the standard way and raises
    FatalTaggerError, one sentence, when they are missing."""
    return embedding_service(name).embedder_class()(**options)


__all__ = [
    "BUILT_IN",
    "CLOUD",
    "Embedder",
    "EmbeddingService",
    "embedding_service",
    "embedding_services",
    "make_embedder",
]
