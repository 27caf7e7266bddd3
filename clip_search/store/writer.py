"""The one writer of the film format: a per-film lock, staged chunks, merge, verify, publish.

Every way a film or a model's vectors enter a library (indexing, adding a model to an indexed
film, the Ray indexer, imports of vectors made elsewhere, the format-1 migration) goes through
:class:`StagedFilm` or :func:`migrate_film`, so the rules live in one place:

- one writer per film, across processes: ``film_lock`` (``filelock``) guards staging and publish;
  a second process waits, or is told the film is being indexed by another process;
- chunks are written atomically into ``staging/<id>-<key>/parts`` (the resume granularity), each
  with strictly increasing times;
- ``publish`` merges the chunks, verifies the result against its manifest (``check_film``), and
  only then makes it the live film in one rename, so no partial or inconsistent film is ever seen;
- a model added to a live film is staged the same way (its chunks must carry exactly the film's
  frame times), verified against the film, and renamed into ``vectors/`` one set at a time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import zipfile
import zlib
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from clip_search.errors import FrameSearchError
from clip_search.store.atomic import atomic_savez, atomic_write_json
from clip_search.store.library import (
    CLIPS,
    DamagedFilm,
    Film,
    Library,
    Manifest,
    VectorSet,
    check_film,
    check_set,
    model_key,
)
from clip_search.store.locks import FilmBusy, film_lock


class StagedFilm:
    """A film, or new vector sets of a live film, being written under the film's lock: chunks in
    staging, then one verified publish.

    ``sets`` are the models whose vectors each chunk carries, in order. With ``film`` (a live
    film), only those sets are written: chunks carry the film's own frame times and no thumbnails,
    and ``publish`` renames each verified set into the film. Create it inside ``film_lock``. A
    staging folder left by an interrupted run with the same key is resumed; one with another key
    (other settings, older file) can never be resumed and is removed."""

    def __init__(
        self,
        library: Library,
        manifest: Manifest,
        sets: Sequence[VectorSet],
        segmented: bool = False,
        film: Film | None = None,
    ) -> None:
        if not sets:
            raise ValueError("a staged film needs at least one vector set")
        self.library = library
        self.manifest = manifest
        self.sets = list(sets)
        self.film = film
        models = hashlib.sha1("\n".join(v.model for v in self.sets).encode()).hexdigest()[:8]
        self.dir = library.staging_dir / f"{manifest.id}-{manifest.key_hash()}-{models}{'-v' if film else ''}"
        self.parts = self.dir / "parts"
        self.segmented = segmented  # whole segments written in any order (the Ray indexer), not a sequence
        self._drop_stale()
        self.parts.mkdir(parents=True, exist_ok=True)
        for other in self.parts.glob("part-*.npz" if segmented else "seg-*.npz"):  # the other layout's leftovers
            other.unlink()
        previous = self.dir / "manifest.json"
        if previous.is_file():
            try:
                manifest.started_at = Manifest.load(previous).started_at
            except DamagedFilm:
                pass
        atomic_write_json(previous, manifest.film_part().to_dict())
        self.frames, self.last_time = self._summary()

    def _drop_stale(self) -> None:
        if not self.library.staging_dir.is_dir():
            return
        film_id = self.manifest.id
        for d in self.library.staging_dir.glob(f"{film_id}-*"):
            if d != self.dir and re.fullmatch(r"[0-9a-f]{10}(-[0-9a-f]{8}(-v)?)?", d.name[len(film_id) + 1 :]):
                if d.name.endswith("-v") != bool(self.film):
                    continue  # a film being written and a model being added are different work
                shutil.rmtree(d, ignore_errors=True)

    def _paths(self) -> list[Path]:
        return sorted(self.parts.glob("seg-*.npz" if self.segmented else "part-*.npz"))

    def segments_done(self) -> set[int]:
        """Segments already written whole (an interrupted archive run resumes with the others; a torn
        one is dropped and made again)."""
        done = set()
        for p in self.parts.glob("seg-*.npz"):
            if _chunk_times(p, len(self.sets)) is None:
                p.unlink(missing_ok=True)
            else:
                done.add(int(p.stem.split("-")[1]))
        return done

    def write_segment(
        self, k: int, embeddings: np.ndarray | Sequence[np.ndarray], times: Sequence[float], thumbs: Sequence[bytes]
    ) -> None:
        """Write segment ``k`` whole and atomically (frames in time order); publish checks the joins."""
        order = np.argsort(np.asarray(times, np.float64), kind="stable")
        self._write(
            self.parts / f"seg-{k:06d}.npz",
            [np.asarray(e, np.float32)[order] for e in self._per_set(embeddings)],
            np.asarray(times, np.float64)[order],
            [thumbs[i] for i in order] if thumbs else [],
            None,
        )

    def _per_set(self, arrays) -> list[np.ndarray]:
        arrays = [arrays] if isinstance(arrays, np.ndarray) else list(arrays)
        if len(arrays) != len(self.sets):
            raise ValueError(f"a chunk needs vectors of each of its {len(self.sets)} models")
        return arrays

    def _summary(self) -> tuple[int, float | None]:
        """(frames stored, time of the last stored frame); a damaged chunk and all after it are dropped."""
        n, last = 0, None
        for i, p in enumerate(paths := self._paths()):
            t = _chunk_times(p, len(self.sets))
            if t is None:  # torn (a filesystem that did not honour the rename): encoded again
                for bad in paths[i:]:
                    bad.unlink(missing_ok=True)
                break
            n += len(t)
            if len(t):
                last = float(t[-1])
        return n, last

    def write_chunk(
        self,
        embeddings: np.ndarray | Sequence[np.ndarray],
        times: Sequence[float],
        thumbs: Sequence[bytes],
        patches: np.ndarray | Sequence[np.ndarray] | None = None,
        clips: Sequence | None = None,
    ) -> None:
        """Append one chunk atomically: per model, one vector per frame (a single array for one
        model), and per video model its clips (``ClipRows``: the chunk's frames' clips; None for an
        image model). Times must continue strictly after those already stored; when adding models
        to a live film they must be exactly the film's next frame times."""
        times = np.asarray(times, np.float64)
        if not len(times):
            return
        if np.any(np.diff(times) <= 0) or (self.last_time is not None and times[0] <= self.last_time):
            raise ValueError("chunk times must strictly increase after the frames already stored")
        embeddings = self._per_set(embeddings)
        if any(len(e) != len(times) for e in embeddings) or (self.film is None and len(thumbs) != len(times)):
            raise ValueError("a chunk needs one vector, time and thumbnail per frame")
        if self.film is not None:
            expected = self.film.times[self.frames : self.frames + len(times)]
            if len(expected) != len(times) or not np.allclose(expected, times, rtol=0, atol=1e-6):
                raise ValueError(f"{self.film.name}: the frames decoded again are not the film's own frames")
        patches = None if patches is None else self._per_set(patches)
        clips = [None] * len(self.sets) if clips is None else list(clips)
        for vs, rows in zip(self.sets, clips, strict=True):
            if (vs.clip_frames > 1) != (rows is not None) or (rows is not None and len(rows.clip_of) != len(times)):
                raise ValueError(f"{vs.model}: a chunk needs the clips of a video model's frames, and only of them")
        self._write(self.parts / f"part-{len(self._paths()):06d}.npz", embeddings, times, thumbs, patches, clips)
        self.frames += len(times)
        self.last_time = float(times[-1])

    def _write(
        self, target: Path, embeddings: list, times: np.ndarray, thumbs, patches: list | None, clips: list | None = None
    ) -> None:
        if len(times) > 1 and np.any(np.diff(times) <= 0):
            raise ValueError("chunk times must strictly increase")
        tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp.npz")
        arrays = {
            "times": times,
            "thumbs": np.frombuffer(b"".join(thumbs), np.uint8),
            "thumb_lens": np.asarray([len(t) for t in thumbs], np.int64),
        }
        for i, e in enumerate(embeddings):
            arrays[f"embeddings_{i}"] = np.asarray(e, np.float32)
        for i, p in enumerate(patches or []):
            arrays[f"patch_embeddings_{i}"] = np.asarray(p, np.float32)
        for i, rows in enumerate(clips or []):
            if rows is not None:
                arrays[f"segments_{i}"] = rows.segments
                arrays[f"frame_times_{i}"] = rows.frame_times
                arrays[f"clip_of_{i}"] = rows.clip_of
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)

    def _set_dir(self, vs: VectorSet) -> Path:
        return self.dir / "vectors" / model_key(vs.model)

    def _merge(self, patches_per_frame: int) -> np.ndarray:
        """Concatenate all chunks into the final arrays, streaming (never all in RAM); the times."""
        paths = self._paths()
        sizes = []
        for p in paths:
            with np.load(p) as z:
                sizes.append(len(z["times"]))
        n = sum(sizes)
        embs, pems = [], []
        for vs in self.sets:
            d = self._set_dir(vs)
            d.mkdir(parents=True, exist_ok=True)
            embs.append(_new_npy(d / "embeddings.npy", (n, vs.dim)))
            if patches_per_frame:
                pems.append(_new_npy(d / "patch_embeddings.npy", (n * patches_per_frame, vs.dim)))
        times = np.empty(n, np.float64)
        offsets = np.zeros(n + 1, np.int64)
        clips: dict[int, list[list[np.ndarray]]] = {
            i: [[], [], []] for i, v in enumerate(self.sets) if v.clip_frames > 1
        }
        pos = 0
        with open(self.dir / "thumbs.bin", "wb") if self.film is None else _nowhere() as thumbs:
            for p, k in zip(paths, sizes, strict=True):
                with np.load(p) as z:
                    for i, emb in enumerate(embs):
                        emb[pos : pos + k] = z[f"embeddings_{i}"]
                    for i, pem in enumerate(pems):
                        pem[pos * patches_per_frame : (pos + k) * patches_per_frame] = z[f"patch_embeddings_{i}"]
                    times[pos : pos + k] = z["times"]
                    for i, (segments, frame_times, clip_of) in clips.items():  # a chunk's clips are its own
                        clip_of.append(z[f"clip_of_{i}"] + sum(len(s) for s in segments))
                        segments.append(z[f"segments_{i}"])
                        frame_times.append(z[f"frame_times_{i}"])
                    if self.film is None:
                        offsets[pos + 1 : pos + k + 1] = offsets[pos] + np.cumsum(z["thumb_lens"])
                        thumbs.write(z["thumbs"].tobytes())
                pos += k
            if self.film is None:
                thumbs.flush()
                os.fsync(thumbs.fileno())
        for arr in embs + pems:
            arr.flush()
        del embs, pems
        for i, (segments, frame_times, clip_of) in clips.items():
            f = self.sets[i].clip_frames
            atomic_savez(
                self._set_dir(self.sets[i]) / CLIPS,
                {
                    "segments": np.concatenate(segments) if segments else np.zeros((0, 2)),
                    "frame_times": np.concatenate(frame_times) if frame_times else np.zeros((0, f)),
                    "clip_of": np.concatenate(clip_of) if clip_of else np.zeros(0, np.int64),
                },
            )
        if self.film is None:
            np.save(self.dir / "times.npy", times)
            np.save(self.dir / "thumb_offsets.npy", offsets)
        return times

    def publish(
        self,
        dialogue=None,
        indexing_seconds: float | None = None,
        model_seconds: Sequence[float] | None = None,
    ) -> Film:
        """Merge, write the manifests, verify everything against them, then swap it in atomically.

        ``model_seconds``: each model's own encoding time (its time per frame and its share of the
        run's wall time ``indexing_seconds``). Raises DamagedFilm (and removes the staging folder)
        if the merged result is inconsistent."""
        m = self.manifest
        if self.film is None and dialogue is not None:
            atomic_write_json(self.dir / "dialogue.json", dialogue.to_dict())
            m.dialogue = {"origin": dialogue.origin, "cues": len(dialogue.cues), "warning": dialogue.warning}
        times = self._merge(m.patches_per_frame)
        n = len(times)
        now = time.time()
        share = model_seconds if model_seconds and sum(model_seconds) > 0 else [1.0] * len(self.sets)
        for vs, own in zip(self.sets, share, strict=True):
            vs.frames, vs.completed_at = n, now
            if indexing_seconds is not None:
                vs.indexing_seconds = round(indexing_seconds * own / sum(share), 3)
            if model_seconds and n:
                vs.seconds_per_frame = own / n
            atomic_write_json(self._set_dir(vs) / "vectors.json", vs.to_dict())
        if self.film is not None:
            return self._publish_sets(times)
        m.frames = n
        if m.frames and times[-1] >= m.duration:  # a raw stream's header has no duration, and joined
            # MPEG-TS files report their first part's: the last frame's end
            m.duration = float(times[-1] + (times[-1] - times[-2] if len(times) > 1 else 1.0))
        m.status = "complete"
        m.completed_at = now
        m.indexing_seconds = indexing_seconds
        atomic_write_json(self.dir / "manifest.json", m.film_part().to_dict())
        try:
            check_film(self.dir)
            for vs in self.sets:
                check_set(self._set_dir(vs), vs, m.frames, m.patches_per_frame)
        except DamagedFilm as e:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise DamagedFilm(f"{m.name}: the index came out inconsistent and was not published ({e})") from None
        shutil.rmtree(self.parts, ignore_errors=True)
        lib = self.library
        lib.films_dir.mkdir(parents=True, exist_ok=True)
        live = lib.film_dir(m.id)
        old = live.with_name(live.name + ".old")
        if live.exists():
            os.replace(live, old)
        os.replace(self.dir, live)
        shutil.rmtree(old, ignore_errors=True)
        return Film(live, model=self.sets[0].model)

    def _publish_sets(self, times: np.ndarray) -> Film:
        """Verify each new set against the live film, then rename it into the film's vectors/."""
        film, n = self.film, len(times)
        try:
            if n != film.manifest.frames or not np.allclose(times, film.times, rtol=0, atol=1e-6):
                raise DamagedFilm(f"{n} frames were encoded at other times than the film's {film.manifest.frames}")
            for vs in self.sets:
                check_set(self._set_dir(vs), vs, n, film.manifest.patches_per_frame)
        except DamagedFilm as e:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise DamagedFilm(f"{film.name}: the new vectors came out inconsistent and were not added ({e})") from None
        root = film.dir / "vectors"
        root.mkdir(exist_ok=True)
        for vs in self.sets:
            live = root / model_key(vs.model)
            old = root / f".{live.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            if live.exists():
                os.replace(live, old)
            os.replace(self._set_dir(vs), live)
            shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        return Film(film.dir, model=self.sets[0].model)


