"""Frames to stored vectors: the plan of what to decode and encode for one file, run by this
process's decoder and encoder threads (Ray runs the same plan: ``clip_search.scale``)."""
