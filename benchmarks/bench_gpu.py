"""The GPU path, measured in one run (under 8 minutes on one GPU; nothing here runs in CI).

  model      images/s of a ViT-B/32-sized CLIP (random weights: the real compute) at batch 128
             and 256, in fp16 and bf16 (weights in that precision, as ``load_encoder`` does on CUDA)
  parity     minimum cosine of fp16 (and bf16) vectors against fp32, on the same frames
  index      end-to-end ``framesearch.app.index`` of the sample films and of a 10-minute 480p film on the
             GPU with CPU decoding (PyAV), and NVDEC decoding of the same films where ``torchcodec`` is
             installed with CUDA support (optional, never required)
  weights    any pretrained CLIP / SigLIP / open_clip weights found in the Hugging Face and torch
             caches of this machine (listed, not loaded)

    python benchmarks/bench_gpu.py [--seconds 20] [--json OUT] [--readme]

``--readme`` puts this run's output in the README's block between the ``gpu-bench`` markers.
Without a GPU it says so in one line and exits 2 (``--device cpu`` runs the same steps on the CPU as
a smoke run of this script; its figures are not GPU figures and never go to the README).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from bench_index import full_size_clip, looped_film

from clip_search import config
from scripts.readme_block import Transcript

BEGIN, END = "<!-- gpu-bench:begin (benchmarks/bench_gpu.py --readme) -->", "<!-- gpu-bench:end -->"

SAMPLE_FILMS = [
    "big-buck-bunny/big-buck-bunny-30s.mp4",
    "tears-of-steel/tears-of-steel-battle-clip-medium.webm",
    "popeye/popeye_p1.mkv",
]


def synchronize() -> None:
    """Wait for the GPU's queued work (a no-op on the CPU), so a timer measures finished work."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def model_rate(encoder, batch: int, seconds: float) -> float:
    """Images/s of ``encode_prepared`` at ``batch``, timed over about ``seconds`` after a warm-up."""
    crop = encoder.pre.crop
    frames = np.random.default_rng(0).integers(0, 255, (batch, crop, crop, 3), dtype=np.uint8)
    encoder.encode_prepared(frames)
    synchronize()
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        encoder.encode_prepared(frames)
        done += batch
    synchronize()
    return done / (time.perf_counter() - t0)


def parity(fast, exact, n: int = 256) -> float:
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (n, exact.pre.crop, exact.pre.crop, 3), dtype=np.uint8)
    return float((fast.encode_prepared(frames) * exact.encode_prepared(frames)).sum(axis=1).min())


def index_films(encoder, long_minutes: float) -> dict:
    """End-to-end index of the sample films and a ``long_minutes`` 480p film into a fresh library
    (PyAV decoding on the CPU)."""
    from clip_search.store.library import Library
    from framesearch import app  # the verb every front end indexes through: decode, encode, dialogue, shots

    out = {}
    films = [config.shared_media_dir() / name for name in SAMPLE_FILMS]
    if long_minutes > 0:
        films.append(looped_film(long_minutes))
    with tempfile.TemporaryDirectory() as tmp:
        for path in films:
            if not path.is_file():
                continue
            name = path.name
            t0 = time.perf_counter()
            (film,) = app.index(Library(tmp), [path], [encoder.model_id], load=lambda model: encoder).films
            out[name] = {"frames": film.manifest.frames, "seconds": time.perf_counter() - t0}
    return out


def nvdec_decode() -> dict | str:
    """Frames/s of NVDEC decoding of the sample films with torchcodec, or why it was not measured."""
    try:
        from torchcodec.decoders import VideoDecoder
    except ImportError:
        return "torchcodec is not installed (optional: pip install torchcodec with CUDA support)"
    out = {}
    for name in SAMPLE_FILMS:
        path = config.shared_media_dir() / name
        if not path.is_file():
            continue
        try:
            t0 = time.perf_counter()
            dec = VideoDecoder(str(path), device="cuda")
            n = sum(1 for _ in dec)
            out[name] = {"frames": n, "frames_per_s": n / (time.perf_counter() - t0)}
        except Exception as e:  # noqa: BLE001 - a build without NVDEC, a codec it lacks: reported, not fatal
            out[name] = f"not decoded on the GPU ({type(e).__name__}: {str(e)[:120]})"
    return out


def cached_weights() -> list[str]:
    """Pretrained dual-encoder weights in this machine's caches (names only)."""
    roots = [
        Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")),
        Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")),
        Path.home() / ".cache" / "clip",
    ]
    found = []
    for root in roots:
        if root.is_dir():
            for p in root.rglob("*"):
                low = p.name.lower()
                if p.is_dir() and any(k in low for k in ("clip", "siglip", "pe-core", "eva")):
                    found.append(str(p))
    return sorted(set(found))[:50]


def main() -> int:
    import torch
    import transformers

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0, help="seconds per model-throughput measure")
    p.add_argument("--long-minutes", type=float, default=10.0, help="length of the long film indexed end to end")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu: a smoke run of this script only")
    p.add_argument("--json", type=Path)
    p.add_argument("--readme", action="store_true", help="put this run's output in the README")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no GPU here (torch sees no CUDA device): nothing to measure", file=sys.stderr)
        return 2
    if args.readme and args.device != "cuda":
        print("--readme takes GPU figures only (drop --device cpu)", file=sys.stderr)
        return 2
    from clip_search.encoders import load_encoder

    say = Transcript()
    folder = str(full_size_clip())
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "no GPU (CPU smoke run)"
    say(f"GPU: {name}; torch {torch.__version__}, transformers {transformers.__version__}; {os.cpu_count()} CPU cores")
    say("model: ViT-B/32-sized CLIP, random weights (the real compute)")
    result: dict = {"gpu": name, "model": {}, "parity": {}}
    exact = load_encoder(folder, args.device, "fp32")
    for precision in ("fp16", "bf16"):
        enc = load_encoder(folder, args.device, "bf16" if precision == "bf16" else "auto")
        result["parity"][precision] = parity(enc, exact)
        for batch in (128, 256):
            rate = model_rate(enc, batch, args.seconds)
            result["model"][f"{precision}@{batch}"] = rate
            say(f"model {precision} batch {batch}: {rate:8.0f} images/s   (goal >= 3000 in fp16)")
        say(f"parity {precision} vs fp32: min cosine {result['parity'][precision]:.6f}")
        del enc
    del exact
    fast = load_encoder(folder, args.device, "auto")
    result["index_cpu_decode"] = index_films(fast, args.long_minutes)
    for film, r in result["index_cpu_decode"].items():
        say(
            f"index {film}: {r['frames']} frames in {r['seconds']:.1f} s = "
            f"{r['frames'] / r['seconds']:.0f} frames/s end to end (CPU decoding)"
        )
    result["nvdec"] = nvdec_decode()
    say(f"NVDEC: {result['nvdec']}")
    result["cached_weights"] = cached_weights()
    say(f"pretrained weights in caches: {result['cached_weights'] or 'none found'}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.readme:
        say.to_readme(BEGIN, END, "python benchmarks/bench_gpu.py --readme", f"one {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