def _new_npy(path: Path, shape: tuple[int, int]) -> np.ndarray:
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)


@contextmanager
def _nowhere():
    yield None


def migrate_film(film_dir: Path) -> int:
    """Move one format-1 film's vectors into its model's set, in place, without re-encoding (call
    under the film's lock). Returns 1 when it migrated the film, 0 when there was nothing to do.

    Three atomic steps: the vector files are hard-linked into a set folder renamed into
    ``vectors/``; the manifest is replaced by the format-2 one; the old names are removed. Until
    the second step the format-1 layout is whole."""
    m = Manifest.load(film_dir / "manifest.json")
    old_names = ("embeddings.npy", "patch_embeddings.npy")
    if m.format_version >= 2:
        for name in old_names:  # an interrupted migration's last step
            (film_dir / name).unlink(missing_ok=True)
        return 0
    vs = m.vector_set()
    root = film_dir / "vectors"
    target = root / model_key(m.model)
    if not target.is_dir():
        tmp = root / f".{target.name}.migrating"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name in old_names:
            if (film_dir / name).exists():
                try:
                    os.link(film_dir / name, tmp / name)
                except OSError:  # a filesystem without hard links: a copy
                    shutil.copy2(film_dir / name, tmp / name)
        atomic_write_json(tmp / "vectors.json", vs.to_dict())
        os.replace(tmp, target)
    check_set(target, vs, m.frames, m.patches_per_frame)
    new = m.film_part()
    new.format_version = 2
    atomic_write_json(film_dir / "manifest.json", new.to_dict())
    for name in old_names:
        (film_dir / name).unlink(missing_ok=True)
    return 1


