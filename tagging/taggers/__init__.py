"""The tagging services, declared as data: each one's flags, and where its adapter lives (imported
only when it is used, so listing services costs no SDK import). ``make_tagger`` is the only code
that turns a service's name into a tagger. A lab's own tagger is added by installing a package
with a ``framesearch.taggers`` entry point: a ``Tagger`` class carrying the same flags as class
attributes (``service``, ``paid``, ``local``, ``credentials``, ``reads_text``)."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from functools import cache

from clip_search.plugins import plugins
from tagging.taggers.base import FatalTaggerError, Response, Tag, Tagger, TaggerError, all_tags


@dataclass(frozen=True)
class Service:
    """A tagging service: its name, where its ``Tagger`` is, and what it can do.

    ``local``: runs on this machine, free, no credentials (the one dialogue reads on-screen text from,
    and the one a button may run without asking); ``credentials``: groups of environment variables,
    any group fully set meaning the service is configured; ``reads_text``: its tags include on-screen
    text (OCR); ``note``: what a user should know before running it."""

    name: str
    adapter: str | type  # "module:Class", or the class itself (a plugin)
    paid: bool = False
    local: bool = False
    credentials: tuple[tuple[str, ...], ...] = ()
    reads_text: bool = False
    note: str = ""
    provider: str = ""  # who sells it (the README's services table)
    model: str = ""  # what it runs: API, model or version
    status: str = ""  # GA, deprecated or retiring, with dates

    def tagger_class(self) -> type:
        if isinstance(self.adapter, str):
            module, _, name = self.adapter.partition(":")
            return getattr(importlib.import_module(module), name)
        return self.adapter

    def configured(self) -> bool:
        """Whether its credentials are set (a local service always is)."""
        return self.local or any(all(os.environ.get(v) for v in group) for group in self.credentials)


BUILT_IN = (
    Service(
        "offline",
        "tagging.taggers.offline:OfflineTagger",
        local=True,
        reads_text=True,
        provider="this machine",
        model="Tesseract OCR, OpenCV Haar faces, shot scale, colours, brightness",
        status="runs here, free",
    ),
    Service(
        "azure",
        "tagging.taggers.azure:AzureTagger",
        paid=True,
        credentials=(("AZURE_VISION_ENDPOINT", "AZURE_VISION_KEY"),),
        reads_text=True,
        note="Azure Image Analysis 4.0 has no celebrity recognition; use Rekognition for celebrities.",
        provider="Azure AI Vision",
        model="Image Analysis 4.0 `analyze` (tags, caption, dense captions, objects, read)",
        status="deprecated: retires 2028-09-25",
    ),
    Service(
        "rekognition",
        "tagging.taggers.rekognition:RekognitionTagger",
        paid=True,
        credentials=(("AWS_ACCESS_KEY_ID",), ("AWS_PROFILE",)),
        reads_text=True,
        provider="AWS Rekognition",
        model="DetectLabels, RecognizeCelebrities, DetectText (2016-06-27 API)",
        status="GA (image APIs; Streaming Video and Bulk Image Analysis closed to new customers on 2026-04-30)",
    ),
)


def _from_plugin(name: str, cls: type) -> Service:
    return Service(
        name,
        cls,
        paid=bool(getattr(cls, "paid", False)),
        local=bool(getattr(cls, "local", False)),
        credentials=tuple(tuple(g) for g in getattr(cls, "credentials", ())),
        reads_text=bool(getattr(cls, "reads_text", False)),
        note=str(getattr(cls, "note", "")),
    )


@cache
def services() -> dict[str, Service]:
    """Every service by name: ours, then each installed plugin's (a plugin cannot replace ours)."""
    table = {s.name: s for s in BUILT_IN}
    for name, cls in plugins("framesearch.taggers").items():
        table.setdefault(name, _from_plugin(name, cls))
    return table


def service(name: str) -> Service:
    """The service called ``name``; ValueError naming the services for any other name."""
    try:
        return services()[name]
    except KeyError:
        raise ValueError(f"unknown tagging service {name!r} (choose from {', '.join(services())})") from None


def local_service() -> str:
    """The service that runs here for free (the offline tagger): what dialogue's on-screen text and
    the example evaluation use."""
    return next(s.name for s in services().values() if s.local)


def make_tagger(name: str, **options) -> Tagger:
    """The tagger for service ``name``; a cloud one reads its credentials the standard way and raises
    FatalTaggerError when they are missing."""
    return service(name).tagger_class()(**options)


def default_service() -> str:
    """The first paid service whose credentials are set, else the local one."""
    return next((s.name for s in services().values() if s.paid and s.configured()), local_service())


__all__ = [
    "FatalTaggerError",
    "Response",
    "Service",
    "Tag",
    "Tagger",
    "TaggerError",
    "all_tags",
    "default_service",
    "local_service",
    "make_tagger",
    "service",
    "services",
]
