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

import numpy as np

from freqrex_audit.report import figures, render_index, render_report
from freqrex_audit.report.figure_cache import figures_cached_in
from freqrex_audit.report.html import fmt_number

from .report_fixtures import build_results

XSS = "<script>alert(1)</script>"
ARTIFACTS = Path(__file__).resolve().parents[1] / "reports" / "test-artifacts"
PAGE_HEIGHT_BUDGET_PX = 16_000
"""Two specs, three cards each, all sections: the fixture page's height in a 1400-px-wide window."""


@pytest.fixture(scope="module", autouse=True)
def render_clock():
    """Every page of this module is rendered at one fixed time, so pages compare byte for byte."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOURCE_DATE_EPOCH", "1735787045")  # 2025-01-02 03:04 UTC
        yield


def test_source_date_epoch_fixes_the_render_time(monkeypatch):
    from freqrex_audit.report.html import rendered_at

    assert rendered_at() == "2025-01-02 03:04 UTC"
    for unusable in ("", "soon", "-5", "99999999999999999999"):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", unusable)
        assert rendered_at().endswith(" UTC") and not rendered_at().startswith("2025-01-02")


@pytest.fixture(scope="module")
def results_path(tmp_path_factory) -> Path:
    return build_results(tmp_path_factory.mktemp("run") / "20250102-030405")


@pytest.fixture(scope="module")
def results(results_path) -> dict:
    return json.loads(results_path.read_text())


@pytest.fixture(scope="module")
def figure_cache(tmp_path_factory) -> Path:
    """The result cache's folder the module's reports keep their figures in (drawn once, by ``report``)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def report(results_path, figure_cache) -> tuple[Path, str]:
    out = render_report(results_path, figure_cache=figure_cache)
    return out, out.read_text(encoding="utf-8")


@pytest.fixture
def drawn(monkeypatch) -> list[str]:
    """Every figure drawn from now on (each report figure starts with ``plt.subplots``, a sample card by emptying
    the card's reused figure)."""
    started: list[str] = []
    for name, owner in (("subplots", figures.plt), ("_blank_card", figures)):
        def counting(*args, _start=getattr(owner, name), _name=name, **kwargs):
            started.append(_name)
            return _start(*args, **kwargs)

        monkeypatch.setattr(owner, name, counting)
    return started


def test_a_reused_sample_card_draws_what_a_new_figure_draws(monkeypatch):
    """The sample card reuses one figure: after any card (one whose labels did not fit the fixed margins, one
    without a sufficient signal), the next card's PNG is byte for byte the one a new figure gives."""
    sr, n = 8000, 2000
    x = np.sin(np.arange(n) / 5).astype(np.float32)
    hz = np.fft.rfftfreq(n, 1 / sr)
    magnitude = np.abs(np.fft.rfft(x))

    def card(scale: float, subsets: dict, with_signal: bool) -> str:
        return figures.sample_panels.__wrapped__(x * scale, sr, hz, np.linspace(0, 1, len(hz)) * scale,
                                                 magnitude * scale, subsets, x * scale / 2 if with_signal else None)

    cards = [(1.0, {"sufficient": np.array([3]), "necessary": np.arange(2, 40), "complete": np.arange(400)}, True),
             (-3.2e5, {"sufficient": np.array([3])}, False),  # long tick labels: tight_layout moves the margins
             (2.0, {"necessary": np.arange(5, 9)}, False), (1.0, {"sufficient": np.array([3])}, True)]
    tight = []
    layout = figures.matplotlib.figure.Figure.tight_layout
    monkeypatch.setattr(figures.matplotlib.figure.Figure, "tight_layout",
                        lambda fig, *a, **k: tight.append(1) or layout(fig, *a, **k))
    reused = [card(*args) for args in cards]
    assert tight == [1], "the second card was meant to overflow the fixed margins"
    for args, drawn_after_others in zip(cards[1:], reused[1:]):
        monkeypatch.setattr(figures, "_CARD", [])  # a new figure for this one
        assert card(*args) == drawn_after_others
    with figures.matplotlib.rc_context({"axes.linewidth": 3.0}):  # a caller's style: drawn as a new figure would
        styled = card(*cards[0])
        monkeypatch.setattr(figures, "_CARD", [])
        assert styled == card(*cards[0]) != reused[0]
    assert card(*cards[0]) == reused[0]  # and after it, the report's own style again


