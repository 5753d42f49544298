"""What cbmon masks: a secret as it was given and as it is once percent-decoded, since a
driver, a server or a log line may show either."""

from __future__ import annotations

from cbmon import secrets


def test_a_dsn_password_is_masked_as_written_and_decoded() -> None:
    secrets.remember_dsn("postgresql://app:p%40ss%2Fw0rd%21@db.example/app")
    # libpq decodes the userinfo: an error or a log line may carry either form
    assert secrets.scrub("auth failed for p@ss/w0rd!") == "auth failed for ***"
    assert secrets.scrub("dsn had p%40ss%2Fw0rd%21 in it") == "dsn had *** in it"


def test_a_webhook_token_is_masked_decoded_too() -> None:
    secrets.remember_url("https://hooks.example/services/T0%2BK3N%3D%3Dsecret")
    assert secrets.scrub("sent to T0+K3N==secret") == "sent to ***"
    assert secrets.scrub("sent to T0%2BK3N%3D%3Dsecret") == "sent to ***"


def test_remembered_values_are_masked_in_both_forms() -> None:
    secrets.remember("whsec_a%2Fb%2Bc")
    assert secrets.scrub("whsec_a/b+c and whsec_a%2Fb%2Bc") == "*** and ***"


def test_short_forms_and_ordinary_text_stay() -> None:
    secrets.remember("%41%42", "ok")  # decodes to "AB": two letters are no secret
    assert secrets.scrub("AB ok %41%42") == "AB ok ***"
