"""Reports render from run directories alone; a headless browser finds every image and a
leaderboard row per editor."""

import re
import shutil
import subprocess

import pytest

from benchmarks import runner
from ix2x.suite import suite_from_dict
from reports import write_report


@pytest.fixture
def run_dir(tmp_path, samples):
    # oracle first: the leaderboard keeps the suite's order, not alphabetical order
    suite = suite_from_dict({"name": "rep", "editors": [{"name": "oracle"}, {"name": "identity"}],
                             "metrics": [{"name": "out_of_mask_change"}]})
    d = runner.start_run(suite, tmp_path)
    runner.execute(d, samples, progress=False)
    return d


def test_html_has_leaderboard_grid_and_provenance(run_dir):
    text = write_report([run_dir], run_dir / "report.html").read_text()
    board = text[text.index("id='leaderboard'"):text.index("</table>", text.index("id='leaderboard'"))]
    assert re.findall(r'data-editor="([^"]+)"', board) == ["oracle", "identity"]
    assert "out-of-mask MAE" in board
    assert text.count("<img") >= 6 and "true change mask" in text and "oracle: |edit - input|" in text
    assert "&quot;commit&quot;" in text and "schema_version" not in text


def test_no_images_means_no_images(run_dir):
    text = write_report([run_dir], run_dir / "r.html", with_images=False).read_text()
    grid_imgs = [m for m in re.findall(r"<img alt='([^']+)'", text) if "input" in m or "target" in m]
    assert not grid_imgs and "carries no images" in text


def test_suite_that_forbids_images_wins_over_the_default(tmp_path, samples):
    suite = suite_from_dict({"name": "mimicish", "editors": [{"name": "identity"}],
                             "metrics": [{"name": "out_of_mask_change"}], "report_images": False})
    d = runner.start_run(suite, tmp_path)
    runner.execute(d, samples, progress=False)
    assert not (d / "images" / "_input").exists()  # nothing kept to leak
    text = write_report([d], d / "r.html").read_text()
    assert "data use agreement" in text and "<td><img" not in text


def test_markdown_table(run_dir):
    text = write_report([run_dir], run_dir / "report.md").read_text()
    assert "| identity |" in text and "| oracle |" in text and "out-of-mask MAE ↓" in text


def test_report_in_headless_chromium(run_dir, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (make test installs Debian's chromium when it can); "
                    "the browser check of the report is skipped")
    page = write_report([run_dir], run_dir / "report.html")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120).stdout
    n_images = int(re.search(r'data-images="(\d+)"', dom).group(1))
    assert n_images >= 6 and 'data-broken-images="0"' in dom
    assert re.findall(r'data-editor="([^"]+)"', dom) == ["oracle", "identity"]
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *flags, "--window-size=1400,1800", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000
