"""What a ZarrStore on a bucket says when the byte layer fails: the shared rule for refused credentials.

``ZarrStore`` drops obstore's text (it holds request URLs) and says what
happened from the error's class, its HTTP status and its S3/Azure/GCS error
code, by the rule the byte layer's reads use
(``terrapipe.io.read_errors.credentials_refused``). A status is the one the
text gives as a status (``status code: 403``), not any number in it: a key
or path holding ``403`` or ``AccessDenied`` is not a refusal. The real
servers' refusals are in ``test_cache_buckets.py``.
"""

from __future__ import annotations

import pytest

from terrapipe.cache.zarr_store import _remote_why


def error(name: str, text: str) -> Exception:
    """An exception of class ``name`` (as obstore names its errors) with ``text``."""
    return type(name, (Exception,), {})(text)


S3 = "Generic S3 error: Error performing PUT http://127.0.0.1:9000/bucket/{key} in 2ms - Server returned non-2xx"


@pytest.mark.parametrize(
    ("err", "says"),
    [
        (error("PermissionDeniedError", "refused"), "access denied (PermissionDeniedError)"),
        (error("UnauthenticatedError", "no token"), "access denied (UnauthenticatedError)"),
        (error("GenericError", S3.format(key="a") + " status code: 403 Forbidden"), "access denied"),
        (error("GenericError", S3.format(key="a") + " status code: 401 Unauthorized"), "access denied"),
        # an expired or altered signature: some servers answer 400 with the code
        (
            error("GenericError", S3.format(key="a") + " status code: 400 <Code>ExpiredToken</Code>"),
            "access denied",
        ),
        (
            error(
                "GenericError", S3.format(key="a") + " status code: 403 <Code>SignatureDoesNotMatch</Code>"
            ),
            "access denied",
        ),
        (error("NotFoundError", "no such bucket"), "no such bucket or container (NotFoundError)"),
        (error("GenericError", S3.format(key="a") + " status code: 404 Not Found"), "no such bucket"),
        (error("GenericError", S3.format(key="a") + " status code: 503 Slow Down"), "GenericError, HTTP 503"),
        (TimeoutError("deadline"), "no answer in time"),
    ],
)
def test_the_byte_layers_failures_are_named_by_the_shared_rule(err: Exception, says: str) -> None:
    assert says in _remote_why(err)


@pytest.mark.parametrize(
    "key",
    ["tiles/403/entry", "cache-401.zarr", "AccessDenied.zarr", "run-500/InvalidAccessKeyId", "x/404/y"],
)
def test_a_number_or_a_word_in_the_path_is_not_a_status_or_a_refusal(key: str) -> None:
    why = _remote_why(error("GenericError", S3.format(key=key) + " status code: 500 Internal Server Error"))
    assert why.startswith("GenericError, HTTP 500;")
    why = _remote_why(error("GenericError", S3.format(key=key) + " connection reset"))
    assert why.startswith("GenericError;")
