"""An HTTP Basic credential is masked as it is sent (base64) and as servers log it (decoded).

Before: ``redact_text(..., values=[header values])`` masked ``Basic <base64>`` and the base64 word, but
not the ``user:password`` it encodes, which servers echo in error bodies ("user alice:pw rejected").
"""

from __future__ import annotations

import base64

import pytest

from terrapipe.core.redact import redact_text

PASSWORD = "pa55-never-shown"


def _basic(user_password: str, scheme: str = "Basic", gap: str = " ") -> str:
    return f"{scheme}{gap}{base64.b64encode(user_password.encode()).decode()}"


CASES = {
    "user and password": (_basic(f"alice:{PASSWORD}"), f"user alice:{PASSWORD} rejected"),
    "the password alone": (_basic(f"alice:{PASSWORD}"), f"wrong password {PASSWORD}"),
    "a password holding a colon": (_basic(f"alice:{PASSWORD}:x"), f"bad {PASSWORD}:x"),
    "the scheme in lower case": (_basic(f"alice:{PASSWORD}", "basic"), f"alice:{PASSWORD}"),
    "two spaces after the scheme": (_basic(f"alice:{PASSWORD}", gap="  "), f"alice:{PASSWORD}"),
    "a unicode password": (_basic(f"alice:{PASSWORD}é"), f"alice:{PASSWORD}é"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_decoded_credential_is_masked(case: str) -> None:
    header, echoed = CASES[case]
    shown = redact_text(f"HTTP 401 ({echoed}; sent {header})", values=[header])
    assert PASSWORD not in shown, shown
    assert header.split()[-1] not in shown, shown


@pytest.mark.parametrize(
    "value", ["Basic not-base64!", "Basic " + base64.b64encode(b"\xff\xfe").decode(), "Basic"]
)
def test_a_value_that_decodes_to_nothing_is_masked_as_before(value: str) -> None:
    shown = redact_text(f"refused {value}", values=[value])
    assert value not in shown or len(value) < 6
    assert shown.startswith("refused")
