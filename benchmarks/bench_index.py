"""Indexing speed and memory, as ratios measured in one run (not a timed test).

Compares, on the same frames of a 480p film sampled at 1 fps, with a ViT-B/32-sized CLIP:
  baseline   one frame at a time: OpenCV decodes every frame, CLIPProcessor (PIL) prepares
             each sampled frame, the model runs with batch 1 (the Buster Keaton notebook loop)
  decode     our decoder alone (PyAV decode + sampling to RGB)
  model      the model alone on prepared batches
  index      our end-to-end index_film (decode || prepare || encode || write), in fp32 and in
             the fast path, and the fp32 index_film of the code the targets were set on
             (commit ISSUE_DAY, run from this clone's history: "today's float32 path")
and the peak RSS of indexing films of growing length (each in its own process).

    python benchmarks/bench_index.py [--minutes 10] [--memory-minutes 2,10] [--device auto] [--readme]

``--readme`` puts this run's output in the README's block between the ``index-bench`` markers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av
import numpy as np

from clip_search import config
from clip_search.indexing.indexer import CPU_BATCH
from scripts.readme_block import Transcript, replace_block

BEGIN, END = "<!-- index-bench:begin (benchmarks/bench_index.py --readme) -->", "<!-- index-bench:end -->"
MEM_BEGIN = "<!-- index-memory:begin (benchmarks/bench_index.py --memory-only --readme) -->"
MEM_END = "<!-- index-memory:end -->"
say = Transcript()

CACHE = config.PROJECT_DIR / ".cache"
SOURCE = config.shared_media_dir() / "big-buck-bunny" / "big-buck-bunny-30s.mp4"
ISSUE_DAY = "7523b9f"  # main when issue 18 set the targets: float32 only, every frame decoded (README: 8.99 frames/s)


def full_size_clip() -> Path:
    """ViT-B/32 with random weights (same compute as the real model), built once."""
    from clip_search.encoders.random import build_random_clip

    target = CACHE / "clip-vit-b32-random"
    if not (target / "config.json").is_file():
        build_random_clip(target, full_size=True)
    return target


def looped_film(minutes: float) -> Path:
    """The 30 s 480p film repeated (stream copy, no re-encode) to the wanted length."""
    out = CACHE / f"bunny-{minutes:g}min.mp4"
    if out.is_file():
        return out
    CACHE.mkdir(exist_ok=True)
    repeats = max(1, round(minutes * 2))
    tmp = out.with_suffix(".tmp.mp4")
    with av.open(str(SOURCE)) as src, av.open(str(tmp), "w") as dst:
        s_in = src.streams.video[0]
        s_out = dst.add_stream_from_template(s_in)
        span = 0
        for r in range(repeats):
            src.seek(0)
            end = 0
            for packet in src.demux(s_in):
                if packet.dts is None:
                    continue
                end = max(end, packet.pts + (packet.duration or 0))
                packet.pts += r * span
                packet.dts += r * span
                packet.stream = s_out
                dst.mux(packet)
            span = span or end
    os.replace(tmp, out)
    return out


def baseline(film: Path, model_dir: Path, fps: float = 1.0) -> tuple[int, float]:
    """OpenCV decode of every frame, CLIPProcessor + model with batch 1 for each sampled frame."""
    import cv2
    import torch
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

    processor = CLIPProcessor.from_pretrained(model_dir)
    model = CLIPModel.from_pretrained(model_dir).eval()
    cap = cv2.VideoCapture(str(film))
    video_fps = cap.get(cv2.CAP_PROP_FPS)
    n, i, next_t = 0, 0, 0.0
    t0 = time.perf_counter()
    with torch.inference_mode():
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            t = i / video_fps
            i += 1
            if t + 1e-6 < next_t:
                continue
            next_t += 1 / fps
            img = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            model.get_image_features(**processor(images=img, return_tensors="pt"))
            n += 1
    return n, time.perf_counter() - t0


def decode_only(film: Path, encoder) -> tuple[int, float, float]:
    """What the indexer's decoding side does alone: decode, sample, crop for the model, thumbnail.
    Returns (frames, wall seconds, CPU seconds)."""
    from clip_search.indexing.indexer import frame_thumbnail
    from clip_search.video.decode import SamplingSettings, iter_frames

    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for fr in iter_frames(film, SamplingSettings()):
        encoder.prepare(fr.image)
        frame_thumbnail(fr)
        n += 1
    return n, time.perf_counter() - t0, time.process_time() - c0


def issue_day_path(film: Path, model_dir: Path, commit: str = ISSUE_DAY) -> dict | str:
    """End-to-end float32 ``index_film`` of the code as it was when the speed targets were set
    (``commit``, from this repository's history), run now on the same film: "today's float32
    path" of the target, measured in this run. Its result, or why it could not run."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = subprocess.run(
            ["git", "-C", str(config.PROJECT_DIR), "archive", commit], capture_output=True, check=False
        )
        if tree.returncode:
            return f"not measured: commit {commit} is not in this clone ({tree.stderr.decode().strip()[:80]})"
        subprocess.run(["tar", "-x", "-C", tmp], input=tree.stdout, check=True)
        cmd = [sys.executable, f"{tmp}/benchmarks/bench_index.py", "--child", str(film), "--model-dir", str(model_dir)]
        out = subprocess.run([*cmd, "--device", "cpu"], capture_output=True, text=True, check=False)
        if out.returncode:
            return f"not measured: the old code failed ({(out.stderr.strip().splitlines() or ['?'])[-1][:80]})"
        return json.loads(out.stdout.strip().splitlines()[-1])


def decoded_share(film: Path) -> tuple[int, int]:
    """(frames decoded, frames in the film) when sampling at 1 fps: what skipping saves."""
    from clip_search.video.decode import SamplingSettings, iter_frames

    decoded: list[float] = []
    for _ in iter_frames(film, SamplingSettings(), on_decoded=decoded.append):
        pass
    with av.open(str(film)) as c:
        total = sum(1 for p in c.demux(c.streams.video[0]) if p.size)
    return len(decoded), total


def model_only(encoder, n: int, batch: int, split: bool = True) -> tuple[float, float]:
    """The model alone on ``n`` prepared frames, with the threads indexing starts it on
    (``CoreSplit``), or every core (``split=False``: an index that gave the model every core back):
    (wall seconds, CPU seconds)."""
    from clip_search.indexing.indexer import CoreSplit

    if not split:
        return _model_only(encoder, n, batch)
    with CoreSplit([encoder]):
        return _model_only(encoder, n, batch)


def _model_only(encoder, n: int, batch: int) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    crop = encoder.pre.crop
    frames = rng.integers(0, 255, (batch, crop, crop, 3), dtype=np.uint8)
    encoder.encode_prepared(frames[:2])  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    done = 0
    while done < n:
        k = min(batch, n - done)
        encoder.encode_prepared(frames[:k])
        done += k
    return time.perf_counter() - t0, time.process_time() - c0


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries that over from the parent
    through fork and exec, so a child started by a parent holding two models would report the parent's."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def index_once(film: Path, model_dir: Path, device: str, precision: str) -> dict:
    """End-to-end index into a fresh library; run in its own process for a clean peak RSS."""
    from clip_search.encoders import load_encoder
    from clip_search.indexing.indexer import index_film
    from clip_search.store.library import Library

    encoder = load_encoder(str(model_dir), device, precision)
    encoder.encode_prepared(np.zeros((2, encoder.pre.crop, encoder.pre.crop, 3), np.uint8))  # warm-up
    rss_before = peak_rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = index_film(film, Library(tmp), encoder)
        seconds = time.perf_counter() - t0
    return {
        "frames": result.film.manifest.frames,
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_model_load_mb": rss_before,
        "device": encoder.device,
        "decoder_core": result.decoder_core,
    }


def parity(fast, exact, n: int = 64) -> float:
    """Minimum cosine between the fast path's vectors and float32's, on the same frames."""
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (n, exact.pre.crop, exact.pre.crop, 3), dtype=np.uint8)
    return float((fast.encode_prepared(frames) * exact.encode_prepared(frames)).sum(axis=1).min())


