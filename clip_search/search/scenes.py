"""Scene descriptions written here, the kind of text people type to find a moment: what the archive
index is calibrated on, encoded by the library's own model, since a text vector sits apart from the
frames' vectors (CLIP's modality gap) and a setting measured on frame-like queries misses text ones.

``descriptions(n)`` gives ``n`` of them, the same ones every time: who or what, doing what, where,
seen how, combined from the lists below so they vary along every axis a query does."""

from __future__ import annotations

import numpy as np

WHO = (
    "a man", "a woman", "a girl", "a boy", "an old man", "an old woman", "two people", "a crowd",
    "a soldier", "a sailor", "a dancer", "a child", "a couple", "a police officer", "a doctor",
    "a cat", "a dog", "a horse", "a bird", "a rabbit", "a cartoon character", "a robot", "a family",
    "a group of friends", "a musician", "a chef", "a runner", "a driver", "a pilot", "a teacher",
)  # fmt: skip
DOING = (
    "walking", "running", "dancing", "talking on the phone", "laughing", "crying", "fighting",
    "eating dinner", "reading a letter", "driving a car", "riding a bicycle", "swimming",
    "climbing stairs", "sleeping", "kissing", "shouting", "playing the piano", "singing",
    "looking out of a window", "opening a door", "carrying a box", "waving goodbye", "sitting alone",
    "holding a gun", "writing at a desk", "cooking", "jumping", "falling down", "hugging", "waiting",
)  # fmt: skip
WHERE = (
    "on a beach", "in a forest", "in a kitchen", "on a busy street", "in an office", "on a ship at sea",
    "in the rain", "at night in a city", "in a snowy field", "in a church", "in a car", "on a rooftop",
    "in a ruined building", "in a meadow", "at a train station", "in a classroom", "in a hospital",
    "on a stage", "in a bar", "in a desert", "by a river", "in a garden", "on a mountain",
    "in a dark room", "at a party", "in a laboratory", "on a bridge", "in a stadium", "underwater",
    "in a living room",
)  # fmt: skip
SEEN = ("", "a close-up of ", "a wide shot of ", "an aerial view of ", "a black and white shot of ")


def descriptions(n: int = 300, seed: int = 0) -> list[str]:
    """``n`` different scene descriptions, the same for a given ``seed``."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        text = (
            f"{SEEN[rng.integers(len(SEEN))]}{WHO[rng.integers(len(WHO))]} {DOING[rng.integers(len(DOING))]} "
            f"{WHERE[rng.integers(len(WHERE))]}"
        )
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out
