"""Temporal queries, on top of any engine's one search path: "A, then B (then C …) within a window",
"only after / before a time", and "every occurrence" instead of the top k.

- ``then``: each step is searched like the query (same engine, same negative) and proposes its
  moments; a sequence is a moment of each step in one film, each peaking after the one before and
  starting at most ``within`` seconds after it ends. It is ranked by its weakest link (its lowest
  step score) and returned as one moment from the first step's start to the last step's end.
- ``after`` / ``before``: only frames inside the range are served (hits, strips and moments).
- ``every``: all moments whose best frame the engine can defend as a match: SigLIP's own sigmoid
  (probability at least 0.5); for any other score, a robust outlier rule over the film's frames
  (above the median by ``OUTLIER_MADS`` scaled median absolute deviations). No match: nothing, not
  the least bad k. The threshold used is said in one line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from clip_search.search.moments import nms
from clip_search.store.library import Film
from engines.result import MomentHit, Query, Result, as_query

DEFAULT_WITHIN = 30.0  # seconds a step may start after the previous one ends
OUTLIER_MADS = 3.5  # robust z above which a frame's score is a match (Iglewicz and Hoaglin's cut-off)
MAD_SCALE = 1.4826  # the MAD of a normal distribution, in standard deviations
STEP_MOMENTS = 50  # moments proposed per step when sequences are formed


@dataclass(frozen=True)
class When:
    """A query's temporal options (all optional)."""

    then: tuple[str, ...] = ()
    within: float = DEFAULT_WITHIN
    after: float | None = None
    before: float | None = None
    every: bool = False

    def __post_init__(self) -> None:
        if self.within < 0:
            raise ValueError(f"--within must be seconds >= 0, not {self.within}")
        if self.after is not None and self.before is not None and self.before <= self.after:
            raise ValueError(f"--before {self.before:g} s is not after --after {self.after:g} s")

    @property
    def moments_only(self) -> bool:
        """Whether the answer is moments (a sequence, or every occurrence), not frames."""
        return bool(self.then) or self.every


@dataclass
class Answer:
    """What a temporal query returns: the (range-restricted) result, its moments when the query asks
    for moments, and the lines that say how they were chosen."""

    result: Result
    moments: list[MomentHit] | None
    notes: list[str]


def search(engine, films: Sequence[Film], query: str | Query, when: When, top_k: int = 10, gap: float = 2.0) -> Answer:
    """Run ``query`` with ``when``'s options through ``engine`` (``Engine.run``, then the range)."""
    query = as_query(query)
    result = engine.run(films, query, top_k, gap).between(when.after, when.before)
    if when.then:
        steps = [result] + [
            engine.run(films, replace(query, text=text), top_k, gap).between(when.after, when.before)
            for text in when.then
        ]
        chains = sequences([s.moments(STEP_MOMENTS) for s in steps], when.within)
        found = chains if when.every else chains[:top_k]
        say = f"{len(chains)} sequence(s) of {len(steps)} steps, each starting within {when.within:g} s of the last"
        return Answer(result, found, [say])
    if when.every:
        found, note = occurrences(result)
        return Answer(result, found, [note])
    return Answer(result, None, [])


def sequences(steps: list[list[MomentHit]], within: float) -> list[MomentHit]:
    """Moments where each step follows the one before in the same film (peaks later, starts at most
    ``within`` s after its end), ranked by the weakest link; each returned from first start to last end."""
    chains = [[m] for m in steps[0]]
    for step in steps[1:]:
        chains = [
            [*chain, m]
            for chain in chains
            for m in step
            if m.film_id == chain[-1].film_id and m.peak > chain[-1].peak and m.start <= chain[-1].end + within
        ]
    out = [
        MomentHit(c[0].film, c[0].film_id, c[0].source, c[0].start, c[-1].end, min(m.score for m in c), c[0].peak)
        for c in chains
    ]
    out.sort(key=lambda m: (-m.score, m.film_id, m.start))
    return _distinct(out)


def _distinct(moments: list[MomentHit]) -> list[MomentHit]:
    """Best first, dropping a moment that overlaps a better one of its film by half or more."""
    by_film: dict[str, list[MomentHit]] = {}
    for m in moments:
        by_film.setdefault(m.film_id, []).append(m)
    kept = [m for film_moments in by_film.values() for m in nms(film_moments, score=lambda m: m.score)]
    kept.sort(key=lambda m: (-m.score, m.film_id, m.start))
    return kept


def threshold(film: Film, scores: np.ndarray, sigmoid: bool) -> tuple[float, str]:
    """The score a frame of ``film`` must reach to be a match, and how it was set."""
    m = film.manifest
    if sigmoid and m.scoring == "sigmoid" and m.logit_scale:
        return -(m.logit_bias or 0.0) / m.logit_scale, "the model's sigmoid >= 0.5"
    finite = scores[np.isfinite(scores)]
    median = float(np.median(finite)) if len(finite) else 0.0
    mad = float(np.median(np.abs(finite - median))) if len(finite) else 0.0
    return median + OUTLIER_MADS * MAD_SCALE * max(mad, 1e-9), f"median + {OUTLIER_MADS:g} MAD"


def occurrences(result: Result) -> tuple[list[MomentHit], str]:
    """Every moment whose best frame reaches its film's match threshold, best first, and one line
    naming the rule and each film's threshold."""
    sigmoid = result.engine.model_scores  # a model's own similarity has its own probability
    found, said, rule = [], [], f"median + {OUTLIER_MADS:g} MAD"
    for film in result.films:
        scores = result.scores(film)
        cut, rule = threshold(film, scores, sigmoid)
        said.append(f"{film.name} {cut:.3f}")
        found += [
            MomentHit.of(film, p) for p in result.engine.proposals(film, scores, result.query) if p.peak_score >= cut
        ]
    found.sort(key=lambda m: (-m.score, m.film_id, m.start))
    note = f"every occurrence: {len(found)} moment(s) whose best frame passes {rule} (thresholds: {', '.join(said)})"
    return found, note
