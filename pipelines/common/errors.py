"""Errors a user can cause and fix: reported as one line, never as a stack trace."""


class UserError(Exception):
    """Bad input from the user (params, data, files). Stages exit with code 2."""

    exit_code = 2


class ParamsError(UserError):
    """A params file that fails validation."""


class DataError(UserError):
    """A dataset that is missing, corrupt or inconsistent."""


class ModelFileError(UserError):
    """A model file that is missing or not what it claims to be."""
