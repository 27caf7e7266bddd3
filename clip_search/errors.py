"""The few errors a user can cause; each carries one sentence that says what to do."""


class FrameSearchError(Exception):
    """Base class: the message is meant to be shown to the user as it is."""


class VideoError(FrameSearchError):
    """A file that cannot be read as a video (empty, truncated, not a video, audio only)."""


class ModelLoadError(FrameSearchError):
    """The CLIP model could not be loaded (offline, no weights, wrong path). The message ends with the
    command line's advice; ``why`` is the reason alone, for a front end that gives its own advice."""

    def __init__(self, message: str, why: str | None = None) -> None:
        super().__init__(message)
        self.why = why or message


class FilmNotFound(FrameSearchError):
    """A film reference that matches nothing in the library."""


class DownloadError(FrameSearchError):
    """A video URL that could not be downloaded."""


def one_line(text: object) -> str:
    """``text`` as one printable line: a newline, tab or other control character in a file name or a
    message is shown escaped (``\\n``), so an error is always exactly one line."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(text))
