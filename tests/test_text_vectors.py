"""A repeated search reads its query's vector from the library's text-vector cache: no torch, no
model; a new text, or re-saved weights, are encoded by the model as before."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from clip_search import config
from clip_search.cli import main
from tests.conftest import FLOWER

REPEAT = """
import sys, json
sys.path.insert(0, {root!r})
from clip_search.cli import main
code = main(["search", {query!r}, "--library", {lib!r}, "--model", {model!r}, "--json"])
print(json.dumps({{"code": code, "torch": "torch" in sys.modules, "transformers": "transformers" in sys.modules}}))
"""


def _search(lib: str, model: str, query: str) -> tuple[dict, list]:
    script = REPEAT.format(root=str(config.PROJECT_DIR), lib=lib, model=model, query=query)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    *hits, state = out.stdout.strip().splitlines()
    return json.loads(state), json.loads("\n".join(hits))


def test_a_repeated_search_loads_neither_torch_nor_the_model(tmp_path, tiny_clip_dir):
    lib, model = str(tmp_path / "lib"), str(tiny_clip_dir)
    assert main(["index", str(FLOWER), "--library", lib, "--model", model]) == 0
    first, hits = _search(lib, model, "a red flower opening")
    assert first == {"code": 0, "torch": True, "transformers": True}  # cold: the model encodes the text
    again, same = _search(lib, model, "a red flower opening")
    assert again == {"code": 0, "torch": False, "transformers": False} and same == hits
    other, _ = _search(lib, model, "a bee on a petal")  # a new text is encoded, as before
    assert other["torch"]


def test_cut_queries_keep_their_note_and_re_saved_weights_are_encoded_again(tmp_path, tiny_clip_dir, capsys):
    import os
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_clip_dir, model)
    lib = str(tmp_path / "lib")
    assert main(["index", str(FLOWER), "--library", lib, "--model", str(model)]) == 0
    long = "a red flower " * 60
    for _ in range(2):
        capsys.readouterr()
        assert main(["search", long, "--library", lib, "--model", str(model)]) == 0
        assert "longer than" in capsys.readouterr().err  # said from the cache too
    from clip_search.encoders import text_cache as text_vectors

    before = text_vectors.model_key(str(model))
    weights = next(model.glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert text_vectors.model_key(str(model)) != before  # other weights: other vectors


def test_sentence_vectors_are_kept_for_the_next_run_so_it_loads_no_sentence_model(tmp_path, monkeypatch):
    """Tag and dialogue matching embed texts with MiniLM; a text embedded once is kept on disk, so
    the next process (a repeated evaluation, a search) reads it and never imports the model."""
    from tagging import text_embed

    monkeypatch.setenv("FRAMESEARCH_CACHE", str(tmp_path / "cache"))
    texts = [f"a ship at sea ({tmp_path.name})", f"help me Popeye ({tmp_path.name})"]  # never embedded before
    first = text_embed.embed(texts)
    text_embed._cache.clear()  # as in a new process: nothing in memory

    def no_model():
        raise AssertionError("the sentence model was loaded for texts kept on disk")

    monkeypatch.setattr(text_embed, "sentence_model", no_model)
    assert np.array_equal(text_embed.embed(texts), first)
    monkeypatch.setenv("FRAMESEARCH_CACHE", "")  # not kept: asked of the model again
    text_embed._cache.clear()
    with pytest.raises(AssertionError, match="sentence model was loaded"):
        text_embed.embed(texts)