def _chunk_times(path: Path, sets: int = 1) -> np.ndarray | None:
    """A staged chunk's times when every array of it reads back whole, else None (torn or junk)."""
    try:
        with np.load(path) as z:
            arrays = {k: np.asarray(z[k]) for k in z.files}
        times = arrays["times"]
        if any(len(arrays[f"embeddings_{i}"]) != len(times) for i in range(sets)):
            return None
        if len(arrays["thumb_lens"]) not in (0, len(times)):
            return None
        return times
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):
        return None


def import_vectors(
    library: Library,
    manifest: Manifest,
    embeddings: np.ndarray,
    times: np.ndarray,
    thumbnails: Sequence[bytes] | None = None,
    wait: float | None = None,
) -> Film:
    """Store vectors made elsewhere (``import``, benchmarks, tests) as a complete film, through the
    same lock, verification and publish as indexing. Vectors not of unit length are L2-normalised.

    Everything is checked first, one sentence each: real numbers only (no strings, no complex
    numbers), finite, N x D with N strictly increasing times, D the size of the library's other
    films of the same model. An import never replaces a film: an id already in the library (the
    same name, or one that slugs alike) is refused."""
    for what, arr in (("embeddings", embeddings), ("times", times)):
        kind = np.asarray(arr).dtype.kind
        if kind not in "fiu":
            raise FrameSearchError(f"{manifest.name}: {what} must be real numbers, not {np.asarray(arr).dtype}")
    emb = np.asarray(embeddings, np.float32)
    times = np.asarray(times, np.float64)
    if emb.ndim != 2 or emb.shape[0] != len(times) or not len(times):
        raise FrameSearchError(f"{manifest.name}: need N x D embeddings and N times (got {emb.shape}, {times.shape})")
    if not np.all(np.isfinite(emb)) or not np.all(np.isfinite(times)):
        raise FrameSearchError(f"{manifest.name}: embeddings and times must be finite numbers")
    if np.any(np.diff(times) <= 0):
        raise FrameSearchError(f"{manifest.name}: times must strictly increase")
    norms = np.linalg.norm(emb, axis=1)
    if np.any(norms == 0):
        raise FrameSearchError(f"{manifest.name}: some embeddings are all zeros")
    off = np.abs(norms - 1) > 1e-5  # unit vectors stay bit-identical: export -> import round-trips exactly
    if np.any(off):
        emb = emb.copy()
        emb[off] /= norms[off, None]
    same_model = {f.manifest.dim for f in library.films(manifest.model)}
    if same_model and int(emb.shape[1]) not in same_model:
        raise FrameSearchError(
            f"{manifest.name}: vectors of {emb.shape[1]} dimensions, but the library's {manifest.model} films have "
            f"{', '.join(map(str, sorted(same_model)))}; import them with the model that made them (--model)."
        )
    thumbs = list(thumbnails) if thumbnails is not None else [b""] * len(emb)
    manifest.dim = int(emb.shape[1])
    manifest.duration = manifest.duration or float(times[-1] + 1.0)
    with film_lock(library, manifest.id, wait):
        if library.film_dir(manifest.id).is_dir():
            held = library.get(manifest.id)
            named = f" ({held.name})" if held and held.name != manifest.name else ""
            raise FrameSearchError(
                f"{manifest.name}: the library already has a film with id {manifest.id}{named}; nothing was "
                "imported. Choose another name (an import never replaces a film)."
            )
        vs = VectorSet(
            manifest.model, manifest.dim, manifest.logit_scale, manifest.logit_bias, manifest.scoring, manifest.device
        )
        staged = StagedFilm(library, manifest, [vs])
        for p in staged._paths():  # an import replaces any earlier partial import wholesale
            p.unlink()
        staged.frames, staged.last_time = 0, None
        step = 65536
        for lo in range(0, len(emb), step):
            staged.write_chunk(emb[lo : lo + step], times[lo : lo + step], thumbs[lo : lo + step])
        return staged.publish()


