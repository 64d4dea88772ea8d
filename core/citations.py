"""Which of the passages given to a model its answer used.

The prompt numbers the passages and asks the model to cite them like ``[1]``
(``core.services.files.Context.prompt``). An answer's sources are the passages it cites, once
each, in the order first cited; an answer that cites none has none (never "all that were
retrieved"). A number outside the list (``[7]`` of five, ``a[0]`` in code) is not a citation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# [1], [1, 3], [2; 4], [1][2]; not [1.5] or [x].
CITATION = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")


def cited(sources: Sequence[str], answer: str) -> list[str]:
    """``sources[n - 1]`` is where passage ``[n]`` came from; what ``answer`` cites of them."""
    found: list[str] = []
    for match in CITATION.finditer(answer):
        for number in re.split(r"\s*[,;]\s*", match.group(1)):
            n = int(number)
            if 1 <= n <= len(sources) and sources[n - 1] not in found:
                found.append(sources[n - 1])
    return found
