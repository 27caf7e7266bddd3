"""What the scripts that write README figures share: the machine they ran on, and replacing one
generated block of README.md between its markers (figures are generated, never retyped)."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def machine() -> str:
    """The CPU model and core count this ran on."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def replace_block(begin: str, end: str, text: str, readme: Path = README) -> None:
    """Put ``text`` (which starts with ``begin`` and ends with ``end``) in place of that block."""
    old = readme.read_text()
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(old):
        raise SystemExit(f"README.md has no {begin} ... {end} section to replace")
    readme.write_text(pattern.sub(lambda _: text, old))
