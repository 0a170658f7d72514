"""Checks of a lab report folder shared by the lab's tests: results.json's schema, figures, index.html's links."""
from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

VERDICTS = {"reproduced", "not_reproduced", "inconclusive"}
REQUIRED = ("id", "claim", "anchor", "criterion", "seeds", "effect", "verdict", "figures")


def check_results(out: Path) -> dict:
    """Assert DIR/results.json has the issue's schema and every figure it names exists; return the document."""
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert isinstance(document["quick"], bool)
    assert isinstance(document["experiments"], list) and document["experiments"]
    for record in document["experiments"]:
        missing = [key for key in REQUIRED if key not in record]
        assert not missing, f"{record.get('id')}: missing {missing}"
        for key in ("id", "claim", "anchor", "criterion"):
            assert isinstance(record[key], str) and record[key].strip(), (record["id"], key)
        assert isinstance(record["seeds"], list) and record["seeds"]
        assert all(isinstance(seed, int) for seed in record["seeds"])
        assert isinstance(record["effect"], dict)
        for key, value in record["effect"].items():
            assert value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)), (key, value)
        assert record["verdict"] in VERDICTS
        assert record["status"] in ("ok", "failed")
        if record["status"] == "ok":
            assert record["effect"], record["id"]
            assert len(record["checks"]) >= 1
            for check in record["checks"]:
                assert check["verdict"] in VERDICTS
                assert len(check["holds_per_seed"]) == len(record["seeds"])
        else:
            assert "Traceback" in record["traceback"] or "worker" in record["traceback"]
        assert isinstance(record["figures"], list)
        for figure in record["figures"]:
            path = out / figure
            assert not Path(figure).is_absolute() and path.is_file(), figure
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure
    provenance = document["provenance"]
    for key in ("command", "versions", "threads_per_worker", "seeds", "jobs"):
        assert key in provenance, key
    return document


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids, self.hrefs, self.images = set(), [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and "href" in attrs:
            self.hrefs.append(attrs["href"])
        if tag == "img":
            self.images.append(attrs.get("src"))


def broken_links(out: Path, hrefs, ids) -> list[str]:
    """The links of index.html that lead nowhere: a missing #anchor, a missing file, or any network address."""
    broken = []
    for href in hrefs:
        if href.startswith("#"):
            if href[1:] not in ids:
                broken.append(href)
        elif "://" in href or href.startswith("//") or not (out / href.split("#")[0]).is_file():
            broken.append(href)
    return broken


def check_html(out: Path, document: dict) -> _Links:
    """Parse index.html: a verdict table row per experiment, every image a figure of results.json, no broken link."""
    page = (out / "index.html").read_text(encoding="utf-8")
    parser = _Links()
    parser.feed(page)
    assert "verdicts" in parser.ids
    for record in document["experiments"]:
        assert record["id"] in parser.ids
        assert f'href="#{record["id"]}"' in page
    figures = [f for record in document["experiments"] for f in record["figures"]]
    assert sorted(parser.images) == sorted(figures)
    assert broken_links(out, parser.hrefs, parser.ids) == []
    return parser


_PAGE_FACTS = """(() => ({
  images: [...document.images].map(i => ({src: i.getAttribute('src'), loaded: i.complete && i.naturalWidth > 0})),
  hrefs: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
  ids: [...document.querySelectorAll('[id]')].map(e => e.id),
  verdictRows: document.querySelectorAll('table#verdicts tbody tr').length,
  verdictHeader: [...document.querySelectorAll('table#verdicts thead th')].map(th => th.textContent),
}))()"""


def check_in_browser(browser, out: Path, document: dict, screenshot: Path) -> dict:
    """Load index.html in ``browser`` (tests.chromium.Browser): every figure decoded, the verdict table, no broken
    link; save the first screen to ``screenshot``. Returns what the page reported."""
    browser.open((out / "index.html").resolve().as_uri())
    facts = browser.evaluate(_PAGE_FACTS)
    figures = [f for record in document["experiments"] for f in record["figures"]]
    assert sorted(image["src"] for image in facts["images"]) == sorted(figures)
    not_loaded = [image["src"] for image in facts["images"] if not image["loaded"]]
    assert not not_loaded, f"figures the browser could not show: {not_loaded}"
    assert facts["verdictRows"] == len(document["experiments"])
    assert facts["verdictHeader"] == ["experiment", "claim", "published anchor", "our measurement", "verdict"]
    assert broken_links(out, facts["hrefs"], set(facts["ids"])) == []
    browser.screenshot(screenshot)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return facts
