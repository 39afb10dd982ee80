"""The XLA options of the population trainer's quick compiles."""

import os

import pytest

from evo.rl.xla_flags import QUICK_COMPILE, configure, env_switch, quick_compile_options


def test_traced_trainers_and_setup_compile_with_the_quick_options_unless_turned_off(monkeypatch):
    monkeypatch.delenv("EVO_XLA_QUICK_COMPILE", raising=False)
    assert quick_compile_options() == QUICK_COMPILE
    assert QUICK_COMPILE["xla_backend_optimization_level"] == 1
    for off in ("off", "0", "False"):
        monkeypatch.setenv("EVO_XLA_QUICK_COMPILE", off)
        assert quick_compile_options() == {}
    monkeypatch.setenv("EVO_XLA_QUICK_COMPILE", "on")
    assert quick_compile_options() == QUICK_COMPILE


def test_a_switch_that_is_neither_on_nor_off_warns_and_keeps_its_default(monkeypatch):
    monkeypatch.setenv("EVO_XLA_QUICK_COMPILE", "sometimes")
    with pytest.warns(RuntimeWarning, match="'sometimes' is not a switch.*using on"):
        assert quick_compile_options() == QUICK_COMPILE
    monkeypatch.setenv("EVO_TEST_SWITCH", " Yes ")
    assert env_switch("EVO_TEST_SWITCH", default=False) is True
    monkeypatch.setenv("EVO_TEST_SWITCH", "")
    assert env_switch("EVO_TEST_SWITCH", default=False) is False


def test_fma_is_kept_on_request_and_a_users_isa_choice_wins(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_max_isa=AVX")
    monkeypatch.setenv("EVO_XLA_FMA", "on")
    assert configure() is True  # the user's flag decides
    monkeypatch.setenv("XLA_FLAGS", "")
    assert configure() is False
    assert os.environ["XLA_FLAGS"] == ""  # nothing added
