"""Errors as one short line."""

from gan.errors import first_line


def test_first_line_names_the_type_and_keeps_one_line():
    assert first_line(ValueError("bad value\n  with a long\n  traceback-like tail")) == "ValueError: bad value"
    assert first_line(RuntimeError("")) == "RuntimeError"
