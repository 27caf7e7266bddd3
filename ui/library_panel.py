"""Sidebar: the model, the films in the library, and adding films (samples, upload, path, URL)."""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from clip_search.errors import FrameSearchError
from clip_search.guard import media_paths
from clip_search.indexing.indexer import IndexOptions, Progress, estimate_adding
from clip_search.store.library import Library
from clip_search.timecode import fmt_time
from clip_search.video.decode import SamplingSettings
from clip_search.video.fetch import download, is_url
from clip_search.video.patches import PatchSettings
from framesearch import app
from framesearch.examples import example_films, missing, prepare
from tagging.embedders import CLOUD, embedding_service
from tagging.taggers.base import TaggerError
from ui import state
from ui.samples import VIDEO_SUFFIXES, credit_for, sample_films
from ui.text import md, model_label


def model_status(ms: state.ModelState) -> None:
    """Which model is loaded; when none could be, why and how to fix it."""
    if ms.encoder:
        st.caption(f"Model: {md(ms.model_id)} on {ms.encoder.device}")
        notice = state.random_model_notice(ms)
        if notice:
            st.warning(md(notice))
        return
    st.error(md(ms.error))
    st.caption("Without network the hub model cannot be fetched. To try the interface anyway:")
    if st.button("Use a random-weights CLIP (UI demo only)", key="use-random-model"):
        st.session_state.model_id = state.random_demo_model()
        st.rerun()


def _sampling_widgets() -> IndexOptions:
    mode = st.radio("Sampling", ["1 fps", "N fps", "every frame", "shots"], horizontal=True, key="sampling-mode")
    if mode == "N fps":
        fps = st.number_input("Frames per second", 0.05, 30.0, 2.0, 0.5, key="sampling-fps")
        sampling = SamplingSettings(mode="fps", fps=float(fps))
    elif mode == "every frame":
        sampling = SamplingSettings(mode="every")
    elif mode == "shots":
        sampling = SamplingSettings(mode="shots")
    else:
        sampling = SamplingSettings()
    patches = st.checkbox("Patch mode (small details; ~8x slower)", key="patch-mode")
    return IndexOptions(sampling=sampling, patches=PatchSettings() if patches else None)


