"""Tables of good and bad input for the without_defaults filter."""

import pytest
from ansible.errors import AnsibleFilterError

import argspec


@pytest.mark.parametrize(("options", "expected"), [
    ({}, {}),
    ({"a_port": {"type": "int", "default": 80}}, {"a_port": {"type": "int"}}),
    ({"a_list": {"type": "list", "elements": "dict", "default": [],
                 "options": {"name": {"type": "str", "required": True},
                             "mode": {"type": "str", "default": "0644"}}}},
     {"a_list": {"type": "list", "elements": "dict",
                 "options": {"name": {"type": "str", "required": True}, "mode": {"type": "str"}}}}),
    ({"a_name": {"type": "str", "description": "default: the host name"}},
     {"a_name": {"type": "str", "description": "default: the host name"}}),
])
def test_defaults_removed_at_every_depth(options, expected):
    assert argspec.without_defaults(options) == expected


def test_input_is_left_unchanged():
    options = {"a": {"type": "int", "default": 1}}
    argspec.without_defaults(options)
    assert options == {"a": {"type": "int", "default": 1}}


@pytest.mark.parametrize(("options", "message"), [
    ([], "got list"),
    ("a_port", "got str"),
    ({"a_port": "int"}, "option 'a_port'"),
    ({"a": {"type": "list", "options": {"b": None}}}, "option 'b'"),
])
def test_bad_input_names_what_is_wrong(options, message):
    with pytest.raises(AnsibleFilterError, match=message):
        argspec.without_defaults(options)
