"""Every boolean setting is parsed one way (``tengo_jobs.config.env_flag``): 1/true/yes/on,
0/false/no/off/empty, any case, spaces ignored; anything else stops the process with a
message naming the variable and the accepted values."""

from __future__ import annotations

import pytest

from tengo_jobs.config import Env, Settings, env_flag
from tengo_jobs.errors import ConfigurationError

BOOLEAN_SETTINGS = [(Env.TENGO_ALLOW_UNSAFE, "allow_unsafe"),
                    (Env.TENGO_GROUP_COMMIT, "group_commit")]
TRUE = ["1", "true", "yes", "on", "ON", " True ", "Yes\n"]
FALSE = ["0", "false", "no", "off", "", "  ", "OFF", "False"]


@pytest.mark.parametrize("name,field", BOOLEAN_SETTINGS)
@pytest.mark.parametrize("raw", TRUE)
def test_every_true_word_turns_a_setting_on(name, field, raw):
    assert getattr(Settings.from_env({name.value: raw}), field) is True


@pytest.mark.parametrize("name,field", BOOLEAN_SETTINGS)
@pytest.mark.parametrize("raw", FALSE)
def test_every_false_word_and_empty_turn_a_setting_off(name, field, raw):
    assert getattr(Settings.from_env({name.value: raw}), field) is False


@pytest.mark.parametrize("name,field", BOOLEAN_SETTINGS)
def test_unset_is_off(name, field):
    assert getattr(Settings.from_env({}), field) is False


@pytest.mark.parametrize("name,field", BOOLEAN_SETTINGS)
@pytest.mark.parametrize("raw", ["2", "enabled", "y", "tru", "on please"])
def test_anything_else_is_an_error_naming_the_variable_and_the_words(name, field, raw):
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({name.value: raw})
    message = str(caught.value)
    assert name.value in message
    for word in ("1", "true", "yes", "on", "0", "false", "no", "off", "empty"):
        assert word in message


def test_an_application_reads_its_own_booleans_with_the_same_helper():
    assert env_flag({"APP_FEATURE": "On"}, "APP_FEATURE") is True
    assert env_flag({}, "APP_FEATURE", default=True) is True
    assert env_flag({"APP_FEATURE": ""}, "APP_FEATURE", default=True) is False
    with pytest.raises(ConfigurationError, match="APP_FEATURE"):
        env_flag({"APP_FEATURE": "maybe"}, "APP_FEATURE")
