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
from scipy.signal import lfilter


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
    """A less clustered archive: each film draws every frame from a wide mixture of ``components``
    content directions, plus wide per-frame spread and a bounded random walk (it wanders around
    the mixture, never away from it). Lists of the coarse quantiser overlap far more than with
    ``VideoLikeVectors``, so an index must probe many more of them for the same recall
    (``bench_ann.py`` prints how many)."""

    def __init__(
        self,
        dim: int = 512,
        clusters: int = 200,
        seed: int = 0,
        components: int = 16,
        spread: float = 0.8,
        walk: float = 0.4,
        memory: float = 100.0,
    ) -> None:
        super().__init__(dim=dim, clusters=clusters, seed=seed)
        self.components, self.spread, self.walk, self.memory = components, spread, walk, memory

    def film(self, frames: int) -> np.ndarray:
        rng, d = self.rng, self.dim
        parts = self.centres[rng.integers(len(self.centres), size=self.components)]
        which = rng.integers(self.components, size=frames)
        spread = rng.standard_normal((frames, d)).astype(np.float32) * (self.spread / np.sqrt(d))
        # the walk: an Ornstein-Uhlenbeck process (it forgets over ``memory`` frames, its norm stays
        # about ``walk``), so a film wanders around its mixture instead of away from it
        keep = 1.0 - 1.0 / self.memory
        steps = rng.standard_normal((frames, d)).astype(np.float32) * (self.walk * np.sqrt(1 - keep**2) / np.sqrt(d))
        steps[0] = rng.standard_normal(d).astype(np.float32) * (self.walk / np.sqrt(d))
        walk = lfilter([1.0], [1.0, -keep], steps, axis=0).astype(np.float32)  # walk[t] = keep * walk[t-1] + steps[t]
        return _unit(0.6 * parts[which] + spread + walk)
