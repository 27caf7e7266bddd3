"""CLIP versus tagging services: tagger adapters, tag search, side-by-side comparison, evaluation."""
