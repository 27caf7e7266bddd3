"""Time to first frame of a hit in the middle of a long HEVC film (not a timed test): the excerpt ▶
now makes (seek to the keyframe before the hit, ``ultrafast`` H.264 of ``WINDOW`` seconds) against
what a play cost before, a whole proxy transcoded up to the hit, measured in one run on the same
film. The film is built from the sample films: Popeye's four HEVC parts stream-copied end to end
``--loops`` times (no re-encoding, so it is as HEVC as they are).

    python benchmarks/bench_playback.py [--loops 8] [--runs 3] [--readme]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clip_search import config
from clip_search.video.proxy import WINDOW, make_proxy
from scripts.readme_block import Transcript

BEGIN, END = "<!-- playback-bench:begin (benchmarks/bench_playback.py --readme) -->", "<!-- playback-bench:end -->"
PARTS = [config.shared_media_dir() / "popeye" / f"popeye_p{i}.mkv" for i in range(1, 5)]
SAMPLE = 20.0  # seconds of the whole proxy timed, to give its rate up to the hit


def long_hevc(target: Path, loops: int) -> float:
    """Popeye's parts stream-copied ``loops`` times into one MKV; returns its length in seconds."""
    import av

    offset = 0.0
    with av.open(str(target), "w", format="matroska") as out:
        vout = None
        for _ in range(loops):
            for part in PARTS:
                with av.open(str(part)) as src:
                    vin = src.streams.video[0]
                    vout = vout or out.add_stream_from_template(vin)
                    packets = [p for p in src.demux(vin) if p.pts is not None]
                    shift = round(offset / vin.time_base)  # in the part's own time base (ms)
                    lead = next((i for i, p in enumerate(packets) if p.dts is not None), 0)
                    last = 0.0
                    for i, packet in enumerate(packets):
                        last = max(last, float((packet.pts + (packet.duration or 0)) * vin.time_base))
                        # a part's first packets carry no decode time: just before its first one that does
                        dts = packet.dts if packet.dts is not None else i - lead
                        packet.pts, packet.dts = packet.pts + shift, (dts + shift) if shift else packet.dts
                        packet.stream = vout
                        out.mux(packet)
                    offset += last + 0.05
    return offset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", type=int, default=8, help="times the four parts are repeated")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--readme", action="store_true", help="write this run's output into README.md")
    args = ap.parse_args()
    say = Transcript()
    with tempfile.TemporaryDirectory() as tmp:
        film = Path(tmp) / "long.mkv"
        length = long_hevc(film, args.loops)
        hit = length / 2
        excerpt = []
        for i in range(args.runs):
            t0 = time.perf_counter()
            make_proxy(film, Path(tmp) / f"w{i}.mp4", start=hit - 2, max_seconds=hit - 2 + WINDOW, excerpt=True)
            excerpt.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        make_proxy(film, Path(tmp) / "whole.mp4", max_seconds=SAMPLE)
        rate = SAMPLE / (time.perf_counter() - t0)  # film seconds transcoded per second
    first = statistics.median(excerpt)
    before = hit / rate
    made = f"Popeye's parts x {args.loops}"
    say(f"film: {length / 60:.1f} min of 1440x1074 HEVC in Matroska ({made}), hit at {hit / 60:.1f} min")
    say(f"first frame, excerpt of {WINDOW:g} s from the hit:  {first:5.2f} s (median of {args.runs})")
    say(f"first frame, whole proxy up to the hit (before):  {before:5.1f} s ({rate:.1f} film-s per s)")
    say(f"ratio: {before / first:.0f}x sooner; the target is 5 s for a film of any length")
    if args.readme:
        what = "time to the first frame of an HEVC hit, two ways, in one run"
        say.to_readme(BEGIN, END, "python benchmarks/bench_playback.py --readme", what)


if __name__ == "__main__":
    main()
