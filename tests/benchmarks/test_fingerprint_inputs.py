"""Every input a suite reads is checked on resume and rescore, not only the data folder: images
in a MIMIC-CXR tree elsewhere, MIMIC-IV tables, a pseudo-mask folder, a symlinked folder. Each
test changes one file after a run and sees the refusal (main skipped the check for all four)."""

import gzip
import importlib.util
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ix2x.benchmarks import rundir, runner
from ix2x.errors import UserError
from ix2x.suite import ComponentSpec, suite_from_dict

_spec = importlib.util.spec_from_file_location("mimic_trees", Path(__file__).parents[1] / "data" / "test_mimic_trees.py")
trees = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(trees)

OOM = {"name": "out_of_mask_change", "args": {"lpips_net": None}}


def _run(tmp_path, data, metrics=(OOM,)):
    suite = suite_from_dict({"name": "fp", "editors": [{"name": "identity"}], "metrics": list(metrics),
                             "isolation": "none", "batch_size": 2, "report_images": False, "data": data})
    run_dir = runner.start_run(suite, tmp_path / "out")
    out = runner.execute(run_dir, progress=False)
    assert out.ok and out.n_records > 0
    return run_dir


def _refused(run_dir):
    with pytest.raises(rundir.DataChanged, match="The data changed since"):
        runner.execute(run_dir, progress=False)


def _rewrite(path, write):
    """Change a file as a user's tool would: a new file renamed over the old (time and size may not change)."""
    tmp = path.with_name("tmp-" + path.name)
    write(tmp)
    os.replace(tmp, path)


def test_images_in_a_mimic_cxr_tree_outside_the_data_folder(tmp_path):
    tree = trees._tree(tmp_path / "mimic-cxr-jpg", "jpg")
    data = trees._instructions(tmp_path / "edit")
    run_dir = _run(tmp_path, {"source": "dir", "path": str(data), "layout": "mimic_cxr_jpg",
                              "images_path": str(tree)})
    (past,) = tree.glob(f"files/*/*/*/{trees.STUDIES[0][0]}.jpg")
    inverted = 255 - np.asarray(Image.open(past))
    _rewrite(past, lambda p: Image.fromarray(inverted).save(p, format="JPEG", quality=100))
    _refused(run_dir)
    with pytest.raises(UserError, match="Restore the data the run was made from"):
        runner.rescore(run_dir, [ComponentSpec("out_of_mask_change", label="oom2", args={"lpips_net": None})],
                       progress=False)


def test_mimic_iv_tables(tmp_path):
    tree = trees._tree(tmp_path / "mimic-cxr-jpg", "jpg")
    data = trees._instructions(tmp_path / "edit")
    hosp = trees._mimic_iv(tmp_path / "mimiciv")
    run_dir = _run(tmp_path, {"source": "dir", "path": str(data), "layout": "mimic_cxr_jpg",
                              "images_path": str(tree), "mimic_iv": str(hosp)})
    table = pd.read_csv(hosp / "patients.csv.gz")
    table.loc[table.subject_id == 10000032, "gender"] = "M"

    def write(p):
        with gzip.open(p, "wt") as f:
            table.to_csv(f, index=False)

    _rewrite(hosp / "patients.csv.gz", write)
    _refused(run_dir)


def test_a_pseudo_mask_folder(tmp_path, samples):
    from samples_for_tests import write_mimic_dir

    data = write_mimic_dir(tmp_path / "data", samples)
    masks = tmp_path / "masks"
    masks.mkdir()
    effusion = np.zeros((512, 512), np.uint8)
    effusion[300:450, 50:200] = 1
    np.save(masks / "pseudo_mask_Effusion.npy", effusion)
    run_dir = _run(tmp_path, {"source": "dir", "path": str(data), "region": "pseudo_mask",
                              "mask_source": str(masks)})
    effusion[300:450, 300:450] = 1  # the right side too
    _rewrite(masks / "pseudo_mask_Effusion.npy", lambda p: np.save(open(p, "wb"), effusion))
    _refused(run_dir)


def test_a_symlinked_image_folder(tmp_path, samples):
    from samples_for_tests import write_mimic_dir

    data = write_mimic_dir(tmp_path / "data", samples)
    store = tmp_path / "store"
    store.mkdir()
    os.replace(data / "past", store / "past")
    (data / "past").symlink_to(store / "past", target_is_directory=True)
    run_dir = _run(tmp_path, {"source": "dir", "path": str(data), "link_roots": [str(store)]})
    first = sorted((store / "past").iterdir())[0]
    inverted = 255 - np.asarray(Image.open(first))
    _rewrite(first, lambda p: Image.fromarray(inverted).save(p, format="PNG"))
    _refused(run_dir)
