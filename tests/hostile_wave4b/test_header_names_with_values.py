"""A header "name" that carries its value (curl's ``-H 'Authorization: Bearer ...'`` line, GDAL_HTTP_HEADERS'
form) is refused, but the refusal quotes the whole name: the credential in the message.

``check_headers`` (H, c4dc795) promises never to show a value; a name holding ``": "`` or a space is
not a valid name and is shown as given (``'Authorization: Bearer <token>' is not a valid HTTP header
name``). A bytes name holding the line shows its first 40 characters. No request is made: the port
is closed.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from terrapipe.core.errors import InvalidArgumentError
from terrapipe.core.http_headers import check_headers
from terrapipe.io import http_reads
from terrapipe.io.storage import Storage

TOKEN = "tok3n-never-shown"

LINES: dict[str, dict[Any, Any]] = {
    "curl's -H line as a name": {f"Authorization: Bearer {TOKEN}": ""},
    "no space after the colon": {f"Authorization:Bearer {TOKEN}": "x"},
    "an API key line": {f"X-Api-Key: {TOKEN}": ""},
    "a bytes line as a name": {f"X-Key: {TOKEN}".encode(): "v"},
}


@pytest.mark.parametrize("case", sorted(LINES))
def test_a_name_holding_its_value_is_refused_without_showing_it(case: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        check_headers(LINES[case])
    assert TOKEN not in str(info.value), str(info.value)


def test_the_byte_layer_refuses_it_without_showing_it() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    storage = Storage(headers=LINES["curl's -H line as a name"])
    with pytest.raises(InvalidArgumentError) as info:
        http_reads.read(f"http://127.0.0.1:{port}/a.tif", storage)
    assert TOKEN not in str(info.value), str(info.value)


def test_a_valid_name_with_a_bad_value_never_shows_the_value() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        check_headers({"Authorization": f"Bearer {TOKEN}\r\nX-Injected: 1"})
    assert TOKEN not in str(info.value)


SWAPPED = {
    "a JWT as the name": {"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0b2szbiJ9/tok3nSIGNATURE=": "Authorization"},
    "a base64 key as the name": {"tok3nAbC/dEf+gHi==": "X-Api-Key"},
}


@pytest.mark.parametrize("case", sorted(SWAPPED))
def test_a_credential_given_as_the_name_is_never_shown(case: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        check_headers(SWAPPED[case])
    (name,) = SWAPPED[case]
    assert name[:8] not in str(info.value), str(info.value)  # not even its start
