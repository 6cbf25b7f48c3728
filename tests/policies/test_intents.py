import pytest
from pydantic import ValidationError

from tierroute.policies.intents import IntentClassifier, IntentSettings

ROUTES = {"threshold": 0.2, "routes": [
    {"name": "code", "tier": "reasoning", "utterances": ["write a python function that parses a csv file",
                                                          "fix this bug in my javascript code",
                                                          "refactor this class to use dependency injection"]},
    {"name": "extraction", "models": ["gpt-5-nano"], "utterances": ["extract all email addresses from this text",
                                                                      "pull the dates and amounts out of this invoice as JSON"]},
    {"name": "chit-chat", "tier": "extraction", "utterances": ["hi, how are you?", "tell me a joke", "good morning!"]},
]}


@pytest.fixture(scope="module")
def classifier() -> IntentClassifier:
    return IntentClassifier.from_settings(IntentSettings.model_validate(ROUTES))


@pytest.mark.parametrize("text,expected", [
    ("Write a Python function to merge two sorted lists", "code"),
    ("extract the phone numbers from this email", "extraction"),
    ("hey there, how are you doing today?", "chit-chat"),
])
def test_matches(classifier: IntentClassifier, text: str, expected: str) -> None:
    result = classifier.classify(text)
    assert result.match == expected
    assert set(result.scores) == {"code", "extraction", "chit-chat"}
    assert result.scores[expected] == max(result.scores.values())


def test_match_carries_target(classifier: IntentClassifier) -> None:
    assert classifier.classify("extract all the emails from this text").models == ("gpt-5-nano",)
    assert classifier.classify("refactor this class please").tier == "reasoning"


def test_no_intent_matched(classifier: IntentClassifier) -> None:
    result = classifier.classify("Summarize the causes of the French revolution")
    assert result.match is None and result.tier is None and result.models is None
    assert result.as_dict()["match"] is None


@pytest.mark.parametrize("bad,needle", [
    ({"routes": [{"name": "x", "utterances": ["a"]}]}, "exactly one of 'tier'"),
    ({"routes": [{"name": "x", "tier": "t", "utterances": []}]}, "utterances"),
    ({"threshold": 2, "routes": []}, "threshold"),
    ({"routes": [{"name": "x", "tier": "t", "utterances": ["a"]}, {"name": "x", "tier": "t", "utterances": ["b"]}]}, "duplicate"),
    ({"routes": [], "thresh": 0.3}, "thresh"),
])
def test_validation_errors_are_clear(bad: dict, needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        IntentSettings.model_validate(bad)
