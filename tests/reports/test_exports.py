"""`.tex` (booktabs) and `.csv` leaderboards: balanced columns, one row per editor, values and CIs
equal to summary.csv's; an unsupported extension is an error that writes nothing."""

import csv
import re

import pytest

from ix2x.errors import UserError
from ix2x.reports import write_report


def _summary(run_dir):
    with open(run_dir / "summary.csv", newline="") as f:
        return {(r["editor"], r["metric"], r["key"]): r for r in csv.DictReader(f)}


def test_latex_table_structure(run_dir, tmp_path):
    tex = write_report([run_dir], tmp_path / "t.tex").read_text()
    body = tex[tex.index(r"\begin{tabular}"):tex.index(r"\end{tabular}")]
    spec = re.match(r"\\begin\{tabular\}\{([lrc]+)\}", body).group(1)
    assert tex.count(r"\toprule") == 1 and tex.count(r"\bottomrule") == 1 and r"\hline" not in tex
    rows = [ln for ln in body.splitlines()[1:] if ln.endswith(r"\\") and r"\multicolumn" not in ln]
    header, data = rows[0], rows[1:]
    # unescaped & separate cells: every row has as many cells as the column spec
    cells = lambda ln: len(re.findall(r"(?<!\\)&", ln)) + 1  # noqa: E731
    assert all(cells(ln) == len(spec) for ln in rows)
    assert [ln.split(" & ")[0] for ln in data] == ["bright", "dim", "flaky", "identity", "oracle"]
    assert r"darkness \textbar{}1-x\textbar{} $\uparrow$" in header  # escaped, arrow as math
    # best ranked editor in bold: dim has the lower out-of-mask MAE; flaky (fewer samples) is marked
    dim, flaky = data[1].split(" & "), data[2].split(" & ")
    assert dim[1] == r"\textbf{0.0500}" and flaky[1].endswith(r"$^\dagger$$^{n=8}$")
    assert r"{\scriptsize [" in tex  # CIs


def test_csv_matches_summary(run_dir, tmp_path):
    with open(write_report([run_dir], tmp_path / "t.csv"), newline="") as f:
        rows = list(csv.reader(f))
    head, data = rows[0], rows[1:]
    assert all(len(r) == len(head) for r in data)
    assert [r[0] for r in data] == ["bright", "dim", "flaky", "identity", "oracle"]
    summary = _summary(run_dir)
    col = head.index("out_of_mask_change.mae")
    for r in data:
        ref = summary[(r[0], "out_of_mask_change", "mae")]
        assert float(r[col]) == float(ref["value"]) and r[col + 3] == ref["n"]
    assert "latency.median_s [s]" in head  # the metric's own unit, unscaled
    best = {r[0]: r[col + 4] for r in data}
    assert best == {"bright": "0", "dim": "1", "flaky": "0", "identity": "0", "oracle": "0"}


@pytest.mark.parametrize("name", ["x.pdf", "x.htm", "x"])
def test_unsupported_extension_is_an_error(run_dir, tmp_path, name):
    with pytest.raises(UserError, match=r"`--out` must end in \.html, \.md, \.tex, \.csv"):
        write_report([run_dir], tmp_path / name)
    assert not (tmp_path / name).exists()
