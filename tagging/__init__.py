"""Tagging: frames described by a service (Azure AI Vision, AWS Rekognition, the offline tagger),
the SQLite cache of every paid response, and search over the stored tags and subtitles.

Below the engines: it reads films from ``clip_search`` and knows nothing of engines or evaluation."""
