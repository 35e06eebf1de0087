"""Small robustness items: bad --editor-arg YAML is one line, editor labels differing only in
case are refused, the remote-code message names a flag that exists, the CLI runs offline unless
downloads are allowed."""

import os
import subprocess
import sys

import pytest

from ix2x.cli.main import main
from ix2x.configs import ConfigError, parse_assignments
from ix2x.suite import suite_from_dict


@pytest.mark.parametrize("raw", ["!!python/object/apply:os.system ['true']", "*undefined", "[" * 5000 + "]" * 5000])
def test_bad_editor_arg_yaml_is_one_line(raw):
    with pytest.raises(ConfigError) as e:
        parse_assignments([f"steps={raw}"], flag="--editor-arg")
    assert "`--editor-arg` value of `steps` must be plain YAML" in str(e.value) and "\n" not in str(e.value)


def test_bad_editor_arg_yaml_through_the_cli(capsys):
    rc = main(["run", "--editors", "identity", "--editor-arg", "identity.x=*nope", "--limit", "1", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "must be plain YAML" in err


def test_editor_labels_unique_ignoring_case():
    with pytest.raises(ConfigError, match="ignoring case"):
        suite_from_dict({"name": "s", "editors": [{"name": "identity", "label": "Floor"},
                                                  {"name": "identity", "label": "floor"}]})


def test_remote_code_message_names_a_real_flag(tmp_path):
    import json

    from ix2x.cli.run import add_arguments
    from ix2x.diffusion.folders import check_remote_code
    from ix2x.errors import UserError

    (tmp_path / "config.json").write_text(json.dumps({"auto_map": {"AutoModel": "modeling.M"}}))
    with pytest.raises(UserError) as e:
        check_remote_code(tmp_path, False)
    assert "--set" not in str(e.value) and "--editor-arg EDITOR.trust_remote_code=true" in str(e.value)
    import argparse

    p = argparse.ArgumentParser()
    add_arguments(p)
    assert p.parse_args(["--editor-arg", "x.trust_remote_code=true"]).editor_arg  # the flag exists


def test_cli_sets_hf_hub_offline_unless_downloads_are_allowed():
    code = "import os; from ix2x.cli.main import main; main(['ls', 'editors']); print('OFF=' + str(os.environ.get('HF_HUB_OFFLINE')))"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "IX2X_ALLOW_DOWNLOADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert "OFF=1" in out.stdout, out.stderr
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "IX2X_ALLOW_DOWNLOADS": "1"})
    assert "OFF=None" in out.stdout, out.stderr