def figure_entries(cache: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted((cache / "figures").rglob("*.fig"))}


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


def hrefs_and_ids(html: str) -> tuple[list[str], set[str]]:
    found = tags(html)
    return ([a["href"][1:] for _, a in found if (a.get("href") or "").startswith("#")],
            {a["id"] for _, a in found if a.get("id")})


def test_every_section_is_there(report, results):
    _, html = report
    for needle in ('id="run-verdict"', 'id="specs-summary"', 'id="gates"', "Table 1", "Table 2", "Table 3",
                   "Table 4", "Figure 2", "Figure 3", "Inverse classification", 'id="transferability"',
                   'id="run-facts"', 'id="phases"', 'id="trust-remote-code-warning"', 'class="clips"',
                   'class="card sample"', 'id="flat-earthers"', 'class="spec-row spec-error"'):
        assert needle in html, needle
    for name in results["specs"]:
        assert f"Spec: {name}" in html
    skipped = [s for spec in results["specs"].values() for s in spec["samples"] if s["status"] == "skipped"]
    assert skipped and all(s["reason"] in html for s in skipped)
    for spec in results["specs"].values():
        assert spec["model"]["fingerprint"] in html and spec["config_hash"] in html


def test_first_screen_is_the_decision(report, results):
    """The run's verdict as results.json states it, then the specs (red first), then the red gates first."""
    _, html = report
    state = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "interrupted": "INCOMPLETE"}
    verdict = re.search(r'<span id="run-verdict" class="verdict \w+">([^<]*)</span>', html).group(1)
    assert verdict == state[results["run"]["verdict"]]
    assert html.index('id="run-verdict"') < html.index('id="specs-summary"') < html.index('id="gates"') \
        < html.index('id="spec-1"')
    spec_labels = re.findall(r'<tr class="spec-row[^"]*">.*?</td>\s*<td class="\w+">([^<]*)</td>', html, re.S)
    order = ["ERROR", "FAIL", "INCOMPLETE", "NOT RUN", "PASS"]  # the run's verdict words (records.RUN_SHOWN)
    base = [label.split(" · ")[0] for label in spec_labels]  # "PASS · PARTIAL": only some of its items ran
    assert base == sorted(base, key=order.index) and len(spec_labels) == len(results["specs"]) + 1
    outcomes = re.findall(r'data-outcome="(\w+)"', html)
    severity = ["error", "failed", "not_measured", "interrupted", "deselected", "skipped", "passed"]
    assert outcomes == sorted(outcomes, key=severity.index), "failures first"
    red_gates = [g for g in results["gates"] if g["outcome"] in ("failed", "not_measured", "error")]
    assert red_gates and outcomes[0] in ("failed", "not_measured", "error")
    first_table = html[html.index('id="gates"'):html.index('id="passed-gates"')]
    for g in red_gates:  # every red gate's clip or spec is named in the first table
        key = g["item"].split("[")[-1][:-1]
        assert (key if key != "aggregate" else g["metric"]) in first_table


def test_failures_explain_themselves_with_their_numbers(report, results):
    _, html = report
    first_table = html[html.index('id="gates"'):html.index('id="passed-gates"')]
    rows = re.findall(r'<tr class="gate fail-row" id="gate-\d+">(.*?)</tr>', first_table, re.S)
    assert rows
    for row in rows:
        why = re.search(r'<td class="text why"><b>([^<]+)</b>', row)
        assert why, row[:300]
        assert "Next:" in row
    for g in results["gates"]:
        if g["outcome"] == "not_measured":
            assert g["unmeasured"] in html
    per_clip = [g for g in results["gates"] if g["outcome"] == "failed" and not g["item"].endswith("[aggregate]")]
    for g in per_clip:  # the failing clip and its measured share, against the spec's threshold
        assert f"{g['item'].split('[')[-1][:-1]} ({100 * g['value']:.2g} %)" in html
    assert "the spec needs ≤ 2 %" in html


