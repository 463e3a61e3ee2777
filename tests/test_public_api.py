import tutela


def test_version_is_exposed():
    assert tutela.__version__ == "0.1.0"


def test_all_names_resolve():
    for name in tutela.__all__:
        assert getattr(tutela, name) is not None, name
