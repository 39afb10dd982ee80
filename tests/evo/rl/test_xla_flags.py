"""The XLA options of the population trainer's quick compiles."""

from evo.rl.xla_flags import QUICK_COMPILE, quick_compile_options


def test_traced_trainers_and_setup_compile_with_the_quick_options_unless_turned_off(monkeypatch):
    monkeypatch.delenv("EVO_XLA_QUICK_COMPILE", raising=False)
    assert quick_compile_options() == QUICK_COMPILE
    assert QUICK_COMPILE["xla_backend_optimization_level"] == 1
    for off in ("off", "0", "False"):
        monkeypatch.setenv("EVO_XLA_QUICK_COMPILE", off)
        assert quick_compile_options() == {}
    monkeypatch.setenv("EVO_XLA_QUICK_COMPILE", "on")
    assert quick_compile_options() == QUICK_COMPILE
