"""The Markdown report, rendered by a CommonMark library (markdown-it-py, GFM tables on): the table
has one row per editor and balanced cells, run data stays text, failures and --baseline show."""

import pytest
from markdown_it import MarkdownIt

from report_fixtures import HOSTILE, relabel
from ix2x.reports import write_report


def _tables(md_text):
    """Each table as a list of rows (header first), each a list of cell texts, as markdown-it
    parses it."""
    tokens = MarkdownIt("commonmark").enable("table").parse(md_text)
    tables, rows, row, cell = [], None, None, None
    for t in tokens:
        if t.type == "table_open":
            rows = []
        elif t.type == "tr_open":
            row = []
        elif t.type in ("th_open", "td_open"):
            cell = []
        elif t.type == "inline" and cell is not None:
            cell.append("".join(c.content for c in t.children if c.type in ("text", "code_inline")))
        elif t.type in ("th_close", "td_close"):
            row.append("".join(cell))
            cell = None
        elif t.type == "tr_close":
            rows.append(row)
        elif t.type == "table_close":
            tables.append(rows)
    return tables


@pytest.fixture(scope="module")
def hostile_run(run_dir, tmp_path_factory):
    """The shared run copied, with one editor relabelled to markup and a pipe."""
    import shutil

    d = tmp_path_factory.mktemp("hostile") / "run"
    shutil.copytree(run_dir, d)
    relabel(d, "bright", "<script>window.__xss=3</script>|x")
    return d


def test_leaderboard_has_one_row_per_editor_and_balanced_cells(hostile_run, tmp_path):
    text = write_report([hostile_run], tmp_path / "r.md").read_text()
    board = _tables(text)[0]
    header, rows = board[0], board[1:]
    assert [r[0] for r in rows] == ["<script>window.__xss=3</script>|x", "dim", "flaky", "identity", "oracle"]
    assert all(len(r) == len(header) for r in rows)
    # the plugin metric's label holds a pipe too: one header cell, not two
    assert "darkness |1-x| ↑" in header and "out-of-mask MAE ↓" in header


def test_labels_instructions_and_errors_stay_text(hostile_run, tmp_path):
    text = write_report([hostile_run], tmp_path / "r.md").read_text()
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;window.__xss=3&lt;/script&gt;|x" in html
    assert "&lt;img src=x onerror=&quot;window.__xss=1&quot;&gt;" in html  # the instruction, as text


def test_failures_are_listed_with_their_error(run_dir, tmp_path):
    text = write_report([run_dir], tmp_path / "r.md").read_text()
    failures = next(t for t in _tables(text) if t[0] == ["editor", "sample", "instruction", "error"])
    assert [r[1] for r in failures[1:]] == ["s000", "s003", "s006", "s009"]
    assert all(r[0] == "flaky" and "flaky editor refuses" in r[3] for r in failures[1:])
    assert HOSTILE.split()[0] in failures[2][2]
    board = _tables(text)[0]
    assert board[0][-1] == "failed" and [r[-1] for r in board[1:]] == ["0", "0", "4", "0", "0"]


def test_baseline_is_honoured(tmp_path, plugins):
    # A small run of its own: the paired Wilcoxon tests cost seconds each on ties (scipy)
    import report_fixtures

    suite = dict(report_fixtures.SUITE, editors=[{"name": "identity"}] + report_fixtures.SUITE["editors"][2:4],
                 metrics=[{"name": "out_of_mask_change"}])
    run = report_fixtures.make_run(tmp_path, suite, report_fixtures.samples(n=6, hostile=None))
    text = write_report([run], tmp_path / "r.md", baseline="dim").read_text()
    assert "## Paired differences against dim" in text
    paired = next(t for t in _tables(text) if t[0][0] == "editor" and "out-of-mask MAE" in t[0] and len(t) == 3)
    assert [r[0] for r in paired[1:]] == ["identity", "bright"]  # suite order
    bright = dict(zip(paired[0], paired[2]))
    # bright adds 0.2 everywhere, dim 0.05: the paired difference of out-of-mask MAE is 0.15 exactly
    assert bright["out-of-mask MAE"].startswith("0.150 ") and "n=6" in bright["out-of-mask MAE"]
    missing = write_report([run], tmp_path / "m.md", baseline="nobody").read_text()
    assert "Baseline editor nobody is not in these runs." in missing
