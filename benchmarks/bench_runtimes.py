"""ONNX Runtime and OpenVINO against torch, as a measured alternative for the image tower.

The same ViT-B/32-sized CLIP image tower (random weights: the real compute), the same prepared
batches: torch float32, torch's fast path (bfloat16 under autocast where the CPU computes it),
the tower exported to ONNX and run by ONNX Runtime (CPU provider), and OpenVINO (CPU plugin,
float32, and bfloat16 where the CPU has it). For each: images/s at batch 32 and the minimum
cosine of its vectors against torch float32 (parity target >= 0.999). The project adopts a
runtime only if it beats torch's fast path by >= 1.3x at that parity.

Neither runtime is a dependency of the project:

    .venv/bin/pip install onnxruntime openvino onnx onnxscript
    python benchmarks/bench_runtimes.py [--batch 32] [--images 256] [--readme]

``--readme`` puts this run's output in the README's block between the ``runtimes-bench`` markers.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks.bench_index import full_size_clip
from clip_search.encoders import load_encoder
from clip_search.encoders.base import cpu_has_bf16
from scripts.readme_block import Transcript, replace_block

BEGIN, END = "<!-- runtimes-bench:begin (benchmarks/bench_runtimes.py --readme) -->", "<!-- runtimes-bench:end -->"
ADOPT = 1.3
say = Transcript()


def tower(encoder):
    """The encoder's own image forward (``_image_features``) as a module, for export:
    normalised pixels (B, 3, H, W) float32 -> image features."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = encoder.model  # registered, so export sees its weights

        def forward(self, pixel_values):
            out = encoder._image_features(encoder.model, pixel_values)
            return getattr(out, "pooler_output", out)  # newer transformers wrap the features

    return Tower().eval()


def normalised(encoder, frames: np.ndarray) -> np.ndarray:
    """What ``encode_prepared`` feeds the model: (B, 3, H, W) float32, with the encoder's own mean/std."""
    import torch

    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    return ((x - encoder._mean) / encoder._std).numpy()


def rate(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, images: int, batch: int) -> tuple[float, np.ndarray]:
    """Images/s over ``images`` images in batches (after one warm-up batch), and the first batch's vectors."""
    first = run(x[:batch])
    t0 = time.perf_counter()
    done = 0
    while done < images:
        run(x[:batch])
        done += batch
    return done / (time.perf_counter() - t0), first


def unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def export_onnx(module, x: np.ndarray, path: Path) -> None:
    import torch

    torch.onnx.export(
        module,
        (torch.from_numpy(x[:2]),),
        str(path),
        input_names=["pixel_values"],
        output_names=["features"],
        dynamic_axes={"pixel_values": {0: "batch"}, "features": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--images", type=int, default=256, help="images timed per runtime")
    ap.add_argument("--readme", action="store_true", help="put this run's output in the README")
    args = ap.parse_args()
    import torch

    threads = torch.get_num_threads()
    model_dir = full_size_clip()
    exact = load_encoder(str(model_dir), "cpu", "fp32")
    rng = np.random.default_rng(0)
    crop = exact.pre.crop
    x = normalised(exact, rng.integers(0, 255, (args.batch, crop, crop, 3), dtype=np.uint8))
    module = tower(exact)

    def torch_run(autocast: bool, module=module):
        def run(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                return module(torch.from_numpy(batch)).float().numpy()

        return run

    rows: list[tuple[str, float, np.ndarray]] = []
    say(
        f"ViT-B/32-sized CLIP image tower, random weights, batch {args.batch}, {threads} threads, CPU bf16: "
        f"{'yes' if cpu_has_bf16() else 'no'}"
    )
    speed, ref = rate(torch_run(False), x, args.images, args.batch)
    ref = unit(ref)
    rows.append(("torch fp32", speed, ref))
    fast_name = "torch fp32"
    if cpu_has_bf16():  # the indexer's bf16 path: its encoder (matrix weights in bf16) under autocast
        fast_tower = tower(load_encoder(str(model_dir), "cpu", "bf16"))
        speed, v = rate(torch_run(True, fast_tower), x, args.images, args.batch)
        rows.append(("torch bf16 (autocast)", speed, unit(v)))
        fast_name = "torch bf16 (autocast)"
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "tower.onnx"
        try:
            export_onnx(module, x, onnx_path)
        except Exception as e:  # noqa: BLE001 - reported, the other rows still run
            say(f"ONNX export failed: {str(e).splitlines()[0]}")
        if onnx_path.is_file() and importlib.util.find_spec("onnxruntime"):
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
            speed, v = rate(lambda b: sess.run(None, {"pixel_values": b})[0], x, args.images, args.batch)
            rows.append((f"ONNX Runtime {ort.__version__} fp32", speed, unit(v)))
        elif not importlib.util.find_spec("onnxruntime"):
            say("onnxruntime is not installed: no ONNX Runtime row")
        if onnx_path.is_file() and importlib.util.find_spec("openvino"):
            import openvino as ov

            core = ov.Core()
            model = core.read_model(str(onnx_path))
            hints = ["f32", "bf16"] if cpu_has_bf16() else ["f32"]
            for hint in hints:
                compiled = core.compile_model(
                    model,
                    "CPU",
                    {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads},
                )
                request = compiled.create_infer_request()

                def ov_run(b: np.ndarray, request=request) -> np.ndarray:
                    return request.infer({0: b})[0]

                speed, v = rate(ov_run, x, args.images, args.batch)
                rows.append((f"OpenVINO {ov.__version__.split('-')[0]} {hint}", speed, unit(v)))
        elif not importlib.util.find_spec("openvino"):
            say("openvino is not installed: no OpenVINO row")
    fast = dict((name, s) for name, s, _ in rows)[fast_name]
    say(f"{'runtime':34s} {'images/s':>9s} {'vs ' + fast_name:>26s} {'min cosine vs fp32':>20s}")
    for name, speed, v in rows:
        cos = float((v * ref).sum(axis=1).min())
        say(f"{name:34s} {speed:9.1f} {speed / fast:25.2f}x {cos:20.6f}")
    best = max(
        (r for r in rows if r[0] != fast_name and float((r[2] * ref).sum(axis=1).min()) >= 0.999),
        key=lambda r: r[1],
        default=None,
    )
    if best and best[1] / fast >= ADOPT:
        say(f"verdict: {best[0]} beats {fast_name} by {best[1] / fast:.2f}x (>= {ADOPT}x) at parity >= 0.999")
    else:
        gain = f"{best[0]} at {best[1] / fast:.2f}x" if best else "no runtime at parity"
        say(f"verdict: keep torch: the best alternative is {gain}, under the {ADOPT}x that adoption asks")
    if args.readme:
        what = f"image tower only, batch {args.batch}, {args.images} images per row"
        replace_block(BEGIN, END, say.block(BEGIN, END, "python benchmarks/bench_runtimes.py --readme", what))


if __name__ == "__main__":
    main()
