"""The HTML report of a recorded run, rendered by headless Chromium: no console error, nothing fetched,
every legend beside its plot and none over a bar, labelled axes with several ticks, a non-blank
screenshot.

Chromium comes from the Debian packages (``apt-get install chromium-headless-shell``; ``.ci/run``
installs it). The layout is measured by a script the test adds to a copy of the report, which
Chromium runs (``--dump-dom``) and whose findings it writes into the page as JSON.
"""

import html
import json
import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedledger.audit.html import CONTENT_SECURITY_POLICY
from fedledger.cli import app
from fedledger.cli.audit import EXIT_CODES
from fedledger.manifest import RoundManifest
from fedledger.simulations.history import SyntheticHistory

CHROMIUM = next(
    (found for name in ("chromium-headless-shell", "chromium") if (found := shutil.which(name))),
    None,
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium: install it with `apt-get install -y chromium-headless-shell` (as .ci/run does)",
)
WINDOW = "1300,4000"
#: The screenshot's window: the top of the page, with the verdict, the charts and the rounds table.
SCREENSHOT_WINDOW = "1300,1400"

#: Measures every chart once the page has loaded, and writes what it found into <pre id="layout">.
LAYOUT_SCRIPT = """
<script>
const errors = [];
window.addEventListener("error", (event) => errors.push(String(event.message)));
window.addEventListener("load", () => {
  const box = (element) => {
    const r = element.getBoundingClientRect();
    return { left: r.left, top: r.top, right: r.right, bottom: r.bottom };
  };
  const overlaps = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  const inside = (outer, inner, slack) =>
    inner.left >= outer.left - slack && inner.right <= outer.right + slack &&
    inner.top >= outer.top - slack && inner.bottom <= outer.bottom + slack;
  const texts = (svg, selector) => [...svg.querySelectorAll(selector)].map((element) => element.textContent);
  const charts = [...document.querySelectorAll("svg.chart")].map((svg) => {
    const legend = box(svg.querySelector("g.legend"));
    const plot = box(svg.querySelector("rect.plot"));
    const marks = [...svg.querySelectorAll(".mark")].map(box);
    const xTicks = [...svg.querySelectorAll("text.x-tick")].map(box);
    return {
      title: svg.getAttribute("aria-label"),
      legend_entries: texts(svg, "g.legend text"),
      legend_over_plot: overlaps(legend, plot),
      legend_over_marks: marks.filter((mark) => overlaps(legend, mark)).length,
      legend_inside_chart: inside(box(svg), legend, 0),
      marks: marks.length,
      marks_outside_plot: marks.filter((mark) => !inside(plot, mark, 4)).length,
      x_ticks: texts(svg, "text.x-tick"),
      x_ticks_overlapping: xTicks.filter((a, i) => xTicks.some((b, j) => i < j && overlaps(a, b))).length,
      y_ticks: texts(svg, "text.y-tick"),
      x_label: texts(svg, "text.x-label").join(""),
      y_label: texts(svg, "text.y-label").join(""),
    };
  });
  const fonts = [...document.querySelectorAll("code.hash")].map((code) => getComputedStyle(code).fontFamily);
  const out = document.createElement("pre");
  out.id = "layout";
  out.textContent = JSON.stringify({
    errors,
    charts,
    resources: performance.getEntriesByType("resource").length,
    hash_fonts: [...new Set(fonts)],
    page_width: document.documentElement.scrollWidth,
  });
  document.body.appendChild(out);
});
</script>
"""


