"""Archive search: one FAISS index (IVF with PQ codes) over every film of a large library.

Each film owns one range of global ids (``offset .. offset + frames``), so a film filter is an id
selector and a hit's id says its film and frame. The index only proposes candidates: they are
re-scored exactly from the float32 vectors on disk (memory-mapped) before de-duplication and
moments, so hits carry exact cosines. Per-film timelines never use it (they score every frame).

Each model has its own index, in ``library/ann/<model-key>/`` (``index.faiss`` + ``meta.json``,
written atomically under a lock); ``model`` defaults to the library's default model. It records
which film versions it holds; one added, removed or re-indexed since makes it
stale, and a stale index is never read. ``update`` adds new films' vectors without retraining,
removes gone ones, and retrains from scratch once the library has outgrown what the coarse
quantiser was trained for (``RETRAIN_GROWTH``).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clip_search.errors import FrameSearchError
from clip_search.search.ranking import DEFAULT_GAP, LEADING, at, distinct_top
from clip_search.store.atomic import atomic_save_npy, atomic_write_json
from clip_search.store.library import Film, Library, model_key
from clip_search.store.locks import film_lock

ANN_MIN_FRAMES = 200_000  # libraries at least this large are searched through the index
# a film filter choosing at most this many frames is scored exactly: bench_ann measured 10 ms for
# 100 000 frames on 2 cores, less than the filtered index took at 10 M frames (13 ms, recall@10 0.93)
EXACT_MAX_FRAMES = 100_000
RETRAIN_GROWTH = 4.0  # retrain once the library holds this many times the frames it was trained on
POINTS_PER_CENTROID = 64  # training sample per coarse centroid (FAISS warns below 39)
PQ_BYTES = 64  # at most this many bytes per vector (two 4-bit PQ codes a byte): 1 M 512-d frames = 64 MB of codes
DEFAULT_NPROBE = 48
TARGET_RECALL = 0.98  # recall@10 against exact search that ``ann build`` tunes nprobe for
# calibration asks this much more of the queries it measures, so that new queries of the same kind
# reach the target too: about one standard error of recall@10 over 300 queries, the optimism of
# keeping the first setting that passes
CALIBRATION_MARGIN = 0.005
NPROBES = (8, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024, 2048)
QUERIES_FILE = "queries.npy"  # the lab's own query vectors, kept for every later calibration
TEXT_FILE = "scene_texts.npy"  # the model's vectors of the built-in scene descriptions (search.scenes), kept
OWN_QUERIES = 300  # at most this many of them are kept and measured (100 give recall@10 to about +-0.007)
CANDIDATES = 2048  # frames the index proposes per search, re-scored exactly (Searcher's k for top 10..32)
CANDIDATE_STEPS = (CANDIDATES, 2 * CANDIDATES, 4 * CANDIDATES)  # what calibration tries


SCALE_EXTRA = "pip install 'frame-search-lab[scale]'"


def faiss_module():
    """FAISS, or FrameSearchError saying how to install it (it comes with the [scale] extra)."""
    try:
        import faiss  # FAISS loads only for an archive index
    except ImportError:
        raise FrameSearchError(f"The archive index needs FAISS, which is not installed ({SCALE_EXTRA}).") from None
    return faiss


def nlist_for(frames: int) -> int:
    """Coarse centroids for a library of this size: about 1 per 1 000 frames, a power of two."""
    return int(2 ** round(math.log2(max(64, min(65536, frames / 1000)))))


@dataclass(frozen=True)
class AnnStatus:
    """What ``ann status`` prints: whether an index exists and can be used, and why not."""

    exists: bool
    fresh: bool
    frames: int
    films: int
    nlist: int
    trained_on: int
    reason: str
    calibration: dict | None = None  # what ``ann build`` measured (see ``_calibrate``)

    def describe(self) -> str:
        if not self.exists:
            return f"no archive index ({self.reason})"
        state = "fresh" if self.fresh else f"STALE: {self.reason} (run `python -m clip_search ann build`)"
        line = (
            f"archive index: {self.frames} frames of {self.films} films, IVF{self.nlist} with PQ codes, "
            f"trained on {self.trained_on} frames; {state}"
        )
        c = self.calibration
        if c:
            line += (
                f"; nprobe {c['nprobe']} measured at recall@10 {c['recall_library']:.3f} (frames: library vectors), "
                f"{c['recall_text_like']:.3f} (text-like blends)"
            )
            if "recall_text" in c:
                line += f" and {c['recall_text']:.3f} (text: {c['text_queries']} scene descriptions the model encoded)"
            else:
                line += " (text recall not measured: `ann build` encodes the scene descriptions when the model loads)"
            if "recall_own" in c:
                line += f" and {c['recall_own']:.3f} ({c['own_queries']} of your queries)"
            line += f", {c.get('candidates', CANDIDATES)} candidates, {c['latency_ms_p50']:.1f} ms per search (p50)"
            target = c.get("target", TARGET_RECALL)
            if min(v for k, v in c.items() if k.startswith("recall_")) < target:
                line += f"; BELOW the {target} target even at the widest setting"
        return line


def _film_key(f: Film) -> list:
    return [f.id, f.manifest.completed_at, f.manifest.frames, f.model, f.vector_set.completed_at]


def _model(library: Library, model: str | None) -> str:
    return model or library.default_model()


def _films_of(library: Library, films: list[Film] | None, model: str | None) -> tuple[str, list[Film]]:
    """The model an index is for (that of the films given, else ``model`` or the default) and its films."""
    model = films[0].model if films else _model(library, model)
    return model, library.films(model) if films is None else films


@dataclass(frozen=True)
class _Chosen:
    """The films a search is over, as the index sees them: whether they are a filter, and their id
    ranges in id order (film index, first id, end id)."""

    films: list[Film]
    count: int
    filtered: bool
    order: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    frames: int


class AnnIndex:
    """A loaded archive index and the film id ranges it holds."""

    def __init__(self, library: Library, index, meta: dict) -> None:
        self.library, self.index, self.meta = library, index, meta
        self.ranges = {f["id"]: (f["offset"], f["frames"]) for f in meta["films"]}

    @staticmethod
    def folder(library: Library, model: str | None = None) -> Path:
        """Where the index of ``model``'s vectors lives."""
        return library.root / "ann" / model_key(_model(library, model))

    # -- reading ---------------------------------------------------------------------------------

    @classmethod
    def _read_meta(cls, library: Library, model: str | None = None) -> tuple[dict | None, str | None]:
        """meta.json, checked as input from outside: (meta, None), or (None, what is wrong with it).
        Its index file must be a bare name inside ``ann/``: an edited one naming another path is
        never read, and never deleted when the index is replaced."""
        folder = cls.folder(library, model)
        path = folder / "meta.json"
        try:
            meta = json.loads(path.read_text())
        except FileNotFoundError:
            return None, None
        except (OSError, ValueError) as e:
            return None, f"{path} cannot be read ({type(e).__name__})"
        problem = _meta_problem(meta)
        if problem is None and not _inside(folder, meta["file"]):
            problem = f"its index file {meta['file']!r} is not a file of {folder}"
        return (None, f"{path} is damaged: {problem}") if problem else (meta, None)

    @classmethod
    def status(cls, library: Library, films: list[Film] | None = None, model: str | None = None) -> AnnStatus:
        """Whether ``model``'s index exists and holds exactly the library's films as they are now."""
        model, films = _films_of(library, films, model)
        return cls._status(library, *cls._read_meta(library, model), films, model)

    @classmethod
    def _status(
        cls, library: Library, meta: dict | None, problem: str | None, films: list[Film], model: str
    ) -> AnnStatus:
        if meta is None or not (cls.folder(library, model) / meta["file"]).is_file():
            total = sum(f.manifest.frames for f in films)
            why = problem or ("library under the threshold" if total < ANN_MIN_FRAMES else "not built yet")
            return AnnStatus(False, False, 0, 0, 0, 0, why)
        held = {f["id"]: f["key"] for f in meta["films"]}
        now = {f.id: _film_key(f) for f in films}
        added = [i for i in now if i not in held]
        removed = [i for i in held if i not in now]
        changed = [i for i in now if i in held and held[i] != now[i]]
        parts = []
        for what, ids in (("added", added), ("removed", removed), ("re-indexed", changed)):
            if ids:
                parts.append(f"{len(ids)} film(s) {what} since it was built ({', '.join(ids[:3])})")
        fresh = not parts
        frames = sum(f["frames"] for f in meta["films"])
        calibration = meta.get("calibration") if isinstance(meta.get("calibration"), dict) else None
        return AnnStatus(
            True, fresh, frames, len(held), meta["nlist"], meta["trained_on"], "; ".join(parts), calibration
        )

    @classmethod
    def load(cls, library: Library, films: list[Film] | None = None, model: str | None = None) -> AnnIndex | None:
        """``model``'s index, if it exists and is fresh for the library's films of that model; None
        otherwise (never stale)."""
        model, films = _films_of(library, films, model)
        meta, problem = cls._read_meta(library, model)  # read once: the freshness check and the load see one version
        if not cls._status(library, meta, problem, films, model).fresh:
            return None
        faiss = faiss_module()
        try:
            index = faiss.read_index(str(cls.folder(library, model) / meta["file"]))
        except RuntimeError:
            return None
        if index.ntotal != sum(f["frames"] for f in meta["films"]):  # ids that would name other frames
            return None
        return cls(library, index, meta)

    # -- writing ---------------------------------------------------------------------------------

    @classmethod
    def keep_current(cls, library: Library, model: str | None = None) -> AnnStatus | None:
        """After films were added: update ``model``'s index if there is one or the library now needs
        one. Returns the new status, or None when nothing had to be done."""
        status = cls.status(library, model=model)
        if status.fresh or (not status.exists and status.reason == "library under the threshold"):
            return None
        return cls.update(library, model=model)

    @classmethod
    def update(
        cls,
        library: Library,
        progress=None,
        rebuild: bool = False,
        model: str | None = None,
        queries: np.ndarray | None = None,
        texts: np.ndarray | None = None,
    ) -> AnnStatus:
        """Bring ``model``'s index up to date with the library: add new films without retraining,
        remove gone or re-indexed ones, retrain from scratch when outgrown (or ``rebuild``).

        ``queries``: (n, dim) vectors of the lab's own queries (its text queries, encoded by the
        model); ``texts``: the model's vectors of the built-in scene descriptions. Each is kept
        beside the index, and measured by this and every later calibration."""
        model = _model(library, model)
        with film_lock(library, f"_ann-index-{model_key(model)}"):
            films = library.films(model)
            total = sum(f.manifest.frames for f in films)
            meta, _ = cls._read_meta(library, model)  # a damaged one is rebuilt from the films
            previous = meta["file"] if meta else None
            dim = _dim(films)
            index = None
            if meta is not None and not rebuild and total <= RETRAIN_GROWTH * meta["trained_on"]:
                try:
                    index = faiss_module().read_index(str(cls.folder(library, model) / meta["file"]))
                except RuntimeError:
                    index = None
            if index is None or meta is None or meta.get("dim") != dim:
                index, meta = cls._train(films, total, dim)
            faiss = faiss_module()
            held = {f["id"]: f for f in meta["films"]}
            now = {f.id: f for f in films}
            for fid, entry in list(held.items()):  # gone or re-indexed: drop its id range
                if fid not in now or entry["key"] != _film_key(now[fid]):
                    index.remove_ids(faiss.IDSelectorRange(entry["offset"], entry["offset"] + entry["frames"]))
                    del held[fid]
            next_id = max((e["offset"] + e["frames"] for e in held.values()), default=0)
            todo = [f for f in films if f.id not in held]
            for n, film in enumerate(todo):
                _add(index, film, next_id)
                held[film.id] = {
                    "id": film.id,
                    "key": _film_key(film),
                    "offset": next_id,
                    "frames": film.manifest.frames,
                }
                next_id += film.manifest.frames
                if progress:
                    progress(n + 1, len(todo))
            meta["films"] = sorted(held.values(), key=lambda e: e["offset"])
            meta["updated_at"] = time.time()
            own = cls._kept(library, model, dim, queries, QUERIES_FILE)
            text = cls._kept(library, model, dim, texts, TEXT_FILE)
            meta["calibration"] = cls(library, index, meta).calibrate(films, own=own, text=text)
            cls._write(library, index, meta, previous, model)
        return cls.status(library, model=model)

    @classmethod
    def _kept(cls, library: Library, model: str, dim: int, queries: np.ndarray | None, name: str) -> np.ndarray | None:
        """Query vectors calibration measures: the ones given now (checked, kept as ``name``), else
        the ones kept before (None: none yet)."""
        path = cls.folder(library, model) / name
        if queries is None:
            try:
                kept = np.load(path)
            except (OSError, ValueError):
                return None
            return kept if kept.ndim == 2 and kept.shape[1] == dim else None
        q = np.asarray(queries, np.float32)
        if q.ndim != 2 or q.shape[1] != dim or len(q) == 0:
            raise FrameSearchError(f"Queries for calibration must be vectors of {dim} dimensions, not shape {q.shape}.")
        norms = np.linalg.norm(q, axis=1, keepdims=True)
        if not (np.all(np.isfinite(q)) and np.all(norms > 0)):
            raise FrameSearchError("Queries for calibration must be finite, non-zero vectors.")
        q = q[:OWN_QUERIES] / norms[:OWN_QUERIES]
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save_npy(path, q)
        return q

    @staticmethod
    def _train(films: list[Film], total: int, dim: int):
        faiss = faiss_module()
        nlist = nlist_for(total)
        if total < nlist * 39:  # FAISS needs ~39 training points per coarse list
            raise FrameSearchError(
                f"The library has {total} frames, too few for an archive index ({nlist * 39} at least); "
                "search scores every frame exactly, which is fast at this size."
            )
        # 4-bit codes scanned with SIMD lookups ("fast scan"), 4 dimensions per sub-quantiser: the
        # same bytes as 8-bit codes of 8 dimensions, and about half the cost of probing a list
        m = max(2, min(2 * PQ_BYTES, dim // 4))
        while m > 2 and (dim % m or m % 2):
            m -= 1
        index = faiss.index_factory(dim, f"IVF{nlist},PQ{m}x4fs", faiss.METRIC_INNER_PRODUCT)
        sample = _sample(films, min(total, max(nlist * POINTS_PER_CENTROID, 256 * 39)))
        try:
            index.train(sample)
        except RuntimeError as e:
            raise FrameSearchError(f"The archive index could not be trained ({_first_line(e)}).") from None
        meta = {"file": "index.faiss", "dim": dim, "nlist": nlist, "pq": m, "trained_on": total, "films": []}
        return index, meta

    @classmethod
    def _write(cls, library: Library, index, meta: dict, previous: str | None, model: str) -> None:
        """Write the new index file, switch meta.json to it, then delete the index it replaced (only
        ever a file of ``ann/<model>``). A failure (a full disk) leaves the old index in use: one sentence."""
        folder = cls.folder(library, model)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"index-{int(time.time() * 1000)}.faiss"
        tmp = folder / f".{name}.tmp"
        try:
            faiss_module().write_index(index, str(tmp))
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, folder / name)
            meta["file"] = name
            atomic_write_json(folder / "meta.json", meta)  # the switch: readers see old or new, never half
        except (OSError, RuntimeError) as e:
            tmp.unlink(missing_ok=True)
            (folder / name).unlink(missing_ok=True)
            raise FrameSearchError(
                f"The archive index could not be written in {folder} ({_first_line(e)}); the previous index, "
                "if any, is kept."
            ) from None
        if previous and previous != name and _inside(folder, previous):
            (folder / previous).unlink(missing_ok=True)

    # -- searching -------------------------------------------------------------------------------

    def candidates(
        self, q: np.ndarray, films: list[Film], k: int, nprobe: int = DEFAULT_NPROBE
    ) -> list[tuple[int, np.ndarray]]:
        """Up to ``k`` candidate frames for ``q`` among ``films``: [(film index, local frame rows)]."""
        faiss = faiss_module()
        bitmap = None  # FAISS keeps only a pointer to it: alive here, per search (searches run concurrently)
        params = faiss.SearchParametersIVF(nprobe=self.probes(films, nprobe))
        if self._filtered(films):
            params.sel, bitmap = self._selector(films)
        _, ids = self.index.search(np.ascontiguousarray(q[None], np.float32), k, params=params)
        del bitmap
        ids = np.sort(ids[0][ids[0] >= 0])
        chosen = self._chosen(films)  # each film's id range cut from the sorted ids, no mask per film
        cuts = zip(
            chosen.order.tolist(),
            chosen.starts.tolist(),
            np.searchsorted(ids, chosen.starts).tolist(),
            np.searchsorted(ids, chosen.ends).tolist(),
            strict=True,
        )
        return [(fi, ids[a:b] - lo) for fi, lo, a, b in cuts if b > a]

    def _filtered(self, films: list[Film]) -> bool:
        return self._chosen(films).filtered

    def _chosen(self, films: list[Film]) -> _Chosen:
        """What a search of ``films`` needs of them, remembered for the last list asked about (a
        search asks several times, and a Searcher always passes the same list)."""
        last = getattr(self, "_last_chosen", None)
        if last is None or last.films is not films or last.count != len(films):
            starts = np.array([self.ranges[f.id][0] for f in films], np.int64)
            sizes = np.array([f.manifest.frames for f in films], np.int64)
            order = np.argsort(starts, kind="stable")
            starts, ends = starts[order], starts[order] + sizes[order]
            filtered = {f.id for f in films} != set(self.ranges)
            last = _Chosen(films, len(films), filtered, order, starts, ends, int(sizes.sum()))
            self._last_chosen = last
        return last

    def probes(self, films: list[Film], nprobe: int) -> int:
        """The lists a search of ``films`` probes: a filter keeps only its share of each list, so as
        many more lists are probed to see as many of its frames (the top 10 of a few films lies in
        more lists), up to every list."""
        nlist = int(self.meta["nlist"])
        if not self._filtered(films):
            return min(nlist, nprobe)
        share = self._chosen(films).frames / max(1, self.index.ntotal)
        return min(nlist, math.ceil(nprobe / max(share, 1e-6)))

    def scans_all(self, films: list[Film], nprobe: int) -> bool:
        """Whether a filtered search would probe every list: then scoring its films exactly costs
        less than the index (it reads only their vectors) and is exact."""
        return self._filtered(films) and self.probes(films, nprobe) >= int(self.meta["nlist"])

    @property
    def nprobe(self) -> int:
        """The nprobe ``ann build`` measured to reach the target recall (the default before that)."""
        return self._calibrated("nprobe", DEFAULT_NPROBE)

    @property
    def candidates_k(self) -> int:
        """How many candidates a search re-scores exactly, as ``ann build`` measured it."""
        return self._calibrated("candidates", CANDIDATES)

    def _calibrated(self, key: str, default: int) -> int:
        c = self.meta.get("calibration")
        return int(c[key]) if isinstance(c, dict) and isinstance(c.get(key), int) and c[key] > 0 else default

    def rescored(
        self, q: np.ndarray, films: list[Film], k: int, nprobe: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Up to ``k`` candidates for ``q`` among ``films``, re-scored exactly from their vectors:
        (film index, frame, cosine) arrays, film by film in library order."""
        cands = self.candidates(q, films, k, nprobe)
        if not cands:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        return (
            np.concatenate([np.full(len(rows), fi) for fi, rows in cands]),
            np.concatenate([rows for _, rows in cands]),
            np.concatenate([films[fi].embeddings[rows] @ q for fi, rows in cands]),
        )

    def top_ids(
        self, q: np.ndarray, films: list[Film], top: int, k: int, nprobe: int, gap: float = DEFAULT_GAP
    ) -> list[tuple[int, int]]:
        """(film index, frame) of the ``top`` hits search finds (``k`` candidates from the index,
        re-scored exactly, de-duplicated by ``gap`` seconds), without their moments."""
        film_idx, local, score = self.rescored(q, films, k, nprobe)
        return [(fi, r) for fi, r, _ in distinct_top(films, score, at(film_idx, local), top, gap)]

    def calibrate(
        self,
        films: list[Film],
        queries: int = 100,
        seed: int = 0,
        own: np.ndarray | None = None,
        text: np.ndarray | None = None,
    ) -> dict:
        """Choose nprobe and the candidates re-scored by measuring recall@10 of search's hits
        (de-duplicated, as search returns them) against exact search's, on held-out vectors of the
        library itself and on text-like queries, until recall@10 >= TARGET_RECALL (+
        CALIBRATION_MARGIN) on both; of the settings that reach it, the one with the lowest
        measured median latency (finding and ranking the hits, before their moments).

        A text-like query is a blend of three frames of the library (a concept several scenes
        share, not one frame) moved along one shared direction, as CLIP's text vectors sit apart
        from its image vectors: its top 10 spreads over the index's lists as a text query's does.
        ``text``: the model's own vectors of written scene descriptions (``search.scenes``), what a
        user types; measured beside the others when ``ann build`` could encode them."""
        rng = np.random.default_rng(seed)
        picked = _sample(films, queries)
        shift = rng.normal(size=picked.shape[1]).astype(np.float32)
        shift /= np.linalg.norm(shift)
        blend = picked + np.roll(picked, 1, axis=0) + np.roll(picked, 2, axis=0)
        blend /= np.linalg.norm(blend, axis=1, keepdims=True)
        text_like = blend + 1.2 * shift
        text_like /= np.linalg.norm(text_like, axis=1, keepdims=True)
        sets = {"library": picked, "text_like": text_like}
        if text is not None:  # real text vectors: where CLIP's modality gap puts what users type
            sets["text"] = text
        if own is not None:  # the lab's own queries, when it gave them: the distribution that matters
            sets["own"] = own
        exact = {name: _exact_top(films, qs, 10) for name, qs in sets.items()}
        timed = next(q for q in (own, text, text_like) if q is not None)[:50]
        nlist = int(self.meta["nlist"])
        probes = [p for p in NPROBES if p < nlist] + [nlist]

        def recall_at(nprobe: int, k: int) -> dict[str, float]:
            return {
                name: float(
                    np.mean(
                        [self._recall(q, films, truth, k, nprobe) for q, truth in zip(qs, exact[name], strict=True)]
                    )
                )
                for name, qs in sets.items()
            }

        def latency_at(nprobe: int, k: int) -> float:
            times = []
            for q in timed:
                t0 = time.perf_counter()
                self.top_ids(q, films, 10, k, nprobe)
                times.append(time.perf_counter() - t0)
            return float(np.median(times))

        # For each number of candidates, the fewest probes that reach the target; a larger number
        # of candidates is only worth trying with fewer probes than the last one needed. The
        # fastest of those, measured, is chosen: what a probe costs against a candidate depends on
        # the codes, the library and the machine.
        reached: list[tuple[float, int, int, dict]] = []
        widest: tuple[int, int, dict] | None = None
        for k in CANDIDATE_STEPS:
            for nprobe in probes:
                if reached and nprobe >= reached[-1][1]:
                    break
                recall = recall_at(nprobe, k)
                if min(recall.values()) >= TARGET_RECALL + CALIBRATION_MARGIN:
                    reached.append((latency_at(nprobe, k), nprobe, k, recall))
                    break
                widest = (nprobe, k, recall)
        if reached:
            latency, nprobe, k, recall = min(reached, key=lambda r: r[0])
        else:  # even every list misses the target: the widest setting, and status says BELOW
            nprobe, k, recall = widest
            latency = latency_at(nprobe, k)
        return {
            "nprobe": nprobe,
            "candidates": k,
            "recall_library": round(recall["library"], 4),
            "recall_text_like": round(recall["text_like"], 4),
            "target": TARGET_RECALL,
            "latency_ms_p50": round(latency * 1000, 2),
            "queries": len(picked),
            **({"recall_text": round(recall["text"], 4), "text_queries": len(text)} if text is not None else {}),
            **({"recall_own": round(recall["own"], 4), "own_queries": len(own)} if own is not None else {}),
        }

    def _recall(self, q: np.ndarray, films: list[Film], truth: set, k: int, nprobe: int) -> float:
        return len(set(self.top_ids(q, films, 10, k, nprobe)) & truth) / max(1, len(truth))

    def _selector(self, films: list[Film]):
        """A FAISS id selector for ``films``' id ranges, and the bitmap it points into."""
        faiss = faiss_module()
        end = max(o + n for o, n in self.ranges.values())
        bitmap = np.zeros((end + 7) // 8, np.uint8)
        bits = np.zeros(end, bool)
        for f in films:
            o, n = self.ranges[f.id]
            bits[o : o + n] = True
        bitmap[:] = np.packbits(bits, bitorder="little")
        return faiss.IDSelectorBitmap(bitmap), bitmap


def _meta_problem(meta) -> str | None:
    """What is wrong with a parsed meta.json, or None when it has every field of the right type."""
    if not isinstance(meta, dict):
        return f"not an object but {type(meta).__name__}"
    for key, kind in (("file", str), ("dim", int), ("nlist", int), ("trained_on", int), ("films", list)):
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            return f"field {key!r} missing or not {kind.__name__}"
    for entry in meta["films"]:
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("id"), str)
            and isinstance(entry.get("key"), list)
            and all(isinstance(entry.get(k), int) and entry[k] >= 0 for k in ("offset", "frames"))
        ):
            return "a film entry lacks id, key, offset or frames"
    position = 0  # the films' id ranges tile the index from 0, each as long as its film
    for entry in sorted(meta["films"], key=lambda e: e["offset"]):
        if entry["offset"] != position:
            return f"film {entry['id']!r} starts at id {entry['offset']}, not {position} where the film before it ends"
        if len(entry["key"]) > 2 and entry["key"][2] != entry["frames"]:
            return f"film {entry['id']!r} has {entry['frames']} ids for its {entry['key'][2]} frames"
        position += entry["frames"]
    return None


def _inside(folder: Path, name: str) -> bool:
    """Whether ``name`` is a plain file name of ``folder`` (no separators, no way out of it)."""
    return bool(name) and Path(name).name == name and (folder / name).resolve().parent == folder.resolve()


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[-1][:200]


def _dim(films: list[Film]) -> int:
    """The vectors' size; one index holds one size, so films of several sizes are refused, named."""
    dims: dict[int, list[str]] = {}
    for f in films:
        dims.setdefault(f.manifest.dim, []).append(f.name)
    if len(dims) > 1:
        sizes = "; ".join(f"{d}: {', '.join(names[:3])}" for d, names in dims.items())
        raise FrameSearchError(f"The films have vectors of several sizes ({sizes}); one archive index holds one size.")
    return next(iter(dims), 0)


def _exact_top(
    films: list[Film], queries: np.ndarray, top: int, gap: float = DEFAULT_GAP, block: int = 65536
) -> list[set[tuple[int, int]]]:
    """The exact hits of each query over every frame of ``films``, as exact search returns them:
    (film index, frame) of the ``top`` best, de-duplicated by ``gap`` seconds. Frames are scored in
    blocks of every query at once; each query keeps its LEADING x ``top`` best frames to walk."""
    keep = top * LEADING
    n = len(queries)
    best_s = np.zeros((n, 0), np.float32)
    best_f = np.zeros((n, 0), np.int64)
    best_r = np.zeros((n, 0), np.int64)
    for fi, f in enumerate(films):
        emb = f.embeddings
        for lo in range(0, f.manifest.frames, block):
            scores = np.asarray(emb[lo : lo + block], np.float32) @ queries.T  # (rows, queries)
            k = min(keep, len(scores))
            rows = np.argpartition(-scores, k - 1, axis=0)[:k].T  # (queries, k)
            best_s = np.concatenate([best_s, np.take_along_axis(scores.T, rows, 1)], axis=1)
            best_f = np.concatenate([best_f, np.full(rows.shape, fi)], axis=1)
            best_r = np.concatenate([best_r, rows + lo], axis=1)
            if best_s.shape[1] > keep:
                cut = np.argpartition(-best_s, keep - 1, axis=1)[:, :keep]
                best_s, best_f, best_r = (np.take_along_axis(a, cut, 1) for a in (best_s, best_f, best_r))
    return [
        {(fi, r) for fi, r, _ in distinct_top(films, best_s[i], at(best_f[i], best_r[i]), top, gap)} for i in range(n)
    ]


def _sample(films: list[Film], n: int, seed: int = 0) -> np.ndarray:
    """``n`` vectors spread over all films in proportion to their length (streamed from disk)."""
    rng = np.random.default_rng(seed)
    total = sum(f.manifest.frames for f in films)
    parts = []
    for f in films:
        take = max(1, round(n * f.manifest.frames / total))
        rows = np.sort(rng.choice(f.manifest.frames, size=min(take, f.manifest.frames), replace=False))
        parts.append(np.asarray(f.embeddings[rows], np.float32))
    return np.ascontiguousarray(np.concatenate(parts))


def _add(index, film: Film, offset: int, block: int = 65536) -> None:
    emb = film.embeddings
    for lo in range(0, film.manifest.frames, block):
        x = np.ascontiguousarray(emb[lo : lo + block], np.float32)
        index.add_with_ids(x, np.arange(offset + lo, offset + lo + len(x), dtype=np.int64))
