"""The ``s3://`` URL and its options, parsed without boto3, a client or a network:
the part-size rule, sizes such as ``16MiB``, every refusal's exact message, and
properties over arbitrary query strings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backup.errors import StorageMisconfigured
from backup.storage.s3.options import (
    DEFAULT_CONCURRENCY,
    DEFAULT_PART_SIZE,
    DEFAULT_RETRIES,
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    OPTIONS,
    PARTS_PER_DOUBLING,
    S3Location,
    S3Options,
    max_object_size,
    parse_part_size,
    parse_url,
    part_size_for,
)

KiB, MiB, GiB = 1024, 1024 * 1024, 1024 * 1024 * 1024
UNITS = {"": 1, "b": 1, "k": KiB, "kb": KiB, "kib": KiB, "m": MiB, "mb": MiB, "mib": MiB,
         "g": GiB, "gb": GiB, "gib": GiB}
ENV = "HOLDFAST_TARGET_OFFSITE"
bases = st.integers(MIN_PART_SIZE, MAX_PART_SIZE)


def refusal(url: str) -> str:
    with pytest.raises(StorageMisconfigured) as caught:
        parse_url("offsite", url)
    return str(caught.value)


# --- the part-size rule ------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(bases)
def test_ten_thousand_parts_always_cover_the_maximum_object_size(base: int) -> None:
    sizes = [part_size_for(n, base) for n in range(1, MAX_PARTS + 1)]
    assert sum(sizes) >= max_object_size(base)
    assert all(MIN_PART_SIZE <= size <= MAX_PART_SIZE for size in sizes)
    assert sizes == sorted(sizes)  # parts only ever grow
    assert max_object_size(base) <= MAX_OBJECT_SIZE


@given(bases, st.integers(1, 3 * MAX_PARTS))
def test_part_size_doubles_every_thousand_parts_up_to_five_gib(base: int, number: int) -> None:
    size = part_size_for(number, base)
    assert size == min(base * 2 ** ((number - 1) // PARTS_PER_DOUBLING), MAX_PART_SIZE)
    if number <= PARTS_PER_DOUBLING:
        assert size == base  # small uploads keep small parts and small buffers


@given(st.integers(6 * MiB, MAX_PART_SIZE))
def test_from_six_mib_up_the_limit_is_s3s_own(base: int) -> None:
    assert max_object_size(base) == MAX_OBJECT_SIZE


@given(st.integers(max_value=0), bases)
def test_part_numbers_start_at_one(number: int, base: int) -> None:
    with pytest.raises(ValueError, match="part numbers start at 1"):
        part_size_for(number, base)


# --- sizes -----------------------------------------------------------------------------------


@given(st.integers(1, 6 * GiB), st.sampled_from(sorted(UNITS)), st.booleans(),
       st.sampled_from(["", " ", "  "]))
def test_sizes_round_trip(count: int, unit: str, upper: bool, space: str) -> None:
    """``<count><unit>`` in any case and spacing is count * unit bytes, or refused
    with the range message when outside 5 MiB .. 5 GiB."""
    text = f"{space}{count}{space}{unit.upper() if upper else unit}{space}"
    size = count * UNITS[unit]
    if MIN_PART_SIZE <= size <= MAX_PART_SIZE:
        assert parse_part_size("offsite", text) == size
        assert parse_url("offsite", f"s3://bucket/p?part_size={text}").options.part_size == size
    else:
        with pytest.raises(StorageMisconfigured, match="between 5MiB and 5GiB"):
            parse_part_size("offsite", text)


@pytest.mark.parametrize("text, size", [
    ("16MiB", 16 * MiB), ("5242880", 5 * MiB), ("1gib", GiB), ("5GiB", MAX_PART_SIZE),
    ("16MB", 16 * MiB), ("8m", 8 * MiB), ("6144k", 6 * MiB), (" 1 G ", GiB),
    ("\t5 mib\n", 5 * MiB),
])
def test_sizes(text: str, size: int) -> None:
    assert parse_part_size("offsite", text) == size


# --- the URL ---------------------------------------------------------------------------------


def test_a_bare_url_has_the_defaults() -> None:
    assert parse_url("offsite", "s3://bucket") == S3Location("bucket", "", S3Options())
    options = S3Options()
    assert (options.part_size, options.concurrency, options.retries) == (
        DEFAULT_PART_SIZE, DEFAULT_CONCURRENCY, DEFAULT_RETRIES)
    assert options.write_params("i/x") == {}


def test_every_option_is_read() -> None:
    location = parse_url("offsite", "s3://my.bucket-1//a/b/?part_size=64MiB&concurrency=8"
                                    "&retries=0&addressing=virtual&kms_key_id=alias/k"
                                    "&storage_class=GLACIER_IR&tag_instance=Yes"
                                    "&connect_timeout=3&read_timeout=3600")
    assert location == S3Location("my.bucket-1", "a/b/", S3Options(
        part_size=64 * MiB, concurrency=8, retries=0, addressing="virtual", sse="aws:kms",
        kms_key_id="alias/k", storage_class="GLACIER_IR", tag_instance=True,
        connect_timeout=3.0, read_timeout=3600.0))
    assert location.options.write_params("pg-main/snap/data") == {
        "ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/k",
        "StorageClass": "GLACIER_IR", "Tagging": "holdfast-instance=pg-main"}


@pytest.mark.parametrize("query, sse", [
    ("sse=AES256", "AES256"), ("sse=aws:kms", "aws:kms"), ("kms_key_id=k", "aws:kms"),
    ("sse=&kms_key_id=", None), ("sse=aws:kms&kms_key_id=k", "aws:kms"),
])
def test_encryption(query: str, sse: str | None) -> None:
    assert parse_url("offsite", f"s3://bucket/p?{query}").options.sse == sse


@pytest.mark.parametrize("url, what", [
    ("file:///srv/backups", "not an s3:// URL; use s3://bucket/prefix"),
    ("s3://AKIAINURL:topsecret@bucket/p",
     "credentials do not belong in the URL; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
     "AWS_PROFILE"),
    ("s3://x/p", "'x' is not a valid bucket name"),
    ("s3://-bucket/p", "'-bucket' is not a valid bucket name"),
    ("s3://bucket/../up", "invalid prefix '../up'"),
    ("s3://bucket/a/x.partial", "invalid prefix 'a/x.partial'"),
    ("s3://bucket/p?colour=blue",
     f"unknown S3 option 'colour' (known: {', '.join(OPTIONS)})"),
    ("s3://bucket/p?concurrency=2&concurrency=3", "S3 option 'concurrency' is given twice"),
    ("s3://bucket/p?part_size=1MiB", "part_size must be between 5MiB and 5GiB"),
    ("s3://bucket/p?part_size=6GiB", "part_size must be between 5MiB and 5GiB"),
    ("s3://bucket/p?part_size=" + "9" * 5000, "part_size must be between 5MiB and 5GiB"),
    ("s3://bucket/p?part_size=lots", "part_size 'lots' is not a size such as 16MiB"),
    ("s3://bucket/p?part_size=", "part_size '' is not a size such as 16MiB"),
    ("s3://bucket/p?part_size=1.5GiB", "part_size '1.5GiB' is not a size such as 16MiB"),
    ("s3://bucket/p?concurrency=0", "concurrency must be a whole number from 1 to 64"),
    ("s3://bucket/p?concurrency=65", "concurrency must be a whole number from 1 to 64"),
    ("s3://bucket/p?concurrency=%C2%B2", "concurrency must be a whole number from 1 to 64"),
    ("s3://bucket/p?concurrency=" + "1" * 5000,
     "concurrency must be a whole number from 1 to 64"),
    ("s3://bucket/p?retries=many", "retries must be a whole number from 0 to 50"),
    ("s3://bucket/p?retries=-1", "retries must be a whole number from 0 to 50"),
    ("s3://bucket/p?connect_timeout=0", "connect_timeout must be a whole number from 1 to 3600"),
    ("s3://bucket/p?read_timeout=2.5", "read_timeout must be a whole number from 1 to 3600"),
    ("s3://bucket/p?addressing=sideways", "addressing must be path, virtual or auto"),
    ("s3://bucket/p?sse=rot13", "sse must be AES256 or aws:kms"),
    ("s3://bucket/p?sse=AES256&kms_key_id=k", "kms_key_id needs sse=aws:kms"),
    ("s3://bucket/p?storage_class=glacier", "'glacier' is not a storage class name"),
    ("s3://bucket/p?tag_instance=maybe", "tag_instance must be true or false"),
])
def test_refusals_name_the_target_and_what_to_fix(url: str, what: str) -> None:
    assert refusal(url) == f"target 'offsite': {what}; fix {ENV}"


option_values = st.one_of(
    st.text(max_size=12),
    st.integers(-5, 7 * GiB).map(str),
    st.sampled_from(["5MiB", "16mb", "1gib", "path", "auto", "AES256", "aws:kms", "true",
                     "off", "STANDARD_IA", "²", "٣"]),
)


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from([*OPTIONS, "colour"]), option_values, max_size=5),
       st.sampled_from(["s3://bucket/a/b", "s3://bucket", "s3://AKIAINURL:topsecret@bucket/p"]))
def test_any_query_is_parsed_or_refused_in_one_line(raw: dict[str, str], base: str) -> None:
    url = f"{base}?{urlencode(raw)}"
    try:
        location = parse_url("offsite", url)
    except StorageMisconfigured as exc:
        message = str(exc)
        assert message.startswith("target 'offsite': ") and message.endswith(f"; fix {ENV}")
        assert "\n" not in message and "topsecret" not in message and "AKIAINURL" not in message
        return
    options = location.options
    assert "@" not in base and "colour" not in raw
    assert MIN_PART_SIZE <= options.part_size <= MAX_PART_SIZE
    assert 1 <= options.concurrency <= 64 and 0 <= options.retries <= 50
    assert options.addressing in (None, "path", "virtual", "auto")
    assert options.sse in (None, "AES256", "aws:kms")
    assert options.kms_key_id is None or options.sse == "aws:kms"


@given(st.builds(
    S3Options,
    part_size=bases, concurrency=st.integers(1, 64), retries=st.integers(0, 50),
    addressing=st.sampled_from([None, "path", "virtual", "auto"]),
    sse=st.sampled_from([None, "AES256"]), storage_class=st.sampled_from([None, "STANDARD_IA"]),
    tag_instance=st.booleans(), connect_timeout=st.integers(1, 3600).map(float),
    read_timeout=st.integers(1, 3600).map(float),
))
def test_options_round_trip_through_the_query(options: S3Options) -> None:
    query = {name: value for name, value in vars(options).items() if value is not None}
    query["tag_instance"] = str(options.tag_instance).lower()
    for name in ("connect_timeout", "read_timeout"):
        query[name] = str(int(query[name]))
    assert parse_url("offsite", f"s3://bucket/p?{urlencode(query)}").options == options


def test_parsing_needs_no_boto3() -> None:
    """options.py loaded on its own, with boto3 and botocore made unimportable."""
    source = Path(__file__).parents[2] / "backup" / "storage" / "s3" / "options.py"
    program = (
        "import importlib.util, sys\n"
        "sys.modules['boto3'] = sys.modules['botocore'] = None\n"
        f"spec = importlib.util.spec_from_file_location('s3_options', {str(source)!r})\n"
        "module = sys.modules['s3_options'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "print(module.parse_url('t', 's3://bucket/p?part_size=8MiB').options.part_size)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            check=False, cwd=source.parents[3], timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(8 * MiB)
