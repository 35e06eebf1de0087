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


# A suite reaches a run from a file, from the command line's overrides or from Python
# (`dataclasses.replace`); every route meets the one check, with the same words.
BAD_VALUES = [
    ({"batch_size": 0}, "`batch_size` must be >= 1, got 0"),
    ({"batch_timeout_s": 0}, "`batch_timeout_s` must be > 0 seconds or null, got 0"),
    ({"threads": 0}, "`threads` must be an integer >= 1 or null"),
    ({"eval_size": 8}, "`eval_size` must be >= 16 or null (native size), got 8"),
    ({"device": "gpu"}, "`device` must be cpu, cuda, cuda:N or mps, got 'gpu'"),
    ({"data": {"limit": 0}}, "`limit` must be >= 1, got 0"),
    ({"editors": [{"name": "identity", "label": "Floor"}, {"name": "identity", "label": "floor"}]},
     "editor labels must be unique (ignoring case"),
    ({"metrics": [{"name": "gt_fidelity"}, {"name": "gt_fidelity"}]}, "Metric labels must be unique, got gt_fidelity more"),
]


@pytest.mark.parametrize("values, message", BAD_VALUES)
def test_one_suite_check_for_files_overrides_and_python(values, message, tmp_path):
    import yaml

    from ix2x import preflight
    from ix2x.errors import ConfigError, UserError
    from ix2x.suite import check_suite, suite_from_dict, suite_problems

    raw = {"name": "s", "editors": [{"name": "identity"}], **values}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"^suite file .*s\.yaml: ") as from_file:
        load_suite(tmp_path / "s.yaml")
    assert message in str(from_file.value)

    assert suite_problems(suite_from_dict({"name": "s", "editors": [{"name": "identity"}]})) == []
    from ix2x.configs import build
    from ix2x.suite import Suite

    in_python = build(Suite, raw, where="test")  # the dataclass as Python builds it: no file, no check yet
    assert [p for p in suite_problems(in_python) if message in p]
    for check in (check_suite, preflight.check_specs, runner.resolve):
        with pytest.raises(UserError) as e:
            check(in_python)
        assert message in str(e.value), check


def test_a_suite_without_editors_does_not_run():
    from ix2x import preflight
    from ix2x.errors import UserError
    from ix2x.suite import suite_from_dict

    suite = suite_from_dict({"name": "empty", "metrics": [{"name": "gt_fidelity"}]})  # a file may be completed later
    for check in (preflight.check_specs, runner.resolve):
        with pytest.raises(UserError, match="Suite `empty` has no editors"):
            check(suite)