def test_rates_show_counts_and_intervals(report, results):
    _, html = report
    for g in results["gates"]:
        if g.get("n"):
            assert f"{g['k']} of {g['n']} clips" in html
            assert f"95 % CI {100 * g['low']:.0f}–{100 * g['high']:.0f} %" in html
    for name, spec in results["specs"].items():
        queries = results["timings"]["per_spec"][name]["queries"]
        assert f"{queries:,} model queries" in html  # in that spec's own section
    phases = re.findall(r'<td class="queries">([^<]*)</td>', html)
    assert phases == [f"{results['timings']['per_spec'][n]['queries']:,}" for n in results["specs"]]
    assert "seed 0 (set for the whole run)" in html and "seed n/a" not in html


def test_every_link_resolves_and_cards_link_back(report):
    _, html = report
    links, ids = hrefs_and_ids(html)
    assert links and not [x for x in links if x not in ids]
    gate_links = re.findall(r'class="evidence-link" href="#([^"]+)"', html)
    assert gate_links and all(x in ids for x in gate_links)
    cards = re.findall(r'<div class="card sample" id="([^"]+)">(.*?)<img', html, re.S)
    assert cards
    for card_id, head in cards:
        assert "Decides:" in head and f'href="#{card_id.replace("card-", "clip-")}"' in head
        assert f'href="#{card_id}"' in html, "the clips table links to every card"
    backed = [head for _, head in cards if 'href="#gate-' in head]
    assert backed, "a card of a clip that failed a gate links back to that gate"


def test_numbers_for_people():
    from freqrex_audit.report.format import fmt_bins, fmt_snr

    assert fmt_bins(1, 8001) == "1 of 8,001 bins (0.01 %)"
    assert fmt_bins(40, 2001) == "40 of 2,001 bins (2.0 %)"
    assert fmt_snr(1.47e-09) == "0 dB" and fmt_snr(float("inf")) == "identical" and fmt_snr(187.2) == "> 99 dB"
    assert fmt_snr(21.04) == "21 dB" and fmt_snr(7.25) == "7.2 dB"
    assert fmt_number(1.47e-09) == "< 0.001" and fmt_number(12345.6) == "12,346" and fmt_number(8001) == "8,001"


def test_inverse_classification_excludes_the_clips_own_label(results_path, results):
    from freqrex_audit.engine.explanation import Explanation
    from freqrex_audit.report.html import inverse_table, load_results

    _, arrays = load_results(results_path)
    for spec in results["specs"].values():
        table = inverse_table(spec, arrays, list(spec["model"]["labels"]))
        exps = [Explanation.from_dict(s["explanation"], arrays) for s in spec["samples"] if s["explanation"]]
        inverted = [e for e in exps if e.inverse_label is not None and e.inverse_label != e.target]
        assert sum(sum(r["to"].values()) for r in table["rows"]) == len(inverted)
        assert sum(r["own"] for r in table["rows"]) == sum(e.inverse_label == e.target for e in exps)
        assert all(r["cls"] not in r["to"] for r in table["rows"])


def test_self_contained_and_escaped(report, results_path, tmp_path):
    out, html = report
    for tag, attrs in tags(html):
        for attr in ("src", "href"):
            value = attrs.get(attr) or ""
            assert not re.match(r"\s*(https?:|//)", value, re.I), f"external {attr} on <{tag}>: {value[:80]}"
    assert "<script" not in html.lower(), "the report needs no JavaScript"
    audio = [a["src"] for t, a in tags(html) if t == "audio"]
    assert audio and all(src.startswith("data:audio/flac;base64,") or (out.parent / src).is_file() for src in audio)

    # a hostile spec name and label are shown as text
    run = tmp_path / "xss"
    run.mkdir()
    text = results_path.read_text().replace('"treble"', json.dumps(XSS)).replace('"tones-b"', json.dumps(XSS))
    doc = json.loads(text)
    doc["run"]["node_cpus"] = {XSS: "Intel Xeon (avx2)"}  # a Ray node's name and CPU, shown in the run facts
    (run / "results.json").write_text(json.dumps(doc))
    shutil.copy(results_path.with_suffix(".npz"), run / "results.npz")
    hostile = render_report(run / "results.json", max_sample_cards=1).read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hostile
    assert re.search(r"<td>cpu of [^<]*&lt;script&gt;alert\(1\)&lt;/script&gt;[^<]*</td><td class=\"text\">Intel Xeon "
                     r"\(avx2\)</td>", hostile)
    assert "<script" not in hostile.lower()
    assert not [t for t, _ in tags(hostile) if t == "script"]