def open_library(root: str | os.PathLike, model: str | None = None) -> Library:
    """The library at ``root``, ready for use: an interrupted swap repaired, format-1 films
    migrated (each under its film's lock; a busy or read-only one is left as it is and still read).
    ``model``: the model the user chose (see ``Library``)."""
    library = Library(root, model)
    recover(library)
    migrate(library)
    return library


def recover(library: Library) -> None:
    """A crash between the two renames of a swap leaves the previous index as <id>.old.

    Repaired only under the film's lock, so a swap in progress in another process is left alone."""
    if not library.films_dir.is_dir():
        return
    for old in library.films_dir.glob("*.old"):
        live = old.with_suffix("")
        try:
            with film_lock(library, live.name, wait=0):
                if live.exists():
                    shutil.rmtree(old, ignore_errors=True)
                elif old.exists():
                    os.replace(old, live)
        except (FilmBusy, OSError):
            continue


def migrate(library: Library) -> int:
    """Move format-1 films (one model's vectors at the top level) to vector sets, in place, without
    re-encoding; returns how many were migrated (see :func:`migrate_film`). A film busy in another
    process, or a read-only library, is left as it is: format 1 is still read."""
    if not library.films_dir.is_dir():
        return 0
    done = 0
    for d in library.films_dir.iterdir():
        if not d.is_dir() or d.name.endswith(".old"):
            continue
        try:
            data = json.loads((d / "manifest.json").read_text())
            stale = data.get("format_version", 1) < 2 or (d / "embeddings.npy").exists()
            if not stale or data.get("status") != "complete":
                continue
            with film_lock(library, d.name, wait=0):
                done += migrate_film(d)
        except (FilmBusy, OSError, ValueError, AttributeError, DamagedFilm):
            continue
    return done


