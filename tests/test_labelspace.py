"""The label space: parsing, refusals, prompts."""

import pytest

from fewshot import FewshotError
from fewshot.labelspace import LabelSpace


def test_label_space_parses_names_and_descriptions():
    space = LabelSpace.parse(["# topics", "Sports: games, athletes", "", "card_arrival"])
    assert space.names == ("Sports", "card_arrival")
    assert space.descriptions == ("games, athletes", "")
    prompts = space.prompts()
    assert "Sports: games, athletes" in prompts[0]
    assert "This text is about card arrival." in prompts[1]
    assert list(space.index(["sports", "card_arrival"])) == [0, 1]


@pytest.mark.parametrize(
    "lines, message",
    [
        (["Sports", "sports"], "Duplicate label"),
        (["Sports", ": no name"], "empty"),
        (["Sports"], "At least two labels"),
        ([], "At least two labels"),
        (["Sports", "x" * 200], "200 characters long"),
    ],
)
def test_label_space_refuses_bad_labels(lines, message):
    with pytest.raises(FewshotError, match=message):
        LabelSpace.parse(lines)


def test_unknown_label_is_an_error():
    with pytest.raises(FewshotError, match="Unknown label"):
        LabelSpace(("a", "b")).index(["c"])
