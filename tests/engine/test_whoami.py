"""`whoami`: git's user.email, else the OS user (getpass is imported only for that case)."""

from __future__ import annotations

import getpass
from typing import Any

import pytest

from engine.core import whoami
from tests.conftest import git


def test_git_email_first(make_repo: Any) -> None:
    repo = make_repo("name: x\n")
    assert whoami(repo.path) == "ada@bakery.test"


def test_os_user_without_an_email(make_repo: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo("name: x\n")
    git(repo.path, "config", "--unset", "user.email")
    monkeypatch.setenv("HOME", str(repo.path))  # no global git config to fall back on
    monkeypatch.setenv("XDG_CONFIG_HOME", str(repo.path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    assert whoami(repo.path) == getpass.getuser()
    assert whoami(None) == getpass.getuser()
