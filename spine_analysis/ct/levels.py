"""Names of vertebra labels in CT label maps."""
from __future__ import annotations

#: VerSe vertebra numbering (also used by the VerSe 2019/2020 label maps).
VERSE_LEVEL_NAMES: dict[int, str] = {
    **{i: f"C{i}" for i in range(1, 8)},
    **{i + 7: f"T{i}" for i in range(1, 13)},
    **{i + 19: f"L{i}" for i in range(1, 7)},
    26: "sacrum",
    28: "T13",
}
