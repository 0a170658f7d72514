"""The report's last section: the command, versions, seeds and thread count behind every number."""
from __future__ import annotations

import html

from normlab.lab.report import section, text_html


@section("Reproduce these numbers", order=1000)
def reproduce(document: dict) -> str:
    provenance = document.get("provenance", {})
    versions = ", ".join(f"{name} {version}" for name, version in provenance.get("versions", {}).items())
    seeds = "; ".join(f"{name}: {list(values)}" for name, values in provenance.get("seeds", {}).items())
    text = (f"Run `{provenance.get('command', '')}` from a checkout at commit "
            f"`{provenance.get('git_commit') or 'unknown'}`. Each task ran in its own worker process with "
            f"{provenance.get('threads_per_worker', '?')} thread(s) (the variables "
            f"{', '.join(sorted(provenance.get('thread_variables', {})))} set to that count), "
            f"{provenance.get('jobs', '?')} worker(s) at a time, on {provenance.get('platform', '?')} with "
            f"{provenance.get('cpu_count', '?')} CPUs. The same command at the same thread count gives the same "
            "numbers: every task seeds its own generators from its seed, whichever worker runs it.")
    return (text_html(text) + f"<p><b>Versions.</b> {html.escape(versions)}</p>"
            f"<p><b>Seeds.</b> {html.escape(seeds)}</p>")
