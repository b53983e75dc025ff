"""Tests of the offline HTML scan report (llmct.scan.report) on synthetic scan folders."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from llmct.scan.report import FILES, build_payload, load_scan, match_reference, write_report
from tests.fixtures.make_scan_fixture import XSS, make_scan

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "outputs" / "report_screenshot.png"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# data-chart names of the SVG charts a complete scan must render.
EXPECTED_CHARTS = {
    "heatmap",
    "curve-cosine",
    "curve-cosine_centered",
    "curve-mae",
    "curve-jaccard",
    "spread-spread",
    "spread-spread_centered",
    "nearest-acc",
    "roles-cosine",
    "roles-cosine_centered",
    "fading-cosine",
    "fading-cosine_centered",
}


@pytest.fixture(scope="module")
def scan_dir(tmp_path_factory) -> Path:
    return make_scan(tmp_path_factory.mktemp("scan"))


@pytest.fixture(scope="module")
def page(scan_dir) -> str:
    return write_report(scan_dir, figures=False).read_text(encoding="utf-8")


def embedded_data(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="scan-data">(.*?)</script>', page, re.S)
    assert match, "embedded JSON not found"
    return json.loads(match.group(1))


def test_report_written(scan_dir, page):
    assert (scan_dir / "report.html").exists()
    assert page.startswith("<!DOCTYPE html>")
    data = embedded_data(page)
    assert data["missing"] == []
    assert set(data["grid"]) == {"cosine", "cosine_centered", "mae", "jaccard"}
    assert len(data["grid"]["cosine"]["hidden_in"]) == len(data["snapshots"])


def test_no_external_resources(page):
    lowered = page.lower()
    assert not re.search(r"""(src|href|action|poster)\s*=\s*["']?\s*(https?:)?//""", lowered)
    assert not re.search(r"""url\(\s*["']?\s*(https?:)?//""", lowered)
    assert "@import" not in lowered and "<link" not in lowered and "<iframe" not in lowered
    assert not re.search(r"<script[^>]*\ssrc\s*=", lowered)
    assert "fetch(" not in page and "xmlhttprequest" not in lowered


def test_user_text_escaped(page):
    assert XSS not in page
    assert "alert(2)" not in page.replace("alert(2)\\u003c", "")  # only inside escaped JSON
    # exactly our three script elements: error hook, JSON data, report code
    assert len(re.findall(r"<script\b", page)) == 3
    assert "<title>CT scan: Rollercoaster &lt;script&gt;" in page
    data = embedded_data(page)  # escaping is lossless
    assert XSS in data["messages"][3]["content"] and XSS in data["run"]["scenario"]["name"]
    assert any(tok == "</script>" for layer in data["logit_lens"]["0"] for tok, _ in layer["top"])


def test_missing_logit_lens(tmp_path):
    out = make_scan(tmp_path, missing=("logit_lens.csv",))
    data = embedded_data(write_report(out, figures=False).read_text(encoding="utf-8"))
    assert data["logit_lens"] is None and data["missing"] == ["logit_lens.csv"]
    assert data["grid"] is not None


@pytest.mark.parametrize("keep", [(), ("run.json",), ("metrics.csv",), ("spread.csv",)])
def test_partial_runs_render(tmp_path, keep):
    out = make_scan(tmp_path, missing=tuple(f for f in FILES if f not in keep))
    data = embedded_data(write_report(out, figures=True).read_text(encoding="utf-8"))
    assert sorted(data["missing"]) == sorted(f for f in FILES if f not in keep)


def test_derived_views(scan_dir):
    scan = load_scan(scan_dir)
    payload = build_payload(scan)
    assert payload["focus"]["source"] in scan.sources and payload["focus"]["layer"] in scan.layers
    user_turns = [s["i"] for s in payload["snapshots"] if s["role"] == "user"]
    assert payload["fading"]["turns"] == user_turns  # every fixture user turn is tagged
    means = payload["role_means"]["cosine"]["hidden_in"]
    assert len(means["user"]) == len(scan.layers) == len(means["assistant"])


def test_figures(tmp_path):
    out = make_scan(tmp_path, n_layers=4)
    write_report(out)
    names = {p.name for p in (out / "figures").iterdir()}
    stems = ("spread_map", "user_vs_assistant", "final_snapshot_heatmap", "fading_memory")
    assert names == {f"{s}.{ext}" for s in stems for ext in ("png", "svg")}


