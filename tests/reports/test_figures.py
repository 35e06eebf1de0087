"""Figures are files a paper can use: PNG and SVG beside the report, named axes, every editor
present (an editor without a value keeps a visibly empty bar)."""

import re

from PIL import Image

from ix2x.reports import write_report


def test_each_figure_is_a_png_and_an_svg_beside_the_report(run_dir, tmp_path):
    text = write_report([run_dir], tmp_path / "rep.html").read_text()
    figs = re.findall(r'<figure><figcaption>([^<]+)</figcaption><img class="fig" alt="[^"]+" src="([^"]+)">', text)
    assert figs and all(src.startswith("rep_files/") for _, src in figs)
    for caption, src in figs:
        png = tmp_path / src
        assert png.is_file() and png.with_suffix(".svg").is_file()
        with Image.open(png) as im:
            assert im.width >= 600  # 150 dpi
    svg = (tmp_path / "rep_files" / "bars-guidance-localization-auroc.svg").read_text()
    # the axis says what it is and which way is better; every editor has its row, identity and
    # flaky (no guidance map) as an empty bar marked n/a
    assert "guidance AUROC (higher is better)" in svg
    for label in ("bright", "dim", "flaky", "identity (floor)", "oracle (ceiling)"):
        assert f">{label}<" in svg
    assert svg.count(">n/a<") == 2
    latency = (tmp_path / "rep_files" / "bars-latency-median-s.svg").read_text()
    assert "latency per edit (ms) (lower is better)" in latency
