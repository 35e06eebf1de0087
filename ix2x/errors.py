"""Errors that reach the user as one clear line (the CLI prints them without a traceback)."""

from ix2x.registry import RegistryError


class UserError(Exception):
    """Bad input: a missing file, an unknown name, a malformed setting. The message says how to fix it."""


class MissingWeightsError(UserError, FileNotFoundError):
    """Model weights the user must supply are absent: the message names the file, where it goes and
    the command that fetches it on a machine with internet."""


class ConfigError(ValueError):
    """A setting that does not fit its config (a suite file, `--editor-arg`, a component's Config)."""


class DataError(UserError):
    """A dataset that cannot be read as documented."""


# Config and registry errors are user errors too; the CLI catches this tuple.
USER_ERRORS = (UserError, ConfigError, RegistryError)
