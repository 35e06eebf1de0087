"""The command line: listing, errors that teach, editor-arg precedence."""

import subprocess
import sys
from pathlib import Path

import pytest

from ix2x.cli.main import main


def test_ls_editors_lists_builtins(capsys):
    assert main(["ls", "editors"]) == 0
    out = capsys.readouterr().out
    assert "identity" in out and "oracle" in out and "ix2x.editors.identity:Identity" in out


def test_ls_suites(capsys):
    assert main(["ls", "suites"]) == 0
    assert "phantom_smoke" in capsys.readouterr().out


def test_unknown_editor_says_did_you_mean(capsys):
    assert main(["run", "--editors", "identiti", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Unknown editor `identiti`. Did you mean 'identity'?" in err and "oracle" in err


def test_unknown_suite(capsys):
    assert main(["run", "--suite", "phantom_smok"]) == 2
    assert "Did you mean 'phantom_smoke'" in capsys.readouterr().err


def test_suite_with_unknown_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\neditors: [{name: identity}]\nbatchsize: 3\n")
    assert main(["run", "--suite", str(bad)]) == 2
    assert "Unknown setting(s) batchsize" in capsys.readouterr().err


def test_missing_dataset_dir(tmp_path, capsys):
    assert main(["run", "--data", str(tmp_path / "nope"), "--editors", "identity", "--quiet",
                 "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_editor_arg_for_unknown_editor(capsys):
    assert main(["run", "--editors", "identity", "--editor-arg", "oracle.x=1", "--quiet"]) == 2
    assert "names editor `oracle`, which is not in this run" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", ["run", "ls", "validate"])
def test_every_subcommand_has_help_with_example(cmd):
    out = subprocess.run([sys.executable, "-m", "ix2x", cmd, "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "example" in out


def test_editor_args_precedence():

    from ix2x.cli.common import apply_editor_args
    from ix2x.suite import suite_from_dict

    suite = suite_from_dict({"name": "s", "editors": [{"name": "a", "args": {"steps": 5, "tau": 0.1}},
                                                      {"name": "b", "args": {"steps": 7}}]})
    out = apply_editor_args(suite, ["steps=9", "a.tau=0.3"])
    assert out.editors[0].args == {"steps": 9, "tau": 0.3} and out.editors[1].args == {"steps": 9}


def test_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"ix2x {version('ix2x')}"


def test_compare_help_gates_name_existing_keys():
    """The example used `classifier_shift.effectiveness`, which no metric reports (exit 2)."""
    import re

    from ix2x.benchmarks.compare import Gate
    from ix2x import registry
    from ix2x.cli.compare import EXAMPLES

    gates = [Gate.parse(g) for g in re.findall(r"--fail-if (\S+)", EXAMPLES)]
    assert len(gates) == 2
    for gate in gates:
        assert gate.key in registry.load("metric", gate.metric).higher_is_better, gate


def test_ls_json(capsys):
    import json

    assert main(["ls", "metrics", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"name": "lpips", "target": "ix2x.metrics.lpips:Lpips"}.items() <= next(r for r in rows if r["name"] == "lpips").items()
    assert main(["ls", "suites", "--json"]) == 0
    assert "mimic" in {r["name"] for r in json.loads(capsys.readouterr().out)}


def test_run_command_is_argument_handling_only():
    """`ix2x run` parses options; launching, resuming and printing live in the library
    (ix2x.benchmarks.console, ix2x.benchmarks.api), where Python users and `ix2x score` reach them."""
    import ix2x.cli.run as run_cli

    source = Path(run_cli.__file__).read_text()
    assert len(source.splitlines()) <= 65
    assert "print(" not in source and "resume_run" not in source and "run_suite" not in source
