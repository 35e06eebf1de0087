"""A metric installed from a throwaway package, with its own headline keys and glossary text,
reaches summary.csv, the leaderboard and the glossary with no change to this repository; the
report needs nothing but the run directory (the plugin is not installed where it renders)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from ix2x.reports import write_report

PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"
[project]
name = "ix2x-throwaway-metric"
version = "0.0.1"
[project.entry-points."ix2x.metrics"]
sharpness_gain = "throwaway_metric:SharpnessGain"
[tool.setuptools]
py-modules = ["throwaway_metric"]
"""

MODULE = '''
"""A throwaway third-party metric that describes itself."""
from ix2x.types import HeadlineKey, Metric

class SharpnessGain(Metric):
    higher_is_better = {"gain": True, "raw": False}
    glossary = "Throwaway plugin: mean gradient magnitude of the edit over that of the input."
    headline = (HeadlineKey("gain", "sharpness gain", True, "x", "Edit sharpness / input sharpness; 1 = same.", 4),)

    def compute(self, samples, results):
        def sharp(im):
            return float((im[..., 1:, :] - im[..., :-1, :]).abs().mean()) + 1e-9
        return [{"gain": sharp(r.image) / sharp(s.image), "raw": sharp(r.image)} for s, r in zip(samples, results)]
'''


@pytest.fixture(scope="module")
def plugin_run(tmp_path_factory):
    src = tmp_path_factory.mktemp("metric_src")
    (src / "pyproject.toml").write_text(PYPROJECT)
    (src / "throwaway_metric.py").write_text(MODULE)
    site = tmp_path_factory.mktemp("metric_site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(src)], check=True)
    out = tmp_path_factory.mktemp("metric_runs")
    tests = os.path.dirname(os.path.dirname(__file__))
    code = textwrap.dedent(f"""
        import sys, json
        sys.path.insert(0, {tests!r})
        from pathlib import Path
        from ix2x.benchmarks import runner
        from ix2x.suite import suite_from_dict
        from samples_for_tests import tiny_samples
        suite = suite_from_dict({{"name": "pm", "editors": [{{"name": "identity"}}, {{"name": "oracle"}}],
                                  "metrics": [{{"name": "sharpness_gain"}}]}})
        out = runner.execute(runner.start_run(suite, Path({str(out)!r})), tiny_samples(), progress=False)
        print(json.dumps(str(out.run_dir)))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(site)})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_plugin_metric_in_summary_leaderboard_and_glossary(plugin_run, tmp_path):
    from pathlib import Path

    run = Path(plugin_run)
    assert "sharpness_gain,gain," in (run / "summary.csv").read_text()
    with pytest.raises(Exception):  # not installed in this process: the report cannot ask the class
        __import__("throwaway_metric")
    text = write_report([run], tmp_path / "r.html").read_text()
    lb = text[text.index('id="leaderboard"'):text.index("</table>", text.index('id="leaderboard"'))]
    assert '<a href="#g-sharpness-gain-gain">sharpness gain</a> ↑<span class="unit">x</span>' in lb
    assert ('<dt id="g-sharpness-gain-gain">sharpness gain <code>sharpness_gain.gain</code></dt>'
            "<dd>higher is better, in x. Edit sharpness / input sharpness; 1 = same.") in text
    assert "Throwaway plugin: mean gradient magnitude" in text
    md = write_report([run], tmp_path / "r.md").read_text()
    assert "| sharpness gain (x) ↑ |" in md
    # identity returns the input: a gain of exactly 1, printed at the plugin's precision (4 digits)
    identity = lb[lb.index('data-editor="identity"'):]
    assert '(&lt; 10)">1.000<span class="n">n=6 ⚠</span></td>' in identity


def test_a_plugin_metric_without_headline_shows_its_keys_in_every_leaderboard(tmp_path, plugins):
    """Regression: a metric without ``headline`` reached summary.csv and the glossary only."""
    import report_fixtures

    from ix2x.reports import terminal_leaderboard

    suite = {"name": "plain", "editors": [{"name": "identity"}, {"name": "brighten_t", "label": "bright"}],
             "metrics": [{"name": "plain_t"}]}
    run = report_fixtures.make_run(tmp_path, suite, report_fixtures.samples(n=4, hostile=None))
    assert "plain_t,brightness," in (run / "summary.csv").read_text()
    md = write_report([run], tmp_path / "r.md").read_text()
    board = md[:md.index("## ", md.index("|"))].replace("\\", "")  # Markdown escapes the underscore
    assert "plain_t.brightness" in board and "plain_t.spread" in board
    html = write_report([run], tmp_path / "r.html").read_text()
    lb = html[html.index('id="leaderboard"'):html.index("</table>", html.index('id="leaderboard"'))]
    assert "plain_t.brightness" in lb and "plain_t.spread" in lb
    # The glossary says how the intervals were computed, as run.json records it.
    assert "Intervals: 95 % intervals: means of per-sample values by the percentile bootstrap" in md
    assert "Clopper-Pearson" in html[html.index("id='intervals'"):]
    text = terminal_leaderboard(run, width=400)
    assert "plain_t.brightness" in text and "plain_t.spread" in text
