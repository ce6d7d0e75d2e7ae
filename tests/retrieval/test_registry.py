import pytest

from index.errors import RetrError
from retrieval.registry import Registry


def make() -> Registry[int]:
    registry: Registry[int] = Registry("widget")
    for name, value in (("zeta", 1), ("alpha", 2), ("mid", 3)):
        registry.register(name, value)
    return registry


def test_get_returns_what_was_registered():
    registry = make()
    assert registry.get("alpha") == 2
    assert "mid" in registry and "nope" not in registry and len(registry) == 3


def test_a_duplicate_name_is_an_error_naming_it():
    registry = make()
    with pytest.raises(ValueError, match="a widget named 'alpha' is already registered"):
        registry.register("alpha", 9)
    assert registry.get("alpha") == 2  # the first registration stands


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(RetrError, match=r"^unknown widget 'beta'; known: alpha, mid, zeta$"):
        make().get("beta")


def test_names_and_iteration_keep_registration_order():
    registry = make()
    assert registry.names() == ["zeta", "alpha", "mid"]
    assert list(registry) == ["zeta", "alpha", "mid"]
