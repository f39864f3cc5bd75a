"""A shared recipe never holds a credential in ``search_stac``'s ``headers``: only ``${NAME}`` references.

The ``storage:`` section refused literal credentials, but
``search_stac: {headers: {Authorization: "Bearer <token>"}}`` was taken as
it is: the author's token travelled with the file, and ``repr(recipe)``
(which shows the inputs) printed it. A header whose name says it carries a
credential (Authorization, X-Api-Key, Ocp-Apim-Subscription-Key, Cookie,
...) must now be one reference to a variable the user allows (``Bearer``,
``Basic`` or ``Token`` before it allowed); the message never shows the value.
"""

from __future__ import annotations

import pytest

from terrapipe.core.errors import RecipeError
from terrapipe.recipes import load_recipe

LITERAL = "l1teral-t0ken-value"
RECIPE = (
    "version: 1\nname: t\ninputs:\n  main:\n"
    "    source:\n      search_stac:\n        catalog: http://127.0.0.1:9/\n        collections: [c]\n"
    "        headers: {{{name}: '{value}'}}\n"
)


@pytest.mark.parametrize(
    "name",
    ["Authorization", "X-Api-Key", "Ocp-Apim-Subscription-Key", "Cookie", "X-Auth-Token", "api_key"],
)
@pytest.mark.parametrize("value", [LITERAL, f"Bearer {LITERAL}", f"${{TP_R9_HEADER}}{LITERAL}"])
def test_a_literal_credential_header_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("TP_R9_HEADER", "v")
    with pytest.raises(RecipeError) as caught:
        load_recipe(text=RECIPE.format(name=name, value=value), path="r.yaml", allow_env={"TP_R9_HEADER"})
    text = str(caught.value)
    assert text.startswith("r.yaml, line 9: source search_stac: header")
    assert name in text
    assert LITERAL not in text


@pytest.mark.parametrize("value", ["${TP_R9_HEADER}", "Bearer ${TP_R9_HEADER}", "Basic ${TP_R9_HEADER}"])
def test_a_referenced_credential_is_taken_and_never_shown(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("TP_R9_HEADER", LITERAL)
    recipe = load_recipe(text=RECIPE.format(name="Authorization", value=value), allow_env={"TP_R9_HEADER"})
    assert LITERAL not in repr(recipe)
    assert "TP_R9_HEADER" in repr(recipe)


def test_plain_headers_stay_plain() -> None:
    recipe = load_recipe(text=RECIPE.format(name="Accept", value="application/geo+json"))
    assert recipe.inputs["main"][0]["search_stac"]["headers"] == {"Accept": "application/geo+json"}
