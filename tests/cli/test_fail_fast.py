"""Mistakes are answered before torch is imported, in one line, with exit code 2, and leave no run
directory. Each case runs the CLI in a fresh interpreter and then asks it whether torch was imported."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent("""
    import json, sys
    from ix2x.cli.main import main
    rc = main(sys.argv[1:])
    print(json.dumps({"rc": rc, "torch": "torch" in sys.modules}))
""")


def _probe(args, cwd):
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=cwd,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "HF_HUB_OFFLINE": "1",
                              "PYTHONPATH": str(REPO)})
    assert out.stdout.strip(), out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


@pytest.mark.parametrize("args, message", [
    (["run", "--suite", "no_such_suite"], "Unknown suite `no_such_suite`"),
    (["run", "--suite", "phantom_smoke", "--editors", "identy"], "Did you mean 'identity'"),
    (["run", "--suite", "phantom_smoke", "--metrics", "lpip"], "Unknown metric `lpip`"),
    (["run", "--suite", "phantom_smoke", "--batch-size", "0"], "`batch_size` must be >= 1, got 0"),
    (["run", "--suite", "phantom_smoke", "--device", "gpu"], "`device` must be cpu, cuda, cuda:N or mps"),
    (["run", "--suite", "mimic"], "Pass `--data DIR`"),
    (["run", "--suite", "mimic", "--data", "no_such_dir"], "no_such_dir, which does not exist"),
    (["run", "--suite", "phantom_smoke", "--editor-arg", "nosuch.steps=3"], "names editor `nosuch`"),
    (["run", "--suite", "phantom", "--editors", "instructx2x", "--editor-arg", "instructx2x.model=no_model"],
     "model folder no_model does not exist"),
    (["run", "--resume", "."], "--resume must be a run directory"),
    (["report", ".", "--out", "r.html"], "RUN_DIR must be a run directory"),
    (["compare", ".", "."], "RUN_A must be a run directory"),
    (["validate", "--suite", "no_such_suite"], "Unknown suite"),
    (["validate", "--data", "no_such_dir"], "no_such_dir, which does not exist"),
])
def test_mistakes_answer_before_torch(tmp_path, args, message):
    result, err = _probe(args + (["--out", str(tmp_path / "results")] if args[0] == "run" and
                                 "--resume" not in args else []), tmp_path)
    assert result == {"rc": 2, "torch": False}, err
    lines = err.strip().splitlines()
    assert message in err and len(lines) <= 2 and lines[0].startswith(f"ix2x {args[0]}: error:"), err
    assert not (tmp_path / "results").exists()  # no trace of a failed start


def test_missing_model_of_a_default_config_stops_the_run_before_its_directory(tmp_path):
    """A model only the editor's Config names is found by the problems hook (after the import), still
    before the run directory is made and with the same wording as validate."""
    result, err = _probe(["run", "--suite", "phantom_smoke", "--editors", "instructx2x", "--out",
                          str(tmp_path / "results")], tmp_path)
    assert result["rc"] == 2
    assert "editor `instructx2x`: model folder models/diffusers/InstructX2X does not exist" in err
    assert "--editor-arg instructx2x.model=DIR" in err
    assert not (tmp_path / "results").exists()


def test_a_non_positive_batch_timeout_is_one_line_before_anything_starts(tmp_path, capsys):
    # It reached the suite check only after torch and start_run, naming a run.json already deleted.
    from ix2x.cli.main import main

    assert main(["run", "--batch-timeout", "-3", "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "`--batch-timeout` must be > 0" in err and not (tmp_path / "out").exists()
