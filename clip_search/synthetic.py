"""Synthetic vectors shaped like video, for the archive-index tests and benchmarks.

Real CLIP frame vectors of a film form shots: runs of near-identical vectors around a scene's
content, drifting slowly, with cuts to other content; across an archive, contents recur (many
scenes of ships, faces, rooms). So: ``clusters`` content centres; each film is a sequence of shots
(mean ``shot_frames`` long), each shot a centre plus its own offset plus a slow random walk.
Text queries sit apart from image vectors in CLIP space (the modality gap), so queries are a
centre plus noise plus one constant offset shared by all queries, normalised: a query distribution
other than the indexed one, as out-of-distribution ANN benchmarks use."""

from __future__ import annotations

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class VideoLikeVectors:
    """A reproducible generator of films' frame vectors and of out-of-distribution queries."""

    def __init__(self, dim: int = 512, clusters: int = 200, shot_frames: float = 8.0, seed: int = 0) -> None:
        self.dim, self.shot_frames = dim, shot_frames
        self.rng = np.random.default_rng(seed)
        self.centres = _unit(self.rng.standard_normal((clusters, dim)))
        self.gap = _unit(self.rng.standard_normal(dim)) * 0.8  # the modality gap: one offset for all queries

    def film(self, frames: int) -> np.ndarray:
        """(frames, dim) unit vectors: shots around recurring content, drifting slowly."""
        rng, d = self.rng, self.dim
        cuts = np.cumsum(rng.geometric(1 / self.shot_frames, size=frames))
        shot = np.searchsorted(cuts, np.arange(frames), side="right")
        n_shots = int(shot[-1]) + 1
        content = self.centres[rng.integers(len(self.centres), size=n_shots)]
        offset = rng.standard_normal((n_shots, d)).astype(np.float32) * (0.6 / np.sqrt(d))
        walk = np.cumsum(rng.standard_normal((frames, d)).astype(np.float32) * (0.05 / np.sqrt(d)), axis=0)
        starts = np.concatenate([[0], cuts[:-1]])[shot]  # the walk restarts at every cut
        drift = walk - walk[np.minimum(starts, frames - 1)]
        return _unit(content[shot] + offset[shot] + drift)

    def queries(self, n: int) -> np.ndarray:
        """(n, dim) unit query vectors from the shifted (text-like) distribution."""
        picks = self.centres[self.rng.integers(len(self.centres), size=n)]
        noise = self.rng.standard_normal((n, self.dim)).astype(np.float32) * (0.8 / np.sqrt(self.dim))
        return _unit(picks + noise + self.gap)


class LooseVectors(VideoLikeVectors):
    """A less clustered archive (wide Gaussian mixtures, a random walk inside each film): each film
    mixes a few broad content directions with much more spread than ``VideoLikeVectors``, so the
    coarse quantiser's lists overlap and an index needs more probes to find the exact top 10."""

    def film(self, frames: int) -> np.ndarray:
        rng, d = self.rng, self.dim
        mix = self.centres[rng.integers(len(self.centres), size=3)]
        which = rng.integers(3, size=frames)
        spread = rng.standard_normal((frames, d)).astype(np.float32) * (1.1 / np.sqrt(d))
        walk = np.cumsum(rng.standard_normal((frames, d)).astype(np.float32) * (0.08 / np.sqrt(d)), axis=0)
        return _unit(0.6 * mix[which] + spread + walk)
