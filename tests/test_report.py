"""report/: the HTML audit report shows every section, the results' own numbers, escapes what it is
given, needs no network, and really works in a browser (players decode, figures load, no errors)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from freqrex_audit.report import render_index, render_report
from freqrex_audit.report.html import fmt_number

from .report_fixtures import build_results

XSS = "<script>alert(1)</script>"
ARTIFACTS = Path(__file__).resolve().parents[1] / "reports" / "test-artifacts"


@pytest.fixture(scope="module")
def results_path(tmp_path_factory) -> Path:
    return build_results(tmp_path_factory.mktemp("run") / "20250102-030405")


@pytest.fixture(scope="module")
def results(results_path) -> dict:
    return json.loads(results_path.read_text())


@pytest.fixture(scope="module")
def report(results_path) -> tuple[Path, str]:
    out = render_report(results_path)
    return out, out.read_text(encoding="utf-8")


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text of elements with a class or id."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict]]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


def cells(html: str, css_class: str) -> list[str]:
    return re.findall(rf'<td class="{css_class}">([^<]*)</td>', html)


def test_every_section_is_there(report, results):
    _, html = report
    for needle in ('id="verdict"', 'id="gates"', "Table 1", "Table 2", "Table 3", "Table 4", "Figure 2",
                   "Figure 3", "Inverse classification", 'id="transferability"', 'id="run-facts"',
                   'id="phases"', 'id="trust-remote-code-warning"', "Skipped and not analysed",
                   'class="card sample"', 'id="flat-earthers"'):
        assert needle in html, needle
    for name in results["specs"]:
        assert f"Spec: {name}" in html
    skipped = [s for spec in results["specs"].values() for s in spec["samples"] if s["status"] == "skipped"]
    assert skipped and all(s["reason"] in html for s in skipped)
    for spec in results["specs"].values():
        assert spec["model"]["fingerprint"] in html


def test_numbers_are_the_results_numbers(report, results):
    _, html = report
    from freqrex_audit.report.html import gate_rows

    rows = gate_rows(results["gates"])
    assert cells(html, "value") == [fmt_number(r["shown"]) if not isinstance(r["shown"], str) else r["shown"]
                                    for r in rows]
    aggregates = [g for g in results["gates"] if g["item"].endswith("[aggregate]")]
    assert [fmt_number(g["value"]) for g in aggregates] == [
        fmt_number(r["shown"]) for r in rows if r["item"].endswith("[aggregate]") and "per clip" not in r["metric"]]
    per_clip = [g for g in results["gates"] if not g["item"].endswith("[aggregate]")]
    assert sum(int(r["shown"].split("/")[1].split()[0]) for r in rows if "per clip" in r["metric"]) == len(per_clip)
    assert html.count('class="fail"') >= sum(not g["passed"] for g in results["gates"])
    rates = cells(html, "success-rate")
    assert rates == [fmt_number(s["tables"]["attacks"]["success_rate"]) for s in results["specs"].values()]
    assert cells(html, "single-rate") == [fmt_number(s["tables"]["attacks"]["single_rate"])
                                          for s in results["specs"].values()]
    attacked = [s for spec in results["specs"].values() for s in spec["samples"]
                if s["fourier_attack"] and s["fourier_attack"]["success"]]
    assert attacked, "the fixture should contain at least one successful attack"
    snrs = re.findall(r'<span class="snr">([^<]*)</span>', html)
    assert fmt_number(attacked[0]["fourier_attack"]["snr_db"]) in snrs
    t = results["transferability"]["sufficient"]["alpha"]
    assert f"<td>{fmt_number(t[0][1], 2)}</td>" in html


def test_self_contained_and_escaped(report, results_path, tmp_path):
    _, html = report
    for tag, attrs in tags(html):
        for attr in ("src", "href"):
            value = attrs.get(attr) or ""
            assert not re.match(r"\s*(https?:|//)", value, re.I), f"external {attr} on <{tag}>: {value[:80]}"
    assert "<script" not in html.lower(), "the report needs no JavaScript"
    audio = [a for t, a in tags(html) if t == "audio"]
    assert audio and all(a["src"].startswith("data:audio/flac;base64,") for a in audio)

    # a hostile spec name and label are shown as text
    run = tmp_path / "xss"
    run.mkdir()
    text = results_path.read_text().replace('"treble"', json.dumps(XSS)).replace('"tones-b"', json.dumps(XSS))
    (run / "results.json").write_text(text)
    shutil.copy(results_path.with_suffix(".npz"), run / "results.npz")
    hostile = render_report(run / "results.json", max_sample_cards=1).read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hostile
    assert "<script" not in hostile.lower()
    assert not [t for t, _ in tags(hostile) if t == "script"]


def test_size_caps_are_stated(results_path, tmp_path):
    html = render_report(results_path, tmp_path / "small.html", max_sample_cards=1,
                         max_audio_bytes=30_000).read_text(encoding="utf-8")
    assert html.count('class="card sample"') == 2  # one per spec
    assert "left out" in html and "at most 1 per spec" in html
    assert "audio budget reached" in html and "player(s) left out" in html


def test_index_lists_runs(report, results_path):
    index = render_index(results_path.parent.parent).read_text(encoding="utf-8")
    run = results_path.parent.name
    assert run in index and f'href="{run}/report.html"' in index
    assert "FAIL" in index or "PASS" in index


def test_cli_report_rerenders(results_path, tmp_path):
    from freqrex_audit.cli import main

    out = tmp_path / "cli.html"
    assert main(["report", str(results_path), "--out", str(out), "--max-cards", "0"]) == 0
    assert 'id="verdict"' in out.read_text(encoding="utf-8")
    assert main(["report", str(tmp_path / "missing.json")]) == 2


# ------------------------------------------------------------------------------------------ browser

PROBE_HEAD = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(
  e.message || ("resource failed: <" + (e.target && e.target.tagName) + ">")), true);
window.addEventListener("unhandledrejection", e => window.__errors.push("rejection: " + e.reason));
const __consoleError = console.error;
console.error = (...args) => { window.__errors.push(args.join(" ")); __consoleError(...args); };
</script>"""
PROBE_TAIL = """<script>
function __report(audio, partial) {
  if (document.getElementById("probe")) return;
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({
    partial: partial, audio: audio,
    images: [...document.images].map(i => i.complete ? i.naturalWidth : -1),
    errors: window.__errors, scripts: document.scripts.length});
  document.body.appendChild(out);
}
window.addEventListener("load", () => {
  const audios = [...document.querySelectorAll("audio")];
  setTimeout(() => __report(audios.map(a => a.duration || 0), true), 20000);
  Promise.all(audios.map(a => new Promise(done => {
    if (a.readyState >= 1) return done(a.duration);
    a.addEventListener("loadedmetadata", () => done(a.duration));
    a.addEventListener("error", () => done(-1));
    a.load();
  }))).then(d => __report(d, false));
});
</script>"""


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium(binary: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="freqrex-chromium-") as profile:
        return subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
             "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=timeout)


