"""The film format on disk: the catalogue and a film seen through a model (``library``), its one
writer (``writer``), cross-process locks and atomic files."""