def test_size_budget(report, results_path, figure_cache, tmp_path):
    out, html = report
    assert out.stat().st_size <= 3_000_000
    small = render_report(results_path, tmp_path / "small.html", max_sample_cards=1, max_audio_bytes=30_000,
                          figure_cache=figure_cache)
    text = small.read_text(encoding="utf-8")
    assert text.count('class="card sample"') == 2  # one per spec
    assert "left out" in text and "at most 1 per spec" in text
    files = sorted((tmp_path / "small_files").glob("*.flac"))
    assert files and f"{len(files)} more player(s)" in text and "small_files/" in text
    linked = [a["src"] for t, a in tags(text) if t == "audio" and not a["src"].startswith("data:")]
    assert sorted(linked) == sorted(f"small_files/{f.name}" for f in files)
    bare = render_report(results_path, tmp_path / "bare.html", max_sample_cards=1, max_audio_bytes=30_000,
                         audio_files=False, figure_cache=figure_cache).read_text(encoding="utf-8")
    assert "audio budget reached" in bare and "player(s) left out" in bare


def test_a_rerun_draws_no_figure_and_writes_the_same_page(report, results_path, figure_cache, tmp_path, drawn):
    """The module's report drew every figure into the cache; the same numbers drawn by the same code are read
    back: not one figure is started, the page is the same, the entries are untouched."""
    out, html = report
    kept = figure_entries(figure_cache)
    shown = set(re.findall(r'src="(data:image/png;base64,[^"]+)"', html))
    assert len(kept) >= 6 and len(kept) == len(shown)  # one entry per distinct figure on the page
    again = render_report(results_path, tmp_path / "again.html", figure_cache=figure_cache).read_text("utf-8")
    assert not drawn, f"{len(drawn)} figure(s) drawn again from the same numbers"
    assert again.replace("again_files/", f"{out.stem}_files/") == html
    assert figure_entries(figure_cache) == kept


def test_a_damaged_missing_or_hostile_figure_entry_is_drawn_again(report, results_path, figure_cache, tmp_path, drawn):
    out, html = report
    cache = tmp_path / "cache"
    shutil.copytree(figure_cache, cache)
    kept = figure_entries(cache)
    damaged, lost, hostile = list(kept)[:3]
    damaged.write_bytes(kept[damaged][:-100])  # a checksum that no longer matches
    lost.unlink()
    from freqrex_audit.audit.cache import Cache  # a well-formed entry whose "figure" is markup, not a PNG
    Cache(cache / "figures", suffix=".fig").put(hostile.stem, {"uri": 'data:image/png;base64,AAAA"><b>x</b>'})
    again = render_report(results_path, tmp_path / "again.html", figure_cache=cache).read_text("utf-8")
    assert len(drawn) == 3
    assert again.replace("again_files/", f"{out.stem}_files/") == html
    assert figure_entries(cache) == kept  # all three written again, whole


def test_other_numbers_or_another_order_draw_a_new_figure(tmp_path, drawn):
    hz = np.linspace(0, 4000, 101)
    series = {"bass": {"hz": hz.tolist(), "value": list(np.linspace(0, 1, 101))},
              "mid": {"hz": hz.tolist(), "value": list(np.linspace(1, 0, 101))}}
    with figures_cached_in(tmp_path):
        one = figures.class_responsibility(series, ["bass", "mid"])
        assert figures.class_responsibility(series, ["bass", "mid"]) == one and len(drawn) == 1
        nudged = {**series, "mid": {**series["mid"], "value": [*series["mid"]["value"][:-1], 0.001]}}
        assert figures.class_responsibility(nudged, ["bass", "mid"]) != one
        figures.class_responsibility(series, ["mid", "bass"])  # the same panels in another order
    assert len(drawn) == 3


def test_without_a_cache_folder_every_figure_is_drawn_and_none_kept(results_path, tmp_path, drawn):
    render_report(results_path, tmp_path / "plain.html", max_sample_cards=0)
    assert drawn and not list(tmp_path.rglob("figures")) and not list(results_path.parent.rglob("figures"))


