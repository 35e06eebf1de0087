"""What a report of a large run costs: 10,000 samples x 3 editors, rendered to HTML (slow: building
the run directory takes minutes; the render itself is what is timed).

    make test-slow PYTEST_ARGS="tests/reports/test_scale.py -s"

The run directory is synthetic but real in form: run.json from ``runner.start_run``, 30,000
records through ``records.RecordWriter`` (random per-sample values of three built-in metrics,
varied instructions), a 16-bit edit PNG per record, the inputs of ``report_samples`` samples, and
``summary.csv`` from ``runner.finalize``. The editors are identity-like (names only: nothing edits).
"""

import os
import random
import shutil
import time

import numpy as np
import pytest
import torch

from ix2x.benchmarks import runner
from ix2x import records
from ix2x.images import save_image
from ix2x.suite import suite_from_dict

N_SAMPLES = 10_000
SIZE = 64
OPS = ["Add the finding of {side}pleural effusion.", "Remove the finding of {side}pneumothorax.",
       "Add the finding of {side}atelectasis.", "Change the level of edema from mild to severe.",
       "Add the findings of {side}consolidation and edema."]
SIDES = ["", "left ", "right ", "bilateral "]


def build_run(root):
    suite = suite_from_dict({"name": "scale", "editors": [{"name": "identity"}, {"name": "oracle"},
                                                          {"name": "identity", "label": "copy"}],
                             "metrics": [{"name": "out_of_mask_change"}, {"name": "gt_fidelity"},
                                         {"name": "guidance_localization"}]})
    run_dir = runner.start_run(suite, root)
    rng, gen = random.Random(0), torch.Generator().manual_seed(0)
    ids = [f"s{i:05d}" for i in range(N_SAMPLES)]
    text = {sid: rng.choice(OPS).format(side=rng.choice(SIDES)) for sid in ids}
    for sid in ids[:suite.report_samples]:
        for folder in ("input", "target", "region"):
            save_image(run_dir / "images" / f"_{folder}" / records.image_name(sid),
                       (torch.rand(1, SIZE, SIZE, generator=gen) > 0.5).float(), bits=8 if folder == "region" else 16)
    with records.RecordWriter(run_dir / records.SAMPLES_FILE) as w:
        for editor in ("identity", "oracle", "copy"):
            batch = []
            for sid in ids:
                rel = f"images/{editor}/{records.image_name(sid)}"
                save_image(run_dir / rel, torch.rand(1, SIZE, SIZE, generator=gen))
                u = rng.random
                batch.append({"editor": editor, "sample_id": sid, "patient_id": None, "instruction": text[sid],
                              "status": "ok", "error": None, "latency_s": 1e-4 * (1 + u()), "metrics_s": 1e-3,
                              "peak_memory_mb": None, "info": {"model_calls": 0}, "image": rel,
                              "metrics": {"out_of_mask_change": {"mae": u() * 0.05, "mse": u() * 0.01,
                                                                 "psnr": 30 + 20 * u(), "changed_fraction": u(),
                                                                 "locality": u(), "ssim": u(), "lpips": None,
                                                                 "nan_reason": "lpips: no backbone"},
                                          "gt_fidelity": {k: u() for k in ("mae", "mae_in", "mae_out", "ssim",
                                                                           "ssim_in", "ssim_out")},
                                          "guidance_localization": {k: u() for k in ("auroc", "iou", "mask_recall",
                                                                                     "mask_precision",
                                                                                     "pointing_game")}}})
            w.write_batch(batch)
    runner.finalize(run_dir)
    return run_dir


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    return build_run(tmp_path_factory.mktemp("scale"))


@pytest.mark.slow
def test_report_of_10000_samples_3_editors(benchmark, big_run):
    from ix2x.reports import write_report

    out = big_run / "report.html"
    cpu = {}

    def render():
        t0 = time.process_time()  # CPU seconds: on a shared machine the wall time depends on the load
        write_report([big_run], out)
        cpu["s"] = time.process_time() - t0

    benchmark.pedantic(render, rounds=1, iterations=1)
    size = out.stat().st_size
    benchmark.extra_info.update(html_bytes=size, records=3 * N_SAMPLES, cpu_s=cpu["s"])
    print(f"\nreport of {3 * N_SAMPLES} records: {benchmark.stats.stats.median:.1f} s wall, {cpu['s']:.1f} s CPU, "
          f"HTML {size / 2**20:.1f} MiB, {os.getloadavg()[0]:.1f} load average")
    assert np.isfinite(benchmark.stats.stats.median)
    exe = shutil.which("chromium")
    if exe is None:
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        t0 = time.perf_counter()
        page.goto(out.as_uri())
        page.wait_for_function("document.getElementById('page-info').textContent.includes('30000 of 30000')")
        opened = time.perf_counter() - t0
        t0 = time.perf_counter()
        page.locator("#samples th[data-sort]").first.locator("button.sort").click()
        page.select_option("#f-finding", "Edema")
        sorted_filtered = time.perf_counter() - t0
        browser.close()
    benchmark.extra_info.update(open_s=opened, sort_filter_s=sorted_filtered)
    print(f"opens in Chromium in {opened:.1f} s (first page drawn); a sort and a filter take {sorted_filtered:.2f} s")
