"""Secret masking: exact values, base64 at every offset, multi-line secrets, refusals."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.masking import MASK, MIN_SECRET_LENGTH, Masker, SecretTooShort

SECRET = "hunter2-is-not-a-password"
B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def assert_secret_region_masked(
    encoded: str, masked: str, prefix_len: int, secret_len: int
) -> None:
    """`masked` is `encoded` with one MASK covering every char that depends only on the secret.

    Independent of the implementation: the chars fully inside the secret's bits are
    [ceil(8p/6), floor(8(p+n)/6)); only chars outside that range may survive.
    """
    stable_start = -(-8 * prefix_len // 6)
    stable_end = (8 * (prefix_len + secret_len)) // 6
    assert MASK in masked, (encoded, masked)
    head, _, tail = masked.partition(MASK)
    assert encoded.startswith(head) and len(head) <= stable_start, (encoded, masked)
    assert encoded.endswith(tail) and len(encoded) - len(tail) >= stable_end, (encoded, masked)


def test_exact_value_is_masked_everywhere_in_the_line() -> None:
    m = Masker([SECRET])
    assert m.mask(f"token={SECRET} and again {SECRET}!") == f"token={MASK} and again {MASK}!"


def test_line_without_secret_is_returned_unchanged() -> None:
    m = Masker([SECRET])
    line = "nothing to see here " * 10
    assert m.mask(line) is line
    assert m.mask("") == ""


def test_masker_without_secrets_is_inactive_and_a_no_op() -> None:
    for m in (Masker([]), Masker(["", ""])):
        assert not m.active
        line = f"{SECRET} stays"
        assert m.mask(line) is line
        assert m.mask_bytes(b"x") == b"x"
    assert Masker([SECRET]).active


@pytest.mark.parametrize("short", ["a", "1234567", "       ", " abc \n", "abcdefg\n"])
def test_short_secrets_are_refused(short: str) -> None:
    with pytest.raises(SecretTooShort):
        Masker(["a-long-enough-secret", short])
    assert issubclass(SecretTooShort, ValueError)


def test_minimum_length_is_accepted() -> None:
    m = Masker(["x" * MIN_SECRET_LENGTH])
    assert m.mask("a xxxxxxxx b") == f"a {MASK} b"


def test_multi_line_secret_with_no_long_line_is_refused() -> None:
    with pytest.raises(SecretTooShort, match="line by line"):
        Masker(["abc\ndef\nghi\njkl"])


def test_multi_line_secret_is_masked_line_by_line() -> None:
    key = "-----BEGIN KEY-----\nMIIEpAIBAAKCAQEAx\n  Zm9vYmFyYmF6cXV4  \nab\n-----END KEY-----\n"
    m = Masker([key])
    assert m.mask("MIIEpAIBAAKCAQEAx") == MASK
    assert m.mask("    Zm9vYmFyYmF6cXV4") == f"    {MASK}"
    assert m.mask("-----END KEY-----") == MASK
    assert m.mask("ab") == "ab", "a line shorter than the minimum is not masked on its own"


def test_crlf_multi_line_secret() -> None:
    m = Masker(["first-line-secret\r\nsecond-line-secret\r\n"])
    assert m.mask("x first-line-secret y") == f"x {MASK} y"
    assert m.mask("second-line-secret") == MASK


def test_base64_of_whole_multi_line_secret_is_masked() -> None:
    key = "line-one-of-key\nline-two-of-key\n"
    m = Masker([key])
    masked = m.mask(b64(key))
    assert_secret_region_masked(b64(key), masked, 0, len(key))


@pytest.mark.parametrize("prefix", ["", "u", "us", "user:", "x-access-token:", "ab"])
@pytest.mark.parametrize("suffix", ["", "\n", "@host", "\r\n"])
def test_base64_at_each_offset_with_prefix_and_trailing_chars(prefix: str, suffix: str) -> None:
    m = Masker([SECRET])
    encoded = b64(prefix + SECRET + suffix)
    assert_secret_region_masked(encoded, m.mask(encoded), len(prefix), len(SECRET))
    # and inside a longer line, e.g. an Authorization header
    line = f"Authorization: Basic {encoded}"
    assert MASK in m.mask(line)


def test_plain_base64_leaves_no_tail() -> None:
    """`echo -n $S | base64` and `echo $S | base64` are masked completely."""
    m = Masker([SECRET])
    assert m.mask(b64(SECRET)) == MASK
    assert m.mask(b64(SECRET + "\n")) == MASK


def test_url_safe_base64_is_masked() -> None:
    secret = "\xfb\xff~~~>>>???secret"  # encodes with + and / in standard base64
    m = Masker([secret])
    urlsafe = base64.urlsafe_b64encode(secret.encode()).decode()
    assert "-" in urlsafe or "_" in urlsafe
    assert MASK in m.mask(urlsafe)


def test_url_and_json_encoded_forms_are_masked() -> None:
    secret = 'p@ss word/with+"chars"'
    m = Masker([secret])
    for form in (quote(secret, safe=""), quote_plus(secret, safe=""), json.dumps(secret)[1:-1]):
        assert form != secret
        assert m.mask(f"x {form} y") == f"x {MASK} y"


def test_longest_pattern_wins() -> None:
    m = Masker(["abcdefgh", "abcdefghijklmnop"])
    assert m.mask("abcdefghijklmnop") == MASK
    assert m.mask("abcdefgh-") == f"{MASK}-"


def test_regex_metacharacters_are_literal() -> None:
    secret = "a.b*c+d?(e)[f]{g}|h^$\\"
    m = Masker([secret])
    assert m.mask(f"<{secret}>") == f"<{MASK}>"
    assert m.mask("aXbbbcdd") == "aXbbbcdd"


def test_non_ascii_secret() -> None:
    secret = "pässwörd-ñ-秘密"
    m = Masker([secret])
    assert m.mask(f"[{secret}]") == f"[{MASK}]"
    assert m.mask_bytes(f"[{secret}]".encode()) == f"[{MASK}]".encode()
    assert MASK in m.mask(b64("user:" + secret))


def test_mask_bytes() -> None:
    m = Masker([SECRET])
    data = b"\xff\x00" + SECRET.encode() + b"\xfe"
    assert m.mask_bytes(data) == b"\xff\x00" + MASK.encode() + b"\xfe"
    assert m.mask_bytes(b"\xffclean") == b"\xffclean"
    assert MASK.encode() in m.mask_bytes(b64("user:" + SECRET).encode())


@settings(max_examples=120, deadline=None)
@given(
    secret=st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
        min_size=MIN_SECRET_LENGTH,
        max_size=40,
    ).filter(lambda s: len(s.strip()) >= MIN_SECRET_LENGTH),
    prefix=st.text(alphabet="abc:", max_size=7),
    suffix=st.sampled_from(["", "\n", ":x", "\r\n"]),
)
def test_base64_property(secret: str, prefix: str, suffix: str) -> None:
    m = Masker([secret])
    raw = prefix.encode() + secret.encode()
    encoded = b64(raw + suffix.encode())
    assert_secret_region_masked(
        encoded, m.mask(encoded), len(prefix.encode()), len(secret.encode())
    )


JOINED_MASKER = Masker(["s3cr3t-value", "aaaaaaaaaaa", "secret\nmulti-line-part"])


@settings(max_examples=120, deadline=None)
@given(
    lines=st.lists(
        st.lists(st.sampled_from(["a", "b", "s3cr3t-v", "alue", " ", "\t", "é", "="])).map("".join),
        max_size=8,
    )
)
def test_masking_joined_lines_equals_masking_each_line(lines: list[str]) -> None:
    """process.py masks a whole batch joined by newlines; it must equal line by line."""
    m = JOINED_MASKER
    assert m.mask("\n".join(lines)) == "\n".join(m.mask(line) for line in lines)


def test_no_pattern_ever_holds_a_line_break() -> None:
    m = Masker(["multi-line-secret\nsecond-line-of-it\n", 'json"quote\nsecret'])
    assert all("\n" not in p and "\r" not in p for p in m._patterns)
    assert all(len(p) >= MIN_SECRET_LENGTH for p in m._patterns)


def test_base64_inner_runs_only_use_base64_chars() -> None:
    m = Masker(["correct horse battery staple"])
    b64_patterns = [p for p in m._patterns if set(p) <= set(B64_ALPHABET + "=")]
    assert len(b64_patterns) >= 3