def _chromium(*arguments: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


@pytest.fixture
def report(tmp_path: Path, write_run: Callable[..., SyntheticHistory]) -> Path:
    """The report of a run that planned 4 rounds and committed 3 (a 4th stored, never committed: its
    manifest is an orphan), where one participant claimed its reward of round 1."""
    history = write_run(tmp_path, planned_rounds=4, committed=3, uncommitted=1)
    commitment = history.registry.committed_round(history.run_id, 1).commitment
    rewards = RoundManifest.from_bytes(history.store.get(commitment.manifest_hash)).rewards
    history.claim(0, 1, rewards[history.participants[0].address], rewards)
    page = tmp_path / "audit.html"
    result = CliRunner().invoke(app, ["audit", "--simulation", str(tmp_path), "--report", str(page)])
    assert result.exit_code == EXIT_CODES["incomplete"], result.output
    return page


def test_the_report_renders_without_errors_with_legends_beside_the_plots(report: Path):
    page = report.read_text()
    assert CONTENT_SECURITY_POLICY in page
    measured = report.with_name("measured.html")
    policy = CONTENT_SECURITY_POLICY + "; script-src 'unsafe-inline'"
    measured.write_text(page.replace(CONTENT_SECURITY_POLICY, policy).replace("</body>", LAYOUT_SCRIPT + "</body>"))
    result = _chromium(
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        f"--window-size={WINDOW}",
        "--dump-dom",
        measured.as_uri(),
    )
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    layout = json.loads(html.unescape(re.search(r'<pre id="layout">(.*?)</pre>', result.stdout, re.S).group(1)))
    assert layout["errors"] == [] and layout["resources"] == 0
    assert layout["hash_fonts"] and all("monospace" in font for font in layout["hash_fonts"])
    charts = {chart["title"]: chart for chart in layout["charts"]}
    assert set(charts) == {
        "global accuracy per round",
        "updates per round",
        "gas per round (commitRound)",
        "rewards per participant (all rounds)",
    }
    for title, chart in charts.items():
        assert not chart["legend_over_plot"] and chart["legend_over_marks"] == 0, title
        assert chart["legend_inside_chart"], title
        assert chart["marks"] > 0 and chart["marks_outside_plot"] == 0, title
        assert chart["x_ticks_overlapping"] == 0, title
        assert len(chart["y_ticks"]) >= 3 and chart["y_ticks"][0] == "0", title
        assert chart["y_label"], title
    for title in ("global accuracy per round", "updates per round", "gas per round (commitRound)"):
        assert charts[title]["x_label"] == "round"
        assert charts[title]["x_ticks"] == ["1", "2", "3", "4"]
        assert "not committed" in charts[title]["legend_entries"]
    assert charts["global accuracy per round"]["y_ticks"] == ["0", "0.2", "0.4", "0.6", "0.8", "1"]
    assert charts["updates per round"]["legend_entries"][-2:] == ["accepted", "rejected"]
    assert charts["rewards per participant (all rounds)"]["x_label"] == "participant"
    assert charts["rewards per participant (all rounds)"]["legend_entries"] == ["claimed", "granted, unclaimed"]


def test_a_screenshot_of_the_report_is_not_blank_and_shows_the_verdict_and_bars(report: Path, tmp_path: Path):
    screenshot = tmp_path / "report.png"
    _chromium(f"--window-size={SCREENSHOT_WINDOW}", f"--screenshot={screenshot}", report.as_uri())
    width, height, pixels = _read_png(screenshot.read_bytes())
    assert (width, height) == tuple(int(size) for size in SCREENSHOT_WINDOW.split(","))
    colours = Counter(pixels)
    background = colours.most_common(1)[0][1]
    assert len(colours) > 50 and background < 0.95 * width * height
    incomplete, accepted = (0xF9, 0xA8, 0x25), (0x2E, 0x7D, 0x32)
    assert colours[incomplete] > 1000  # the verdict banner
    assert colours[accepted] > 1000  # the accepted bars and passed checks


def _read_png(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Width, height and RGB pixels of an 8-bit RGB or RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks, header = 8, [], b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind, body = data[position + 4 : position + 8], data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        position += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour_type in (2, 6) and interlace == 0
    channels = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(b"".join(chunks)), width * channels
    previous, pixels = bytearray(stride), []
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for index in range(stride):
            left = line[index - channels] if index >= channels else 0
            up, corner = previous[index], previous[index - channels] if index >= channels else 0
            if kind == 1:
                line[index] = (line[index] + left) & 0xFF
            elif kind == 2:
                line[index] = (line[index] + up) & 0xFF
            elif kind == 3:
                line[index] = (line[index] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - corner
                distances = (abs(estimate - left), abs(estimate - up), abs(estimate - corner))
                line[index] = (line[index] + (left, up, corner)[distances.index(min(distances))]) & 0xFF
        pixels.extend(tuple(line[offset : offset + 3]) for offset in range(0, stride, channels))
        previous = line
    return width, height, pixels
