"""Tagger adapters behind one small interface (see base.Tagger); ``make_tagger`` picks one by name."""

from __future__ import annotations

from tagging.taggers.base import FatalTaggerError, Response, Tag, Tagger, TaggerError, all_tags

SERVICES = ("offline", "azure", "rekognition")


def make_tagger(service: str, **options) -> Tagger:
    """The tagger for ``service`` (offline, azure, rekognition); cloud ones read their credentials
    the standard way and raise FatalTaggerError when they are missing."""
    if service == "offline":
        from tagging.taggers.offline import OfflineTagger

        return OfflineTagger(**options)
    if service == "azure":
        from tagging.taggers.azure import AzureTagger

        return AzureTagger(**options)
    if service == "rekognition":
        from tagging.taggers.rekognition import RekognitionTagger

        return RekognitionTagger(**options)
    raise ValueError(f"unknown tagging service {service!r} (choose from {', '.join(SERVICES)})")


def default_service() -> str:
    """'azure' or 'rekognition' when their credentials are set, else the offline tagger."""
    import os

    if os.environ.get("AZURE_VISION_ENDPOINT") and os.environ.get("AZURE_VISION_KEY"):
        return "azure"
    if os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE"):
        return "rekognition"
    return "offline"


__all__ = [
    "SERVICES",
    "FatalTaggerError",
    "Response",
    "Tag",
    "Tagger",
    "TaggerError",
    "all_tags",
    "default_service",
    "make_tagger",
]
