"""What the listing commands print: fixed-width tables as fluxctl printed them.

Place in the flow: `workloads` (list-workloads, list-images) and
`imagerelease` (the changes a release makes) format their rows here. What
this module does NOT do: choose the rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]], no_headers: bool = False) -> str:
    """Columns padded to their widest cell, two spaces apart; no trailing spaces.

    `no_headers` (``--no-headers``) leaves the header line out; the columns keep their widths.
    """
    table = [list(headers), *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table]
    return "\n".join(lines[1:] if no_headers else lines) + "\n"
