"""Make an optional dependency fail to import, as it does on a machine without it (or with a broken build)."""
import builtins


def fail_imports(monkeypatch, prefix: str, error: Exception) -> None:
    """Every ``import`` of a module named ``prefix...`` raises ``error`` for the rest of the test."""
    real_import = builtins.__import__

    def failing_import(name, *args, **kwargs):
        if name.startswith(prefix):
            raise error
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", failing_import)
