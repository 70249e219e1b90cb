import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casstore import InvalidIdError
from casstore.util.names import check_domain, check_model_id, new_model_id


@pytest.mark.parametrize("name", ["v1", "my-custom-id-v1", "a.b_c-D9", "x" * 128, "1.0.0", "model_v2.pkl"])
def test_valid_names(name: str) -> None:
    assert check_model_id(name) == name
    assert check_domain(name) == name


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("", "empty"),
        ("x" * 129, "at most 128"),
        ("a/b", "ASCII letters"),
        ("a b", "ASCII letters"),
        ("naïve", "ASCII letters"),
        ("a..b", "'..'"),
        (".hidden", "start with '.'"),
        ("trailing.", "end with '.'"),
        ("name.lock", ".lock"),
        ("a~1", "ASCII letters"),
        ("a:b", "ASCII letters"),
        ("@{x}", "ASCII letters"),
        ("a\nb", "ASCII letters"),
    ],
)
def test_invalid_names_name_the_rule(name: str, rule: str) -> None:
    with pytest.raises(InvalidIdError, match=rule.replace(".", r"\.").replace("(", r"\(")) as ei:
        check_model_id(name)
    assert isinstance(ei.value, ValueError)
    assert ei.value.name == name
    with pytest.raises(InvalidIdError):
        check_domain(name)


def test_non_string_rejected() -> None:
    with pytest.raises(InvalidIdError, match="str"):
        check_model_id(5)


def test_default_id_is_uuid4() -> None:
    import uuid

    a, b = new_model_id(), new_model_id()
    assert a != b
    assert uuid.UUID(a).version == 4
    assert check_model_id(a) == a


@settings(deadline=None)  # the default 200 ms per example can be exceeded on a busy machine
@given(st.text(alphabet=st.characters(codec="ascii"), max_size=140))
def test_accepted_names_are_valid_git_ref_components(name: str) -> None:
    from dulwich.refs import check_ref_format

    try:
        check_model_id(name)
    except InvalidIdError:
        return
    assert check_ref_format(b"refs/cas/models/d/" + name.encode())
    assert len(name) <= 128
