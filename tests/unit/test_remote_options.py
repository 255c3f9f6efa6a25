"""`remote add --option`: settings are stored, secrets are refused."""

from __future__ import annotations

import pytest

from dvx.errors import UsageError
from dvx.transfer import parse_options


def test_plain_options_and_gcs_token_modes_are_kept() -> None:
    got = parse_options(["endpoint_url=http://127.0.0.1:9000", "token=anon", "region=eu"])
    assert got == {"endpoint_url": "http://127.0.0.1:9000", "token": "anon", "region": "eu"}
    assert parse_options(["token=/etc/gcp/sa.json"]) == {"token": "/etc/gcp/sa.json"}
    assert parse_options(["key_prefix=data/"]) == {"key_prefix": "data/"}


@pytest.mark.parametrize(
    "item", ["token=ya29.a0AfH6SMBx", "secret=abc", "aws_secret_access_key=abc", "password=x", "key=AKIA123"]
)
def test_secrets_are_refused(item: str) -> None:
    with pytest.raises(UsageError, match="credentials come from the environment"):
        parse_options([item])


@pytest.mark.parametrize("item", ["novalue", "=x"])
def test_malformed_options_are_refused(item: str) -> None:
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_options([item])