def test_report_works_in_a_real_browser(report):
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no chromium binary on PATH (CI installs Debian's `chromium`: apt-get install -y chromium)")
    out, html = report
    probed = out.with_name("probed.html")
    probed.write_text(html.replace("<head>", "<head>" + PROBE_HEAD, 1).replace("</body>", PROBE_TAIL + "</body>", 1),
                      encoding="utf-8")
    done = chromium(binary, "--virtual-time-budget=30000", "--dump-dom", probed.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"probe did not report; chromium rc={done.returncode}, stderr tail: {done.stderr[-2000:]}"
    verdict = json.loads(found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                         .replace("&amp;", "&"))
    n_audio = html.count("<audio ")
    assert not verdict["partial"], f"some <audio> never loaded metadata: {verdict['audio']}"
    assert len(verdict["audio"]) == n_audio > 0
    assert all(d > 0 for d in verdict["audio"]), verdict["audio"]
    assert len(verdict["images"]) == html.count("<img ") > 0
    assert all(w > 0 for w in verdict["images"]), verdict["images"]
    assert verdict["errors"] == []
    assert verdict["scripts"] == 2  # the probe's own two; the report has none

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    done = chromium(binary, "--hide-scrollbars", "--window-size=1280,2400", "--virtual-time-budget=5000", f"--screenshot={shot}", out.as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000, done.stderr[-2000:]
