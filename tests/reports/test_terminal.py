"""The compact leaderboard `ix2x run` prints at its end, and `ix2x report`'s refusal of formats it
cannot write."""

from ix2x.cli.main import main
from ix2x.reports import terminal_leaderboard


def test_terminal_leaderboard_one_line_per_editor(run_dir):
    lines = terminal_leaderboard(run_dir, width=200).splitlines()
    head = lines[0]
    assert head.startswith("editor") and "out-of-mask MAE ↓" in head and "failed" in head
    rows = {ln.split()[0]: ln for ln in lines[2:] if ln.split() and ln.split()[0] in
            {"bright", "dim", "flaky", "identity", "oracle"}}
    assert list(rows) == ["bright", "dim", "flaky", "identity", "oracle"]  # ranked first, then references
    assert "*0.0500" in rows["dim"] and "0†?" in rows["flaky"] and "(floor)" in rows["identity"]
    assert rows["flaky"].split()[-1] == "4"  # failed
    narrow = terminal_leaderboard(run_dir, width=60).splitlines()
    assert max(len(x) for x in narrow) <= 60 and "4 more column(s)" in " ".join(" ".join(narrow).split())


def test_run_prints_the_leaderboard_then_the_paths(tmp_path, samples, capsys):
    from samples_for_tests import write_mimic_dir

    data = write_mimic_dir(tmp_path / "data", samples)
    rc = main(["run", "--data", str(data), "--editors", "identity,oracle", "--metrics", "out_of_mask_change",
               "--out", str(tmp_path / "results"), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.index("out-of-mask MAE ↓") < out.index("identity (floor)") < out.index("records:")
    assert "oracle (ceiling)" in out


def test_report_refuses_an_unknown_format(run_dir, tmp_path, capsys):
    assert main(["report", str(run_dir), "--out", str(tmp_path / "r.pdf")]) == 2
    err = capsys.readouterr().err
    assert "`--out` must end in .html, .md, .tex, .csv, got 'r.pdf'" in err and len(err.strip().splitlines()) == 1