def run_child(film: Path, model_dir: Path, device: str, precision: str = "auto") -> dict:
    cmd = [sys.executable, __file__, "--child", str(film), "--model-dir", str(model_dir), "--device", device]
    out = subprocess.run(
        [*cmd, "--precision", precision],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_rows(model_dir: Path, args: argparse.Namespace) -> None:
    """Peak RSS of indexing films of each length in ``--memory-minutes``, each in its own process."""
    say("peak RSS of indexing (own process, model included):")
    for minutes in [float(m) for m in args.memory_minutes.split(",") if m]:
        r = run_child(looped_film(minutes), model_dir, args.device, args.precision)
        say(
            f"  {minutes:6g} min film: {r['frames']:6d} frames  peak RSS {r['peak_rss_mb']:7.0f} MB "
            f"(model loaded: {r['rss_after_model_load_mb']:.0f} MB)  [< 2048 MB for 120 min]"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="film length for the speed ratios")
    ap.add_argument("--memory-minutes", default="2,10", help="film lengths for the peak-RSS rows")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto", help="the fast path measured against float32 (auto, bf16)")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--readme", action="store_true", help="put this run's output in the README")
    ap.add_argument(
        "--memory-only", action="store_true", help="only the peak-RSS rows (their own README block, e.g. 120 min)"
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(index_once(Path(args.child), Path(args.model_dir), args.device, args.precision)))
        return

    if args.memory_only:
        memory_rows(full_size_clip(), args)
        if args.readme:
            what = f"480p films at 1 fps of {args.memory_minutes} min, ViT-B/32-sized random weights"
            command = "python benchmarks/bench_index.py --memory-only --readme"
            replace_block(MEM_BEGIN, MEM_END, say.block(MEM_BEGIN, MEM_END, command, what))
        return

    from clip_search.encoders import load_encoder

    model_dir = full_size_clip()
    film = looped_film(args.minutes)
    encoder = load_encoder(str(model_dir), args.device, args.precision)
    exact = load_encoder(str(model_dir), args.device, "fp32")
    fast = encoder.precision
    batch = 128 if encoder.device.startswith("cuda") else CPU_BATCH
    say(
        f"film: {film.name} (480p, {args.minutes:g} min), model: ViT-B/32-sized random CLIP on {encoder.device}, "
        f"fast path: {fast}" + (" (this CPU has no bfloat16 units: the fast path is float32)" if fast == "fp32" else "")
    )

    n_dec, t_dec, cpu_dec = decode_only(film, encoder)
    e2e_exact = run_child(film, model_dir, args.device, "fp32")
    e2e = run_child(film, model_dir, args.device, args.precision)
    t_exact, _ = model_only(exact, n_dec, batch)
    t_model, cpu_model = model_only(encoder, n_dec, batch, split=e2e["decoder_core"])  # the threads it ended on
    then = issue_day_path(film, model_dir) if encoder.device == "cpu" else "not measured on a GPU"
    rows = [
        ("decode + prepare only", n_dec, t_dec),
        (f"model only fp32 (batch {batch})", n_dec, t_exact),
        (f"model only {fast} (batch {batch})", n_dec, t_model),
        ("end-to-end index, fp32", e2e_exact["frames"], e2e_exact["seconds"]),
        (f"end-to-end index, {fast}", e2e["frames"], e2e["seconds"]),
    ]
    if fast == "fp32":  # no faster precision on this machine: the fast-path rows are a second fp32 run
        rows = [(name if i in (0, 1, 3) else f"{name} (again)", n, t) for i, (name, n, t) in enumerate(rows)]
    if isinstance(then, dict):
        rows.insert(3, (f"end-to-end fp32, code of {ISSUE_DAY}", then["frames"], then["seconds"]))
    if not args.skip_baseline:
        n_base, t_base = baseline(film, model_dir)
        rows.insert(0, ("one-frame-at-a-time loop", n_base, t_base))
    for name, n, t in rows:
        say(f"  {name:32s} {n:6d} frames  {t:8.2f} s  {n / t:7.2f} frames/s")
    speed = e2e["frames"] / e2e["seconds"]
    say(f"parity of {fast} against fp32: minimum cosine {parity(encoder, exact):.6f}  [>= 0.999]")
    say("ratios (targets in brackets):")
    say(f"  model only {fast} / fp32                 {t_exact / t_model:5.2f}x")
    exact_speed = e2e_exact["frames"] / e2e_exact["seconds"]
    if isinstance(then, dict):
        say(f"  end-to-end {fast} / fp32 code of {ISSUE_DAY}  {speed * then['seconds'] / then['frames']:5.2f}x  [>= 3]")
    else:
        say(f"  end-to-end {fast} / fp32 code of {ISSUE_DAY}  {then}")
    say(f"  end-to-end {fast} / end-to-end fp32 now  {speed / exact_speed:5.2f}x  (this code's fp32 also gained)")
    if not args.skip_baseline:
        say(f"  end-to-end {fast} / one-frame loop       {speed / (n_base / t_base):5.2f}x  [>= 4.5]")
    say(f"  2-hour film at 1 fps, at this speed      {7200 / speed / 60:5.1f} min  [<= 6]")
    if not encoder.device.startswith("cuda"):
        # what no overlap can beat: every core busy with the CPU work one frame needs
        cores = len(os.sched_getaffinity(0))
        ceiling = cores * n_dec / (cpu_dec + cpu_model)
        say(
            f"  ceiling, {cores} cores all busy: {ceiling:.1f} frames/s (decode+prepare {cpu_dec / n_dec * 1e3:.1f} + "
            f"model {cpu_model / n_dec * 1e3:.1f} CPU-ms a frame) = {ceiling / exact_speed:.2f}x end-to-end fp32"
            + (f", {ceiling / (n_base / t_base):.2f}x the one-frame loop" if not args.skip_baseline else "")
        )
    if encoder.device.startswith("cuda") or e2e["decoder_core"]:  # the model has cores of its own
        say(f"  wall / max(decode, model)               {e2e['seconds'] / max(t_dec, t_model):5.2f}   [<= 1.1]")
    else:  # decoding and the model share every core
        say(f"  wall / (decode + model)                 {e2e['seconds'] / (t_dec + t_model):5.2f}   [<= 1.1]")
    memory_rows(model_dir, args)

    say("frames decoded to sample at 1 fps (non-reference frames no sample needs are skipped):")
    media = config.shared_media_dir()
    for path in sorted(p for p in media.glob("*/*") if p.suffix in (".mp4", ".mkv", ".webm")):
        done, total = decoded_share(path)
        say(f"  {path.name:42s} {done:5d} of {total:5d} ({done / total:4.0%})")
    if args.readme:
        what = (
            f"480p film at 1 fps, {args.minutes:g} minutes, ViT-B/32-sized random weights, "
            f"peak RSS for {args.memory_minutes} min"
        )
        replace_block(BEGIN, END, say.block(BEGIN, END, "python benchmarks/bench_index.py --readme", what))


if __name__ == "__main__":
    main()
