"""Scores to hits: a query's score for every frame (``scoring``), the de-duplicated top frames
(``ranking``), moments around them, and the archive index for libraries too large to scan (``ann``)."""
