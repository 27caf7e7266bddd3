"""Video in: decoding and sampling frames (``decode``), subtitles, browser-playable proxies,
downloads, the sources a run indexes, and the crops patch mode encodes."""
