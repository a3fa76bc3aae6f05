"""Age encryption of snapshot streams (:mod:`backup.encryption`) on its own: round
trips for any data and chunking, X25519 and SSH (ed25519, RSA) recipients whose
fingerprints are ``ssh-keygen -l``'s, every kind of bad recipients setting and bad
identity file refused in one line naming it, the ``holdfast.encrypt`` truth table,
and interoperability with the real ``age`` CLI in both directions."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrage import x25519

from backup.encryption import (
    MAX_RECIPIENTS,
    Identities,
    Recipients,
    encrypt_label_problem,
    fingerprint,
    load_identities,
    new_identity,
    parse_recipients,
    require_identities,
)
from backup.errors import (
    CorruptSnapshot,
    IdentityRequired,
    InvalidIdentity,
    InvalidRecipients,
    WrongIdentity,
)
from backup.streams import rechunk

AGE_HEADER = b"age-encryption.org/v1\n"
SETTING = "HOLDFAST_TARGET_OFFSITE_AGE_RECIPIENTS"
PLAIN = b"row 1|alice@example.test|distinctive-plaintext-marker|" * 2000


def write_identity(path: Path) -> tuple[Path, str]:
    text, recipient = new_identity()
    path.write_text(text)
    return path, recipient


_OPS_TEXT, OPS = new_identity()
_DR_TEXT, DR = new_identity()


@pytest.fixture
def ops_identity(tmp_path: Path) -> Identities:
    path = tmp_path / "ops.txt"
    path.write_text(_OPS_TEXT)
    return load_identities(path)


def round_trip(recipients: Recipients, identities: Identities, chunks: list[bytes],
               piece: int = 4096) -> tuple[bytes, bytes]:
    """The ciphertext of ``chunks`` and its decryption (the ciphertext re-chunked)."""
    ciphertext = b"".join(recipients.encrypt(chunks))
    plain = b"".join(identities.decrypt(rechunk([ciphertext], piece), "snapshot s"))
    return ciphertext, plain


@given(st.lists(st.binary(max_size=3000), max_size=8), st.integers(1, 5000))
@settings(max_examples=60, deadline=None)
def test_round_trip_for_any_data_and_chunking(chunks: list[bytes], piece: int) -> None:
    identity = x25519.Identity.from_str(_OPS_TEXT.splitlines()[-1])
    identities = Identities(keys=(identity,), fingerprints=frozenset({fingerprint(OPS)}),
                            path="ops.txt")
    recipients = parse_recipients(OPS, source=SETTING)
    ciphertext, plain = round_trip(recipients, identities, chunks, piece)
    assert plain == b"".join(chunks)
    assert ciphertext.startswith(AGE_HEADER)


def test_each_of_two_recipients_opens_it_and_the_ciphertext_holds_no_plaintext(
        tmp_path: Path, ops_identity: Identities) -> None:
    recipients = parse_recipients(f"{OPS}, {DR}", source=SETTING)
    assert recipients.fingerprints == (fingerprint(OPS), fingerprint(DR))
    (tmp_path / "dr.txt").write_text(_DR_TEXT)
    ciphertext = b""
    for identities in (ops_identity, load_identities(tmp_path / "dr.txt")):
        ciphertext, plain = round_trip(recipients, identities, [PLAIN[:777], PLAIN[777:]])
        assert plain == PLAIN
    assert b"distinctive-plaintext-marker" not in ciphertext
    assert ciphertext.count(b"\n-> X25519 ") == 2


def test_a_stranger_identity_is_refused_and_a_cut_stream_is_corrupt(
        tmp_path: Path, ops_identity: Identities) -> None:
    ciphertext = b"".join(parse_recipients(DR, source=SETTING).encrypt([PLAIN]))
    with pytest.raises(WrongIdentity, match="does not open snapshot s"):
        b"".join(ops_identity.decrypt([ciphertext], "snapshot s"))
    mine = b"".join(parse_recipients(OPS, source=SETTING).encrypt([PLAIN]))
    with pytest.raises(CorruptSnapshot, match="damaged or truncated"):
        b"".join(ops_identity.decrypt([mine[:len(mine) // 2]], "snapshot s"))


def test_require_identities_names_the_recipients_and_checks_the_identity(
        ops_identity: Identities) -> None:
    wanted = (fingerprint(DR), fingerprint(OPS))
    with pytest.raises(IdentityRequired) as missing:
        require_identities(None, wanted, "snapshot s")
    assert all(print_ in str(missing.value) for print_ in wanted)
    assert "--identity" in str(missing.value) and "\n" not in str(missing.value)
    assert require_identities(ops_identity, wanted, "snapshot s") is ops_identity
    with pytest.raises(WrongIdentity) as wrong:
        require_identities(ops_identity, (fingerprint(DR),), "snapshot s")
    assert fingerprint(DR) in str(wrong.value) and "ops.txt" in str(wrong.value)


# --- SSH recipients and identities -----------------------------------------------------


def ssh_keygen(tmp_path: Path, kind: str, passphrase: str = "") -> Path:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed")
    path = tmp_path / f"id_{kind}{'_locked' if passphrase else ''}"
    extra = ["-b", "2048"] if kind == "rsa" else []
    subprocess.run(["ssh-keygen", "-q", "-t", kind, *extra, "-N", passphrase, "-C", "test",
                    "-f", str(path)], check=True)
    return path


def ssh_keygen_fingerprint(path: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(path)], check=True, capture_output=True,
                         text=True).stdout
    return out.split()[1]


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_ssh_keys_round_trip_with_ssh_keygens_fingerprints(tmp_path: Path, kind: str) -> None:
    key = ssh_keygen(tmp_path, kind)
    public = key.with_suffix(".pub").read_text().strip()
    expected = ssh_keygen_fingerprint(key.with_suffix(".pub"))
    assert expected.startswith("SHA256:")
    assert fingerprint(public) == expected
    recipients = parse_recipients(str(key.with_suffix(".pub")), source=SETTING)
    identities = load_identities(key)
    assert recipients.fingerprints == (expected,)
    assert identities.fingerprints == {expected} == {ssh_keygen_fingerprint(key)}
    ciphertext, plain = round_trip(recipients, identities, [PLAIN])
    assert plain == PLAIN and b"distinctive-plaintext-marker" not in ciphertext
    assert f"\n-> ssh-{kind}".encode() in ciphertext


def test_x25519_and_ssh_recipients_mix_and_each_identity_opens(
        tmp_path: Path, ops_identity: Identities) -> None:
    key = ssh_keygen(tmp_path, "ed25519")
    public = key.with_suffix(".pub").read_text().strip()
    recipients = parse_recipients(f"{OPS},{public}", source=SETTING)
    for identities in (ops_identity, load_identities(key)):
        assert round_trip(recipients, identities, [PLAIN])[1] == PLAIN


def test_a_passphrase_protected_ssh_key_is_refused_in_one_clear_line(tmp_path: Path) -> None:
    key = ssh_keygen(tmp_path, "ed25519", passphrase="correct horse")
    with pytest.raises(InvalidIdentity) as caught:
        load_identities(key)
    message = str(caught.value)
    assert "\n" not in message and str(key) in message and "passphrase" in message


# --- recipients settings ---------------------------------------------------------------


def test_a_recipients_file_with_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "recipients.txt"
    path.write_text(f"# ops laptop\n{OPS}\n\n   # disaster recovery\n  {DR}  \n")
    parsed = parse_recipients(str(path), source=SETTING)
    assert parsed.fingerprints == (fingerprint(OPS), fingerprint(DR))
    assert parsed.source == SETTING and len(parsed.keys) == 2


def refused(value: str) -> str:
    with pytest.raises(InvalidRecipients) as caught:
        parse_recipients(value, source=SETTING)
    message = str(caught.value)
    assert message.startswith(f"{SETTING}: ") and "\n" not in message, message
    return message


def test_bad_recipients_settings_are_one_line_naming_the_setting(tmp_path: Path) -> None:
    many = ",".join(new_identity()[1] for _ in range(MAX_RECIPIENTS + 1))
    assert f"{MAX_RECIPIENTS + 1} recipients; at most {MAX_RECIPIENTS}" in refused(many)
    assert "no recipients" in refused(" , ,")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nobody yet\n\n")
    assert "no recipients" in refused(str(empty))
    assert "does not parse" in refused(f"{OPS},age1notakey")
    assert "is not an age recipient" in refused("bob@example.test")
    assert "cannot read recipients file" in refused(str(tmp_path / "missing.txt"))
    assert "cannot read recipients file" in refused(str(tmp_path))  # a directory


def test_exactly_the_maximum_of_recipients_is_accepted() -> None:
    keys = [new_identity()[1] for _ in range(MAX_RECIPIENTS)]
    assert len(parse_recipients(",".join(keys), source=SETTING).keys) == MAX_RECIPIENTS


def test_a_secret_key_given_as_a_recipient_is_refused_without_echoing_it(
        tmp_path: Path) -> None:
    secret = _OPS_TEXT.splitlines()[-1]
    identity_as_recipients = tmp_path / "ops-identity.txt"  # the file age-keygen wrote
    identity_as_recipients.write_text(_OPS_TEXT)
    for value in (secret, f"{DR},{secret}", str(identity_as_recipients)):
        message = refused(value)
        assert "secret key" in message and "age-keygen -y" in message, message
        assert secret[len("AGE-SECRET-KEY-1"):][:6] not in message, message


# --- identity files --------------------------------------------------------------------


def test_an_age_identity_file_with_comments_and_two_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text(f"{_OPS_TEXT}\n# the second one\n\n{_DR_TEXT}")
    loaded = load_identities(path)
    assert loaded.fingerprints == {fingerprint(OPS), fingerprint(DR)}
    assert len(loaded.keys) == 2 and loaded.path == str(path)


def bad_identity(path: Path) -> str:
    with pytest.raises(InvalidIdentity) as caught:
        load_identities(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message, message
    return message


def test_bad_identity_files_are_one_clear_line_naming_the_file(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text(_OPS_TEXT + "#" * (64 * 1024))
    assert "larger than 64 KiB" in bad_identity(big)
    binary = tmp_path / "binary.key"
    binary.write_bytes(bytes(range(256)) * 4)
    assert "is not text" in bad_identity(binary)
    public = tmp_path / "public.txt"
    public.write_text(f"# a recipient, not an identity\n{OPS}\n")
    message = bad_identity(public)
    assert "not an age identity" in message and OPS not in message
    comments = tmp_path / "comments.txt"
    comments.write_text("# nothing here\n")
    assert "holds no identity" in bad_identity(comments)
    assert "cannot read identity file" in bad_identity(tmp_path / "missing.txt")


def test_a_damaged_identity_line_is_refused_without_echoing_it(tmp_path: Path) -> None:
    secret = _OPS_TEXT.splitlines()[-1]
    path = tmp_path / "damaged.txt"
    path.write_text(secret[:-3] + "qqq\n")
    assert secret[16:40] not in bad_identity(path)


# --- the holdfast.encrypt label ----------------------------------------------------------


@pytest.mark.parametrize(("wanted", "source", "problem"), [
    (None, None, None),
    (None, "HOLDFAST_AGE_RECIPIENTS", None),
    (True, "HOLDFAST_AGE_RECIPIENTS", None),
    (False, None, None),
    (False, "HOLDFAST_AGE_RECIPIENTS", "holdfast.encrypt=false"),
    (True, None, "holdfast.encrypt=true"),
])
def test_encrypt_label_truth_table(wanted: bool | None, source: str | None,
                                   problem: str | None) -> None:
    found = encrypt_label_problem(wanted, "offsite", source)
    if problem is None:
        assert found is None
        return
    assert found is not None and found.startswith(problem) and "offsite" in found
    assert (source or "HOLDFAST_TARGET_OFFSITE_AGE_RECIPIENTS") in found


# --- the real age CLI ----------------------------------------------------------------


def age_cli() -> str:
    found = shutil.which("age")
    if found is None or shutil.which("age-keygen") is None:
        pytest.skip("the age CLI is not installed (apt-get install age)")
    return found


def test_the_age_cli_decrypts_what_holdfast_encrypts(tmp_path: Path) -> None:
    age = age_cli()
    identity, recipient = write_identity(tmp_path / "holdfast-made.txt")
    derived = subprocess.run(["age-keygen", "-y", str(identity)], check=True,
                             capture_output=True, text=True).stdout.strip()
    assert derived == recipient
    ciphertext = b"".join(parse_recipients(recipient, source=SETTING).encrypt([PLAIN]))
    plain = subprocess.run([age, "-d", "-i", str(identity)], input=ciphertext, check=True,
                           capture_output=True).stdout
    assert plain == PLAIN


def test_holdfast_decrypts_what_the_age_cli_encrypts_to_its_keys(tmp_path: Path) -> None:
    age = age_cli()
    keyfile = tmp_path / "age-keygen.txt"
    subprocess.run(["age-keygen", "-o", str(keyfile)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(keyfile)], check=True,
                               capture_output=True, text=True).stdout.strip()
    ciphertext = subprocess.run([age, "-r", recipient], input=PLAIN, check=True,
                                capture_output=True).stdout
    identities = load_identities(keyfile)
    assert identities.fingerprints == {fingerprint(recipient)}
    assert b"".join(identities.decrypt(rechunk([ciphertext], 1000), "s")) == PLAIN


def test_the_age_cli_opens_holdfast_output_with_an_ssh_key(tmp_path: Path) -> None:
    age = age_cli()
    key = ssh_keygen(tmp_path, "ed25519")
    recipients = parse_recipients(str(key.with_suffix(".pub")), source=SETTING)
    ciphertext = b"".join(recipients.encrypt([PLAIN]))
    plain = subprocess.run([age, "-d", "-i", str(key)], input=ciphertext, check=True,
                           capture_output=True).stdout
    assert plain == PLAIN


def test_a_pem_private_key_is_refused_saying_how_to_convert_it(tmp_path: Path) -> None:
    path = tmp_path / "id_rsa"
    path.write_text("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n"
                    "-----END RSA PRIVATE KEY-----\n")
    with pytest.raises(InvalidIdentity, match="PEM private key") as refused:
        load_identities(path)
    assert "ssh-keygen -p" in str(refused.value) and "MIIE" not in str(refused.value)
