"""Times as people read them."""


def fmt_time(seconds: float) -> str:
    """mm:ss.s (h:mm:ss.s past an hour), as a player shows it."""
    seconds = max(0.0, float(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h)}:{int(m):02d}:{s:04.1f}" if h else f"{int(m):02d}:{s:04.1f}"
