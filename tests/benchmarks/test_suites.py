"""Every built-in suite file loads, names installed editors and metrics, and has valid settings."""

import pytest

from ix2x.benchmarks import runner, suite_names, suite_path
from ix2x.suite import load_suite


@pytest.mark.parametrize("name", suite_names())
def test_builtin_suite_resolves(name):
    suite = load_suite(suite_path(name))
    assert suite.name == name and suite.description
    editors, metrics = runner.resolve(suite)
    assert editors and metrics


def test_mimic_suite_never_puts_patient_images_in_reports():
    suite = load_suite(suite_path("mimic"))
    assert suite.report_images is False and suite.data.region == "pseudo_mask"