class _FilmBar(app.FilmWatch):
    """One film's progress bar in the page: frames and time left, then its lines of dialogue."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.bar = st.progress(0.0, text=f"{name}: starting…")

    def indexing(self, p: Progress) -> None:
        eta = p.eta_seconds
        left = f" — about {fmt_time(eta)[:-2]} left" if eta is not None else ""
        self.bar.progress(p.fraction, text=f"{self.name}: {p.frames} frames, {p.fraction:.0%}{left}")

    def dialogue(self, done: int, total: int) -> None:
        self.bar.progress(done / max(total, 1), text=f"{self.name}: dialogue, {done} of {total} lines")

    def close(self) -> None:
        self.bar.empty()


def _archive_line(line: str) -> None:
    """What the archive index did after films were added or merged."""
    st.caption(md(line))


def _index(paths: list[Path], lib: Library, ms: state.ModelState, options: IndexOptions) -> int:
    """Index with a progress bar and time left; a bad file is one error line, the rest go on.
    Returns how many films were indexed or found indexed."""
    report = app.index(
        lib,
        paths,
        [ms.encoder.model_id],
        options,
        load=lambda model: ms.encoder,
        watch=app.Watch(film=_FilmBar, archive=_archive_line),
        wait=0,
    )
    for item in report.items:
        if item.error:  # a bad file, or the film is being indexed by another process
            st.error(md(item.error))
            continue
        m = item.film.manifest
        reused = item.result is not None and item.result.reused
        st.session_state.setdefault("notices", []).append(
            f"{m.name}: already indexed" if reused else f"{m.name}: indexed {m.frames} frames"
        )
        if m.dialogue and m.dialogue.get("warning"):
            st.warning(md(m.dialogue["warning"]))
    return len(report.films)


def add_films(lib: Library, ms: state.ModelState) -> None:
    """The 'Add films' expander."""
    with st.expander("Add films", expanded=not lib.films()):
        if ms.encoder is None:
            st.info("Load a model first (see above).")
            return
        options = _sampling_widgets()
        samples = sample_films()
        if samples:
            names = {p.name: p for p in samples}
            indexed = {Path(f.manifest.source).name for f in lib.films()}
            # pills, not a drop-down: one click chooses, and the next one reaches the button
            chosen = (
                st.pills(
                    "Sample films (../shared/media)",
                    list(names),
                    selection_mode="multi",
                    default=[n for n in names if n.startswith("big-buck-bunny") and n not in indexed],
                    format_func=lambda n: f"{n} ✓ indexed" if n in indexed else n,
                    key="samples",
                )
                or []
            )
            if st.button("Index sample films", key="index-samples", disabled=not chosen):
                _index([names[n] for n in chosen], lib, ms, options)
        upload = st.file_uploader("Upload a film", type=[s[1:] for s in sorted(VIDEO_SUFFIXES)], key="upload")
        if upload is not None and st.button("Index upload", key="index-upload"):
            target, new = lib.store_upload(upload.name, upload.getvalue())
            if not _index([target], lib, ms, options) and new:
                lib.discard_upload(target)  # a rejected upload removes only its own bytes
        ref = st.text_input(
            "…or a film or folder on disk, or a video URL",
            key="add-path",
            placeholder="/films/casablanca.mkv, /films/ or https://…",
        )
        if st.button("Index path / URL", key="index-path", disabled=not ref.strip()):
            ref = ref.strip()
            try:
                if is_url(ref):
                    with st.spinner(f"Downloading {ref}…"):
                        paths = [download(ref, lib.downloads_dir)]
                else:
                    paths = media_paths(ref)  # a film or a folder, inside the configured media roots
                _index(paths, lib, ms, options)
            except FrameSearchError as e:
                st.error(md(e))
        for note in st.session_state.pop("notices", []):
            st.success(md(note))


def add_model(lib: Library) -> None:
    """The 'Add a model' expander: another model's vectors for films already indexed, on exactly
    their frames; its time on this device is shown before it starts, then a progress bar."""
    films = lib.films()
    if not films:
        return
    with st.expander("Add a model to films"):
        known = lib.models(films)
        model = st.text_input(
            "Model",
            key="add-model",
            placeholder="google/siglip2-base-patch16-224, open_clip:hf-hub:timm/PE-Core-B-16 or a folder",
            help="A hub id, open_clip:hf-hub:ORG/REPO, open_clip:ARCH/PRETRAINED or a local folder; a video "
            "model (microsoft/xclip-base-patch32, google/videoprism-lvt-base-f16r288) scores clips per shot; "
            "cloud:titan, cloud:nova, cloud:marengo, cloud:gemini or cloud:azure buys a cloud service's vectors "
            "(price first). "
            f"In this library: {', '.join(known)}",
        ).strip()
        if not model:
            st.caption("Each model's vectors sit beside the others on the same frames: compare them in every tab.")
            return
        if model.startswith(CLOUD):
            _buy_vectors(lib, films, model)
            return
        load = state.model_loads().start(model)
        if not load.done():
            _loading(model)
            return
        failed = load.error()
        if failed is not None:
            st.error(md(f"{getattr(failed, 'why', failed)} {ADD_MODEL_HELP}"))
            if st.button("Try again", key="add-model-retry"):
                state.model_loads().forget(model)
                st.rerun()
            return
        encoder = state.encoders()(model)
        lacking = [f for f in films if not f.has(encoder.model_id)]
        if not lacking:
            st.success(f"Every film has {md(encoder.model_id)} vectors.")
            return
        names = {f.name: f for f in lacking}
        chosen = st.multiselect("Films", list(names), default=list(names), key="add-model-films")
        chosen_films = [names[n] for n in chosen]
        if chosen_films:
            st.caption(md(estimate_adding(lib, chosen_films, encoder).sentence()))
        if st.button(f"Add {md(encoder.model_id)}", key="add-model-run", disabled=not chosen_films):
            report = app.add_model(
                lib, chosen_films, encoder.model_id, load=lambda model: encoder, watch=app.Watch(film=_FilmBar)
            )
            for item in report.items:
                if item.error:  # the source is gone, the film is busy, ...
                    st.error(md(item.error))
                else:
                    st.session_state.setdefault("notices", []).append(f"{item.film.name}: {encoder.model_id} added")
            st.rerun()


ADD_MODEL_HELP = (
    "Without a network only what this machine holds can be loaded: type the folder of a saved model "
    "(a hub repo downloaded with `hf download`, or open_clip's files), or a model already in the library."
)


@st.fragment(run_every=1.0)
def _loading(model: str) -> None:
    """While a model loads in the background: how long it has taken, every second; when it is done,
    the whole app again (its films, or why it could not be loaded)."""
    load = state.model_loads().start(model)
    if load.done():
        st.rerun()
    st.caption(f"Loading {md(model)}… {time.time() - load.started:.0f} s (the rest of the page stays usable)")


def _buy_vectors(lib: Library, films, name: str) -> None:
    """A cloud embedding service in *Add a model*: its status, then the calls and their price on the
    button, then the vectors bought with a progress bar (each answer kept as it arrives)."""
    try:
        service = embedding_service(name)
    except ValueError as e:
        st.error(md(e))
        return
    st.caption(md(f"{service.provider}, {service.model_id}: {service.status}."))
    names = {f.name: f for f in films}
    chosen = st.multiselect("Films", list(names), default=list(names), key="add-cloud-films")
    chosen_films = [names[n] for n in chosen]
    cost = app.embed_estimate(lib, chosen_films, name)
    if not cost.frames:
        st.success(f"The chosen films have current {md(name)} vectors (or hold every answer already).")
    label = f"Pay about ${cost.usd:.2f} ({cost.calls} calls) and add {md(name)}"
    if not st.button(label, key="add-cloud-run", disabled=not chosen_films):
        return
    bar = st.progress(0.0, text=f"{name}: starting…")

    def show(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"{name}: {done} of {total} frames")

    try:
        done = app.embed(lib, chosen_films, name, progress=show)
    except (TaggerError, FrameSearchError) as e:  # missing or rejected credentials: nothing more is paid
        bar.empty()
        st.error(md(f"{name}: {e}"))
        return
    bar.empty()
    for item in done:
        if item.added is None:  # a frame failed or the run stopped: what was bought is kept, said here
            st.error(md(item.describe()))
        else:
            st.session_state.setdefault("notices", []).append(item.describe())
    if all(item.added is not None for item in done):
        st.rerun()


def index_demo_films(lib: Library, ms: state.ModelState) -> None:
    """Demo mode (``FRAMESEARCH_DEMO=1``, set by scripts/demo.sh), first start: index and offline-tag
    every sample film the example query set names, with one progress bar, so a first-time user lands
    on results and the example evaluation runs whole (later starts reuse them)."""
    paths = example_films()
    if not paths or st.session_state.get("demo-indexed"):
        return
    st.session_state["demo-indexed"] = True
    st.info(
        f"First start: indexing and tagging the {len(paths)} sample films of the example evaluation "
        "(once; they are reused afterwards)…"
    )
    if prepare_examples(lib, ms, paths):
        st.rerun()


def prepare_examples(lib: Library, ms: state.ModelState, paths: list[Path]) -> int:
    """Index and offline-tag ``paths`` under one progress bar; each failure is one error line.
    Returns how many films are ready."""
    bar = st.progress(0.0, text="starting…")
    done = prepare(lib, ms.encoder, paths, progress=lambda f, text: bar.progress(f, text=text))
    bar.empty()
    for line in done.errors:
        st.error(md(line))
    return len(done.ready)


def missing_examples(lib: Library, query_set: Path | None = None) -> list[Path]:
    """Sample films a query set (default: the example set) names that are not yet indexed and offline-tagged."""
    return missing(lib, example_films(query_set) if query_set else example_films())


def film_list(lib: Library) -> None:
    """What is in the library, with credits for CC BY films; damaged films by name, with the fix."""
    films, damaged = lib.scan()
    st.subheader(f"Library ({len(films)} films)")
    if not films:
        st.caption(f"No films in {md(lib.root)} yet.")
    for d in damaged:
        st.warning(md(d.describe()))
    duplicates = lib.duplicates()
    if duplicates:
        names = ", ".join(sorted({extra.name for extra, _ in duplicates}))
        st.info(md(f"{len(duplicates)} film folders hold the same content as another ({names}); each is listed once."))
        if st.button(
            "Merge duplicates", key="merge_duplicates", help="their vectors join the kept film; nothing is lost"
        ):
            for line in app.merge_duplicates(lib, app.Watch(archive=_archive_line)):
                st.caption(md(line))
    for f in films:
        m = f.manifest
        st.markdown(
            f"**{md(m.name)}** · {m.frames} frames · {fmt_time(m.duration)[:-2]} · "
            f"{m.sampling_settings().describe()}" + (" · patches" if m.patches else "")
        )
        st.caption("models: " + md(", ".join(model_label(m) for m in f.models)))
        if m.sources:
            st.caption("also at: " + md(", ".join(m.sources)))
        credit = credit_for(m.source)
        if credit:
            st.caption(credit)