def test_index_lists_runs(report, results_path):
    index = render_index(results_path.parent.parent).read_text(encoding="utf-8")
    run = results_path.parent.name
    assert run in index and f'href="{run}/report.html"' in index
    assert "FAIL" in index or "PASS" in index


def test_cli_report_rerenders(report, results_path, figure_cache, tmp_path, drawn):
    from freqrex_audit.cli.main import main

    out = tmp_path / "cli.html"
    assert main(["report", str(results_path), "--out", str(out), "--max-cards", "0"]) == 0
    assert 'id="run-verdict"' in out.read_text(encoding="utf-8") and drawn  # no --cache: every figure drawn
    started = len(drawn)
    cached = tmp_path / "cached.html"
    again = ["report", str(results_path), "--out", str(cached), "--max-cards", "0", "--cache", str(figure_cache)]
    assert main(again) == 0
    assert len(drawn) == started and cached.read_text(encoding="utf-8") == out.read_text(encoding="utf-8").replace(
        "cli_files/", "cached_files/")  # the audit's cache: its figures are read, not drawn
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
    errors: window.__errors, scripts: document.scripts.length,
    unresolved: [...document.querySelectorAll('a[href^="#"]')].map(a => a.getAttribute("href").slice(1))
      .filter(id => !document.getElementById(id)),
    gateLinks: document.querySelectorAll("a.evidence-link").length,
    height: document.documentElement.scrollHeight, viewport: window.innerHeight,
    scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
    gatesWidth: (() => { const t = document.querySelector("table.gates"); if (!t) return null;
                         const box = t.closest("section, .box, .card") || document.body;
                         return [t.getBoundingClientRect().width, box.clientWidth]; })(),
    verdict: (document.getElementById("run-verdict") || {textContent: null}).textContent,
    verdictBottom: document.getElementById("run-verdict").getBoundingClientRect().bottom,
    firstRed: (() => { const r = document.querySelector("#gates tr.fail-row");
                       return r ? {top: r.getBoundingClientRect().top, text: r.textContent} : null; })()});
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


def test_report_works_in_a_real_browser(report, results):
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no chromium binary on PATH (CI installs Debian's `chromium`: apt-get install -y chromium)")
    out, html = report
    probed = out.with_name("probed.html")
    probed.write_text(html.replace("<head>", "<head>" + PROBE_HEAD, 1).replace("</body>", PROBE_TAIL + "</body>", 1),
                      encoding="utf-8")
    done = chromium(binary, "--virtual-time-budget=30000", "--window-size=1400,1000", "--dump-dom", probed.as_uri())
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
    # the first screen (1400 × 1000) shows the run's verdict and the first failing gate
    assert verdict["verdict"] == {"passed": "PASS", "failed": "FAIL", "error": "ERROR"}[results["run"]["verdict"]]
    assert verdict["verdictBottom"] <= verdict["viewport"]
    assert verdict["firstRed"] and verdict["firstRed"]["top"] < verdict["viewport"], verdict["firstRed"]
    assert "FAIL" in verdict["firstRed"]["text"] or "NOT MEASURED" in verdict["firstRed"]["text"]
    # every in-page link (gate → evidence, card → gate) names an element that exists
    assert verdict["gateLinks"] > 0 and verdict["unresolved"] == []
    # budgets: the page's size on disk and its height in the browser
    assert out.stat().st_size <= 3_000_000
    assert verdict["height"] <= PAGE_HEIGHT_BUDGET_PX, verdict["height"]
    # wide tables scroll inside their box: the page itself never scrolls sideways at 1400 px
    assert verdict["scrollWidth"] <= verdict["innerWidth"], (verdict["scrollWidth"], verdict["innerWidth"])
    # the gates table, the verdict's evidence, fits its box: no column (the evidence links) hidden behind a scroll
    assert verdict["gatesWidth"] and verdict["gatesWidth"][0] <= verdict["gatesWidth"][1], verdict["gatesWidth"]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    done = chromium(binary, "--hide-scrollbars", "--window-size=1400,2000", "--virtual-time-budget=5000", f"--screenshot={shot}", out.as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000, done.stderr[-2000:]