def test_match_reference():
    labels = ["love", "joy", "scared"]
    assert match_reference("Joy", labels) == "joy"
    assert match_reference("Ecstatic Joy", labels) == "joy"
    assert match_reference("Mixed/Unease", labels) is None
    assert match_reference("", labels) is None


# ------------------------------------------------------------------------------ browser


class ChartCounter(HTMLParser):
    """Collects, per <svg class="chart" data-chart=...>, how many path/rect elements it holds."""

    def __init__(self):
        super().__init__()
        self.charts: dict[str, int] = {}
        self.current: str | None = None
        self.depth = 0
        self.errors_text: list[str] = []
        self.in_errors = False
        self.rendered = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.rendered = a.get("data-rendered") == "true"
        if tag == "pre" and a.get("id") == "errors":
            self.in_errors = True
        if self.current is not None:
            self.depth += tag == "svg"
            self.charts[self.current] += tag in ("path", "rect")
        elif tag == "svg" and "chart" in (a.get("class") or "").split():
            self.current, self.depth = a.get("data-chart", "?"), 0
            self.charts[self.current] = 0

    def handle_endtag(self, tag):
        if tag == "pre":
            self.in_errors = False
        if self.current is not None and tag == "svg":
            if self.depth == 0:
                self.current = None
            self.depth -= 1

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_data(self, data):
        if self.in_errors:
            self.errors_text.append(data)


def chromium(url: str, *args: str) -> subprocess.CompletedProcess:
    """Run headless chromium (fresh profile, no network services) on ``url``."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=5000",
                *args,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )


# Drives every control of the page once (all select options, toggles, buttons, hovers).
EXERCISE_JS = """<script>
(function () {
  var n = 0, ev = function (t) { return new MouseEvent(t, {clientX: 300, clientY: 300, bubbles: true}); };
  document.querySelectorAll("select").forEach(function (s) {
    for (var i = 0; i < s.options.length; i++) { s.selectedIndex = i; s.dispatchEvent(new Event("change")); n++; }
  });
  document.querySelectorAll(".seg button, button.btn").forEach(function (b) { b.click(); n++; });
  document.querySelectorAll("svg.chart rect, .legend .item").forEach(function (r) {
    ["mouseenter", "mousemove", "mouseleave"].forEach(function (t) { r.dispatchEvent(ev(t)); });
    n++;
  });
  document.body.setAttribute("data-exercised", String(n));
})();
</script>"""


def render_in_browser(html_path: Path) -> tuple[ChartCounter, str]:
    """Load a page headless; fail on any console message or entry in the page's error box."""
    res = chromium(html_path.resolve().as_uri(), "--enable-logging=stderr", "--v=0", "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    # The report never logs, so any console line from the page is an error (JS exception,
    # blocked network request, CSP violation).
    console = [line for line in res.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, "\n".join(console)
    dom = ChartCounter()
    dom.feed(res.stdout)
    assert dom.rendered, "report JS did not finish"
    assert not "".join(dom.errors_text).strip(), "".join(dom.errors_text)
    return dom, res.stdout


@pytest.mark.browser
@pytest.mark.skipif(
    CHROMIUM is None, reason="headless chromium not installed (apt-get install -y chromium)"
)
def test_report_in_browser(tmp_path):
    report = write_report(make_scan(tmp_path / "scan", n_layers=36), figures=False)
    dom, text = render_in_browser(report)
    assert set(dom.charts) == EXPECTED_CHARTS
    empty = [name for name, n in dom.charts.items() if n < 2]
    assert not empty, f"charts without marks: {empty}"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # user text shown as text
    assert "<script>alert(1)" not in text

    exercised = tmp_path / "exercised.html"
    exercised.write_text(report.read_text().replace("</body>", EXERCISE_JS + "</body>"))
    _, text = render_in_browser(exercised)
    assert int(re.search(r'data-exercised="(\d+)"', text).group(1)) > 100

    # a partial run (no metrics, no logit lens) renders what it has, without errors
    missing = ("metrics.csv", "layer_map.csv", "logit_lens.csv")
    partial = write_report(make_scan(tmp_path / "partial", missing=missing), figures=False)
    dom, text = render_in_browser(partial)
    assert {"spread-spread", "roles-cosine"} <= set(dom.charts)
    assert "Missing: " + ", ".join(missing) in text

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shot = chromium(
        report.resolve().as_uri(), f"--screenshot={SCREENSHOT}", "--window-size=1400,2400"
    )
    assert shot.returncode == 0 and SCREENSHOT.stat().st_size > 10_000