def add_source(library: Library, film: Film, path: str | os.PathLike, locked: bool = False) -> Film:
    """Record another path to ``film``'s content (a copy, or the same file reached another way) in its
    manifest; returns the film as it now is. Nothing is encoded: a film is its content. ``locked``:
    the caller holds the film's lock already."""
    where = str(Path(path).resolve())
    m = film.record.manifest
    if where == m.source or where in m.sources:
        return film
    try:
        with film_lock(library, film.id, wait=10) if not locked else _nowhere():
            current = Manifest.load(film.dir / "manifest.json")
            if where != current.source and where not in current.sources:
                current.sources = [*current.sources, where]
                atomic_write_json(film.dir / "manifest.json", current.to_dict())
    except OSError:  # a read-only library: the film is still reused, the path just not noted
        return film
    return Film(film.dir, model=film.model)


def merge_duplicates(library: Library) -> list[str]:
    """Fold each film folder that holds the same content and frames as another into that one
    (``films --dedupe``): its vector sets the kept film lacks move over (the frames are the same),
    its paths become the kept film's sources, and only then is the extra folder removed, so nothing
    indexed is lost (tags are stored by content and stay). Returns one line per film merged."""
    lines = []
    for extra, kept in library.duplicates():
        try:
            with film_lock(library, kept.id, wait=30), film_lock(library, extra.id, wait=30):
                if not np.array_equal(extra.times, kept.times):
                    lines.append(f"{extra.id}: kept apart from {kept.id} (same content, other frame times)")
                    continue
                moved = []
                for model in extra.models:
                    if kept.has(model):
                        continue
                    source_dir = extra.view(model).set_dir
                    target = kept.dir / "vectors" / source_dir.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(source_dir, target)
                    moved.append(model)
                current = Manifest.load(kept.dir / "manifest.json")
                other = [extra.record.manifest.source, *extra.record.manifest.sources]
                current.sources = list(dict.fromkeys(s for s in [*current.sources, *other] if s != current.source))
                atomic_write_json(kept.dir / "manifest.json", current.to_dict())
                trash = extra.dir.with_name(f".merged-{extra.dir.name}")
                os.replace(extra.dir, trash)
                shutil.rmtree(trash, ignore_errors=True)
        except (FilmBusy, OSError, DamagedFilm) as e:
            lines.append(f"{extra.id}: not merged ({e})")
            continue
        what = f", with its {', '.join(moved)} vectors" if moved else ""
        lines.append(f"{extra.id}: merged into {kept.id}{what}")
    return lines


def save_derived(library: Library, film: Film, name: str, arrays: dict[str, np.ndarray]) -> bool:
    """Keep a cache derived from a film's own data (e.g. its cue vectors) in its folder, atomically;
    False when another process holds the film (the cache is simply made again later)."""
    if Path(name).name != name or not name.endswith(".npz"):
        raise ValueError(f"a derived file is a plain .npz name, not {name!r}")
    try:
        with film_lock(library, film.id, wait=0):
            atomic_savez(film.dir / name, arrays)
    except (FilmBusy, OSError):
        return False
    return True
