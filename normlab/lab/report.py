"""The HTML report: ``write_report(document, out)`` writes ``out/index.html`` from the results document.

The page is one self-contained file (inline CSS, no script, nothing fetched
from the network) next to the figures: a verdict table on top (claim,
published anchor, our measurement, verdict), one section per experiment
(claim, anchor, the criteria with their outcome per seed, the measurement,
how it was measured, the figures, the numbers), then the extra sections.

Extra sections (after the experiments, by ``order``) are functions in
modules of ``normlab/lab/sections/`` decorated with ``@section(title, order)``;
each receives the results document and returns an HTML fragment. Build the
fragment with ``text_html`` (escapes, paragraphs, `code`) and
``experiment_link(id)``; anything taken from the document must be escaped.
"""
from __future__ import annotations

import html
import importlib
import os
import pkgutil
import re
from pathlib import Path
from typing import Callable

__all__ = ["write_report", "section", "sections", "text_html", "experiment_link", "VERDICT_LABELS"]

VERDICT_LABELS = {"reproduced": "reproduced", "not_reproduced": "not reproduced", "inconclusive": "inconclusive",
                  "failed": "failed"}

_sections: list[tuple[float, str, Callable[[dict], str]]] = []


def section(title: str, order: float = 100.0):
    """Decorator: add ``render(document) -> html`` as a report section titled ``title`` (ascending ``order``)."""
    def add(render):
        if not any(existing is render for _, _, existing in _sections):
            _sections.append((float(order), title, render))
        return render

    return add


def sections() -> list[tuple[float, str, Callable[[dict], str]]]:
    """The registered extra sections in page order (importing ``normlab.lab.sections``' modules first)."""
    package = importlib.import_module("normlab.lab.sections")
    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{module.name}")
    return sorted(_sections, key=lambda entry: (entry[0], entry[1]))


def text_html(text: str) -> str:
    """Plain text as HTML: escaped, blank lines start paragraphs, `backticks` become <code>."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text or "") if p.strip()]
    out = []
    for paragraph in paragraphs:
        escaped = html.escape(" ".join(paragraph.split()))
        out.append("<p>" + re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped) + "</p>")
    return "\n".join(out)


def experiment_link(name: str, label: str | None = None) -> str:
    """A link to experiment ``name``'s section of the page."""
    return f'<a href="#{html.escape(name)}">{html.escape(label or name)}</a>'


def _badge(verdict: str) -> str:
    return f'<span class="verdict {html.escape(verdict)}">{html.escape(VERDICT_LABELS.get(verdict, verdict))}</span>'


def _state(record: dict) -> str:
    return "failed" if record.get("status") == "failed" else record.get("verdict", "inconclusive")


