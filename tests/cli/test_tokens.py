"""``video-gen api`` refuses a token configuration that cannot work, in one line; ``video-gen
token`` still mints HS256 tokens and says when the configured API would refuse them."""

from __future__ import annotations

import jwt
import pytest
from click.testing import CliRunner

from service.cli import main
from tests.conftest import REDIS_URL
from tests.fakes.identity_provider import SigningKey

SECRET = "test-secret-at-least-32-bytes-long-0123"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JWT_ALGORITHMS": "HS256,none"}, "JWT_ALGORITHMS must not include none"),
        ({"JWT_ALGORITHMS": "RS256"}, "JWT_ALGORITHMS lists RS256 but neither JWT_JWKS_URL nor JWT_PUBLIC_KEY is set"),
        ({"JWT_JWKS_URL": "http://idp.example/jwks"}, "JWT_JWKS_URL must be an https:// URL"),
        ({"JWT_PUBLIC_KEY": "/nonexistent/idp.pem"}, "JWT_PUBLIC_KEY must be a PEM or a readable file"),
    ],
)
def test_api_refuses_to_start_in_one_line(env: dict[str, str], message: str) -> None:
    result = CliRunner().invoke(main, ["api"], env={"REDIS_URL": REDIS_URL, "JWT_SECRET": SECRET, **env})
    assert result.exit_code == 2
    assert result.stderr.startswith(f"video-gen: {message}") and result.stderr.count("\n") == 1, result.output


def test_token_mints_hs256() -> None:
    result = CliRunner().invoke(main, ["token", "u1", "--admin"], env={"JWT_SECRET": SECRET})
    assert result.exit_code == 0 and "warning" not in result.output
    claims = jwt.decode(result.output.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "u1" and claims["roles"] == ["admin"]


def test_token_warns_when_the_api_accepts_only_a_provider() -> None:
    env = {"JWT_SECRET": SECRET, "JWT_PUBLIC_KEY": SigningKey.ec().public_pem()}
    result = CliRunner().invoke(main, ["token", "u1"], env=env)
    assert result.exit_code == 0
    assert "warning: this API accepts ES256" in result.output and "unless JWT_ALGORITHMS lists HS256" in result.output
    both = CliRunner().invoke(main, ["token", "u1"], env={**env, "JWT_ALGORITHMS": "ES256,HS256"})
    assert both.exit_code == 0 and "warning" not in both.output
