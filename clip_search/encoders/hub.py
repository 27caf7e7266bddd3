"""Files of a checkpoint, from a local folder or the Hugging Face hub, without hanging offline."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from pathlib import Path

from clip_search.errors import ModelLoadError


def hub_resolvable(timeout: float = 2.0) -> bool:
    """Whether the hub's name resolves (a DNS lookup only; nothing is sent to the hub)."""
    found: list[bool] = []

    def look() -> None:
        try:
            socket.getaddrinfo("huggingface.co", 443)
            found.append(True)
        except OSError:
            found.append(False)

    worker = threading.Thread(target=look, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(found and found[0])


def offline_for(model_id: str) -> bool:
    """True when only the local cache can serve ``model_id`` (no network; then the hub client
    would retry for half a minute before giving up)."""
    return not Path(model_id).expanduser().exists() and not os.environ.get("HF_HUB_OFFLINE") and not hub_resolvable()


def quiet() -> None:
    """No progress bars or warnings from the hub libraries (the CLI and dashboard show their own)."""
    from transformers.utils import logging as hf_logging  # transformers loads only when a model is used

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)


def read_json(model_id: str, name: str, offline: bool = False) -> dict | None:
    """A JSON file of a checkpoint (local folder or hub repo), or None where it has none."""
    local = Path(model_id).expanduser() / name
    if local.is_file():
        return json.loads(local.read_text())
    if Path(model_id).expanduser().is_dir():
        return None
    try:
        from huggingface_hub import hf_hub_download  # the hub client loads only when a model is fetched

        return json.loads(Path(hf_hub_download(model_id, name, local_files_only=offline)).read_text())
    except Exception:  # noqa: BLE001 - no such file (or no network): the caller decides
        return None


def from_pretrained(cls, model_id: str, offline: bool, **kwargs):
    """``cls.from_pretrained`` with one-sentence errors (ModelLoadError)."""
    try:
        return cls.from_pretrained(model_id, local_files_only=offline, **kwargs)
    except Exception as e:  # noqa: BLE001 - OSError offline/missing files, ValueError wrong type, ...
        raise ModelLoadError(f"'{model_id}' ({first_line(e)})") from None


def first_line(e: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (or its type), at most ``limit`` characters, cut at
    a word and marked with an ellipsis where it is cut."""
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    if len(line) <= limit:
        return line
    return line[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"