def _number(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #1d1d1f; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2.2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.banner { padding: 0.6em 1em; border-radius: 6px; background: #eef3fb; margin: 1em 0; }
.banner.quick { background: #fff6e0; }
table { border-collapse: collapse; width: 100%; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.35em 0.5em; vertical-align: top; text-align: left; }
th { background: #f4f4f6; }
#verdicts td:first-child { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.verdict { font-weight: 600; padding: 0.1em 0.45em; border-radius: 4px; white-space: nowrap; }
.reproduced { background: #d9f2dd; color: #165c26; } .not_reproduced { background: #fadbd8; color: #8a1c12; }
.inconclusive { background: #fff0c2; color: #6b5200; } .failed { background: #444; color: #fff; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
code { background: #f3f3f3; padding: 0 0.2em; border-radius: 3px; }
.meta { color: #555; font-size: 0.9em; }
"""


def _verdict_table(experiments: list[dict]) -> str:
    rows = []
    for record in experiments:
        measured = record.get("measurement") or ("the run failed; see its section" if _state(record) == "failed"
                                                 else "")
        rows.append(f"<tr><td>{experiment_link(record['id'])}</td><td>{html.escape(record['claim'])}</td>"
                    f"<td>{html.escape(record['anchor'])}</td><td>{html.escape(measured)}</td>"
                    f"<td>{_badge(_state(record))}</td></tr>")
    return ('<table id="verdicts"><thead><tr><th>experiment</th><th>claim</th><th>published anchor</th>'
            "<th>our measurement</th><th>verdict</th></tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>")


def _checks_table(record: dict) -> str:
    rows = []
    for check in record.get("checks", []):
        per = check["holds_per_seed"]
        rows.append(f"<tr><td>{html.escape(check['sentence'])}</td>"
                    f"<td class=\"num\">{sum(per)} of {len(per)}</td>"
                    f"<td>{'yes' if check['holds_on_mean'] else 'no'}</td><td>{_badge(check['verdict'])}</td></tr>")
    if not rows:
        return ""
    return ("<table><thead><tr><th>criterion (fixed in code before running)</th><th>holds in seeds</th>"
            "<th>holds on the mean</th><th>verdict</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _effect_table(record: dict) -> str:
    effect, spread = record.get("effect") or {}, record.get("effect_sd") or {}
    per_seed = record.get("effect_per_seed") or []
    if not effect:
        return ""
    seeds = record.get("seeds", [])
    head = "".join(f"<th>seed {html.escape(str(s))}</th>" for s in seeds) if len(per_seed) == len(seeds) else ""
    rows = []
    for key, value in effect.items():
        cells = "".join(f'<td class="num">{_number(e.get(key))}</td>' for e in per_seed) if head else ""
        sd = spread.get(key)
        rows.append(f"<tr><td><code>{html.escape(key)}</code></td><td class=\"num\">{_number(value)}</td>"
                    f"<td class=\"num\">{_number(sd) if sd is not None else ''}</td>{cells}</tr>")
    return (f"<details><summary>all numbers (effect, mean over seeds)</summary><table><thead><tr><th>effect</th>"
            f"<th>mean</th><th>sd</th>{head}</tr></thead><tbody>" + "".join(rows) + "</tbody></table></details>")


def _experiment_section(record: dict, quick: bool) -> str:
    state = _state(record)
    parts = [f'<section id="{html.escape(record["id"])}">',
             f"<h2>{html.escape(record.get('title') or record['id'])} <small>({html.escape(record['id'])})</small> "
             f"{_badge(state)}</h2>",
             f"<p><b>Claim.</b> {html.escape(record['claim'])}</p>",
             f"<p><b>Published anchor.</b> {html.escape(record['anchor'])}</p>"]
    if record.get("measurement"):
        parts.append(f"<p><b>Our measurement.</b> {html.escape(record['measurement'])}</p>")
    parts.append(_checks_table(record))
    if record.get("discussion"):
        parts.append("<h3>What it shows</h3>" + text_html(record["discussion"]))
    for path, caption in zip(record.get("figures", []), record.get("captions", [])):
        parts.append(f'<figure><img src="{html.escape(path)}" alt="{html.escape(caption)}">'
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append("<h3>How it was measured</h3>" + text_html(record.get("method", "")))
    size = ", ".join(f"{k} {v}" for k, v in (record.get("size") or {}).items())
    parts.append(f'<p class="meta">{"Quick" if quick else "Full"} run: seeds {html.escape(str(record["seeds"]))}; '
                 f"{html.escape(size)}; tasks took {record.get('task_seconds', 0):.1f} s "
                 f"({record.get('task_cpu_seconds', 0):.1f} s of CPU); "
                 f"module <code>{html.escape(record.get('module', ''))}</code>.</p>")
    parts.append(_effect_table(record))
    if state == "failed":
        parts.append("<p><b>This experiment failed</b>; its traceback:</p>"
                     f"<pre>{html.escape(record.get('traceback', ''))}</pre>")
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def render(document: dict) -> str:
    """The whole page as a string."""
    experiments = document["experiments"]
    quick = bool(document.get("quick"))
    counts = {}
    for record in experiments:
        counts[_state(record)] = counts.get(_state(record), 0) + 1
    tally = ", ".join(f"{n} {VERDICT_LABELS[v]}" for v, n in sorted(counts.items()))
    provenance = document.get("provenance", {})
    if quick:
        mode = ("<b>Quick run</b>: fewer seeds and steps than the full run. A criterion that fails here is "
                "reported <i>inconclusive</i>, never <i>not reproduced</i>: the quick budget cannot refute a "
                "published result. Run without <code>--quick</code> for the verdicts that count.")
    else:
        mode = "<b>Full run</b>: every experiment at its full size and seeds."
    body = [
        "<h1>normlab lab report</h1>",
        f'<p class="meta">{len(experiments)} experiments: {html.escape(tally)}. Made by '
        f"<code>{html.escape(str(provenance.get('command', '')))}</code> on "
        f"{html.escape(str(provenance.get('started', '')))}"
        f" in {provenance.get('wall_seconds', 0):.0f} s. Numbers: <a href=\"results.json\">results.json</a>.</p>",
        f'<div class="banner{" quick" if quick else ""}">{mode} Criteria are fixed in code before running; a claim '
        "counts as reproduced when its criterion holds on the mean effect and in at least 80 % of the seeds.</div>",
        _verdict_table(experiments),
    ]
    body += [_experiment_section(record, quick) for record in experiments]
    for _, title, render_section in sections():
        anchor = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        body.append(f'<section id="{anchor}"><h2>{html.escape(title)}</h2>\n{render_section(document)}</section>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>normlab lab report{' (quick)' if quick else ''}</title><style>{_STYLE}</style></head>\n"
            "<body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(document: dict, out) -> Path:
    """Write ``out/index.html`` (atomically) and return its path."""
    path = Path(out) / "index.html"
    temporary = path.with_name("index.html.tmp")
    temporary.write_text(render(document), encoding="utf-8")
    os.replace(temporary, path)
    return path
