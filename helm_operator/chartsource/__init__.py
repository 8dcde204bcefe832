"""Chart sources: fetch charts from Helm repositories and Git, and cache them.

Place in the flow: the release reconciler's "observe" step. Each source
returns a `FetchedChart` (a local directory holding Chart.yaml plus a
revision) and raises only `ChartFetchError`, whose message is written for
the user and never holds credentials. Sources take credentials as
``(username, password)`` tuples: reading Secrets is the caller's job.

Errors::

    Exception
     ├── ChartFetchError          any failure to fetch a chart (.url, .status)
     └── ValueError
          └── ChartFileEscapes    a chartFileRef path leaves the chart directory

Modules: `helmrepo` (index.yaml repositories), `git` (mirrors and exports),
`chartfiles` (safe reads inside a chart), `cachedir` (locks, atomic unpack),
`model` (the shared types and URL redaction).
"""

from helm_operator.chartsource.chartfiles import ChartFileEscapes, read_chart_file
from helm_operator.chartsource.git import GitMirrors
from helm_operator.chartsource.helmrepo import HelmRepoCache
from helm_operator.chartsource.model import ChartFetchError, FetchedChart, redact_url

__all__ = [
    "ChartFetchError",
    "ChartFileEscapes",
    "FetchedChart",
    "GitMirrors",
    "HelmRepoCache",
    "read_chart_file",
    "redact_url",
]
