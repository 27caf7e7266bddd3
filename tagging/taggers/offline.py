"""The offline tagger: real local components only, the default when no cloud credentials are set.

- on-screen text: Tesseract OCR (Debian's ``tesseract-ocr``) through pytesseract
- faces: OpenCV's frontal Haar cascade at 360 px width (shipped inside opencv-python 4.x); the
  profile cascade doubled the cost for few extra faces on the sample films, so it is not run
- shot scale from the largest face: close-up / medium shot / wide shot
- dominant colour names (k-means in Lab space, nearest named colour)
- brightness: day / night / dark
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from tagging.taggers.base import FatalTaggerError, Response, Tag, TaggerError

# Named colours (sRGB) for dominant-colour tags.
COLOURS = {
    "black": (20, 20, 20),
    "white": (240, 240, 240),
    "grey": (128, 128, 128),
    "red": (200, 30, 30),
    "orange": (240, 140, 30),
    "yellow": (235, 220, 50),
    "green": (60, 160, 60),
    "dark green": (20, 80, 30),
    "blue": (40, 80, 200),
    "light blue": (130, 190, 235),
    "navy": (20, 30, 90),
    "purple": (120, 50, 150),
    "pink": (240, 150, 190),
    "brown": (120, 75, 40),
    "beige": (220, 200, 160),
    "teal": (30, 130, 130),
}
_COLOUR_NAMES = list(COLOURS)
_COLOUR_LAB = cv2.cvtColor(np.array([list(COLOURS.values())], np.uint8), cv2.COLOR_RGB2LAB)[0].astype(np.float32)


class _TesseractEnv(Mapping):
    """This process's environment as it is at each call, with ``OMP_THREAD_LIMIT=1`` for Tesseract
    (pytesseract passes its module's ``environ`` to every tesseract process it starts)."""

    def __getitem__(self, key: str) -> str:
        return "1" if key == "OMP_THREAD_LIMIT" else os.environ[key]

    def __iter__(self):
        return iter({*os.environ, "OMP_THREAD_LIMIT"})

    def __len__(self) -> int:
        return len({*os.environ, "OMP_THREAD_LIMIT"})


class OfflineTagger:
    """OCR, faces, shot scale, colours and brightness for one frame, on the CPU."""

    service = "offline"
    features = ("local",)  # OCR, faces, shot scale, colours and brightness come from one local pass
    paid = False

    def __init__(self, ocr_min_confidence: float = 60.0, languages: str = "eng") -> None:
        import pytesseract  # Tesseract's wrapper loads only when the offline tagger runs

        if shutil.which("tesseract") is None:
            raise FatalTaggerError("The offline tagger needs Tesseract OCR: install Debian's tesseract-ocr package.")
        # one thread per Tesseract call (callers run frames in parallel), for Tesseract's processes
        # alone: set in os.environ it reached every process started later, Ray's encode workers too,
        # where it made torch's bf16 kernels compute part of each vector (see capped_threads)
        pytesseract.pytesseract.environ = _TesseractEnv()
        self._tess = pytesseract
        self.model_version = f"tesseract-{pytesseract.get_tesseract_version()}+opencv-{cv2.__version__}"
        self.ocr_min_confidence = ocr_min_confidence
        self.languages = languages
        cascades = cv2.data.haarcascades
        self._frontal = cv2.CascadeClassifier(os.path.join(cascades, "haarcascade_frontalface_default.xml"))
        if self._frontal.empty():
            raise FatalTaggerError(
                f"OpenCV's Haar face cascades are missing from {cascades} (opencv-python 4.x ships them)."
            )

    def responses(self, image: np.ndarray, features: tuple[str, ...] = features) -> Iterator[Response]:
        """All offline tags of one RGB frame, as the one ``local`` response."""
        try:
            yield Response("local", self.tag_batch([image])[0])
        except TaggerError as e:
            yield Response("local", error=e)

    def tag_batch(self, images: list[np.ndarray]) -> list[list[Tag]]:
        """Tag several frames at once: one Tesseract process reads them all (starting Tesseract
        costs more than reading a frame) while faces, colours and brightness run beside it."""
        grays = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in images]
        with tempfile.TemporaryDirectory(prefix="ocr-") as tmp, ThreadPoolExecutor(1) as pool:
            ocr = pool.submit(self.text_batch, grays, Path(tmp))
            # one frame at a time: a CascadeClassifier is not safe to share between threads, and
            # detectMultiScale already spreads its work over the cores
            visual = [self.visual(im, g) for im, g in zip(images, grays, strict=True)]
            texts = ocr.result()
        return [t + v for t, v in zip(texts, visual, strict=True)]

    def visual(self, image: np.ndarray, gray: np.ndarray) -> list[Tag]:
        """Faces, shot scale, colours and brightness of one frame."""
        tags = []
        faces = self.faces(gray)
        if faces:
            n = len(faces)
            tags.append(Tag("face", "1 face" if n == 1 else f"{n} faces", round(max(c for _, c in faces), 3)))
            tags.append(self.shot_scale(faces, gray.shape[0]))
        tags += self.colours(image)
        tags.append(self.brightness(image))
        return tags

    def text_batch(self, grays: list[np.ndarray], tmp: Path) -> list[list[Tag]]:
        """Lines of on-screen text in each frame, from one Tesseract run over a list of images."""
        paths = []
        for i, gray in enumerate(grays):
            if gray.shape[0] < 400:  # Tesseract reads small glyphs better at twice the size
                gray = cv2.resize(gray, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
            paths.append(tmp / f"{i:05d}.png")
            cv2.imwrite(str(paths[-1]), gray, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        listing = tmp / "frames.txt"
        listing.write_text("\n".join(str(p) for p in paths) + "\n")
        try:
            data = self._tess.image_to_data(
                str(listing), lang=self.languages, config="--psm 3", output_type=self._tess.Output.DICT
            )
        except (self._tess.TesseractError, OSError) as e:
            raise TaggerError(f"OCR failed ({e})") from None
        lines: list[dict[tuple, list[tuple[str, float]]]] = [{} for _ in grays]
        for i, word in enumerate(data["text"]):
            conf = float(data["conf"][i])
            if word.strip() and conf >= self.ocr_min_confidence and any(ch.isalnum() for ch in word):
                key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
                lines[int(data["page_num"][i]) - 1].setdefault(key, []).append((word.strip(), conf))
        return [
            [
                Tag("text", " ".join(w for w, _ in ws), round(sum(c for _, c in ws) / len(ws) / 100, 3))
                for ws in page.values()
            ]
            for page in lines
        ]

    def faces(self, gray: np.ndarray) -> list[tuple[tuple[int, int, int, int], float]]:
        """Face boxes (x, y, w, h) in ``gray``'s pixels, with a confidence from the cascade's weight."""
        scale = min(1.0, 360 / gray.shape[1])
        small = cv2.resize(gray, None, fx=scale, fy=scale) if scale < 1 else gray
        small = cv2.equalizeHist(small)
        min_size = max(20, small.shape[0] // 12)
        boxes, _, weights = self._frontal.detectMultiScale3(
            small, scaleFactor=1.1, minNeighbors=6, minSize=(min_size, min_size), outputRejectLevels=True
        )
        found = []
        for (x, y, w, h), wt in zip(boxes, np.ravel(weights), strict=False):
            conf = float(1 / (1 + np.exp(-(wt - 2.0))))  # the last stage's weight squashed to (0, 1)
            found.append(((int(x / scale), int(y / scale), int(w / scale), int(h / scale)), conf))
        return found

    @staticmethod
    def shot_scale(faces: list[tuple[tuple[int, int, int, int], float]], frame_height: int) -> Tag:
        """Close-up / medium shot / wide shot from the largest face's share of the frame height."""
        (_, _, _, h), conf = max(faces, key=lambda f: f[0][3])
        share = h / frame_height
        name = "close-up" if share >= 0.3 else "medium shot" if share >= 0.12 else "wide shot"
        return Tag("label", name, round(conf, 3))

    @staticmethod
    def colours(image: np.ndarray, k: int = 3) -> list[Tag]:
        """The dominant colours' names, confidence = their share of the frame."""
        small = cv2.resize(image, (64, 36), interpolation=cv2.INTER_AREA)
        lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32)
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
        cv2.setRNGSeed(0)
        _, labels, centres = cv2.kmeans(lab, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
        shares: dict[str, float] = {}
        for c, centre in enumerate(centres):
            name = _COLOUR_NAMES[int(np.argmin(np.linalg.norm(_COLOUR_LAB - centre, axis=1)))]
            shares[name] = shares.get(name, 0.0) + float(np.mean(labels == c))
        return [
            Tag("label", name, round(share, 3))
            for name, share in sorted(shares.items(), key=lambda x: -x[1])
            if share >= 0.15
        ]

    @staticmethod
    def brightness(image: np.ndarray) -> Tag:
        """day / night / dark from the mean brightness (HSV value)."""
        v = float(cv2.cvtColor(image, cv2.COLOR_RGB2HSV)[..., 2].mean()) / 255
        if v < 0.12:
            return Tag("label", "dark", round(1 - v / 0.12, 3))
        if v < 0.35:
            return Tag("label", "night", round(1 - abs(v - 0.235) / 0.115, 3))
        return Tag("label", "day", round(min(1.0, (v - 0.35) / 0.3 + 0.5), 3))
