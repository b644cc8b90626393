from __future__ import annotations

import json
from typing import Any

import pytest

from xarch.errors import InputError
from xarch.oci import mediatype as mt
from xarch.oci.config import ImageConfig, ordered
from xarch.oci.digest import Digest
from xarch.oci.platform import Platform

DIFF = "sha256:" + "b" * 64
BASE = {
    "architecture": "arm",
    "os": "linux",
    "variant": "v7",
    "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
    "rootfs": {"type": "layers", "diff_ids": [DIFF]},
    "history": [{"created_by": "x"}],
}


def test_parse_properties() -> None:
    raw = json.dumps(BASE, indent=2).encode()
    c = ImageConfig.parse(raw)
    assert c.raw == raw
    assert c.digest == Digest.from_bytes(raw)
    assert c.descriptor().media_type == mt.OCI_CONFIG
    assert c.descriptor(mt.DOCKER_CONFIG).size == len(raw)
    assert c.platform == Platform("linux", "arm", "v7")
    assert c.diff_ids == (Digest(DIFF),)
    assert c.history == [{"created_by": "x"}]
    assert c.config == {"Env": ["PATH=/bin"], "Cmd": ["sh"]}


def test_views_are_read_only_or_copies() -> None:
    c = ImageConfig.parse(json.dumps(BASE).encode())
    with pytest.raises(TypeError):
        c.data["os"] = "windows"  # type: ignore[index]
    c.config["Env"].append("X=1")
    c.history.append({})
    assert c.config == BASE["config"]
    assert len(c.history) == 1
    d = c.to_dict()
    d["os"] = "x"
    assert c.data["os"] == "linux"


def test_platform_with_os_fields() -> None:
    c = ImageConfig.build(
        {**BASE, "os": "windows", "os.version": "10.0", "os.features": ["win32k"], "variant": None}
    )
    assert c.platform == Platform("windows", "arm", "", "10.0", ("win32k",))


def test_build_keeps_given_order_and_is_canonical() -> None:
    c = ImageConfig.build(
        {"os": "linux", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": []}}
    )
    assert (
        c.raw == b'{"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":[]}}'
    )
    assert ImageConfig.parse(c.raw) == c
    assert hash(ImageConfig.parse(c.raw)) == hash(c)
    assert c != "x"


def test_ordered_matches_go_struct_order() -> None:
    data: dict[str, Any] = {
        "rootfs": {"diff_ids": [], "type": "layers"},
        "history": [{"empty_layer": True, "created": "2024-01-01T00:00:00Z", "created_by": "c"}],
        "config": {"Labels": {"b": "1", "a": "2"}, "Env": [], "User": "u", "Custom": 1},
        "os": "linux",
        "architecture": "amd64",
        "created": "2024-01-01T00:00:00Z",
        "x-extra": 1,
    }
    o = ordered(data)
    assert list(o) == ["created", "architecture", "os", "config", "rootfs", "history", "x-extra"]
    assert list(o["config"]) == ["User", "Env", "Labels", "Custom"]
    assert list(o["config"]["Labels"]) == ["a", "b"]
    assert list(o["rootfs"]) == ["type", "diff_ids"]
    assert list(o["history"][0]) == ["created", "created_by", "empty_layer"]
    assert list(data["config"]["Labels"]) == ["b", "a"]  # input untouched


def test_missing_or_null_diff_ids_is_empty() -> None:
    for rootfs in ({"type": "layers"}, {"type": "layers", "diff_ids": None}):
        c = ImageConfig.build({"architecture": "amd64", "os": "linux", "rootfs": rootfs})
        assert c.diff_ids == ()


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"architecture": None}, "'architecture' must be a string"),
        ({"os": 1}, "'os' must be a string"),
        ({"variant": 1}, "'variant' must be a string"),
        ({"os.features": "x"}, "'os.features' must be an array of strings"),
        ({"config": []}, "'config' must be an object"),
        ({"rootfs": None}, "missing required field 'rootfs'"),
        ({"rootfs": []}, "'rootfs' must be an object"),
        ({"rootfs": {"type": "tar", "diff_ids": []}}, 'rootfs.type must be "layers"'),
        ({"rootfs": {"type": "layers", "diff_ids": {}}}, "rootfs.diff_ids must be an array"),
        ({"rootfs": {"type": "layers", "diff_ids": [1]}}, "rootfs.diff_ids[0] must be a string"),
        (
            {"rootfs": {"type": "layers", "diff_ids": ["sha256:x"]}},
            "rootfs.diff_ids[0]: invalid digest",
        ),
        ({"history": {}}, "'history' must be an array of objects"),
        ({"history": ["x"]}, "'history' must be an array of objects"),
    ],
)
def test_invalid_configs(patch: dict[str, object], fragment: str) -> None:
    data = {**BASE, **patch}
    with pytest.raises(InputError) as ei:
        ImageConfig.parse(json.dumps(data).encode())
    assert fragment in str(ei.value)
    with pytest.raises(InputError):
        ImageConfig.build(data)


def test_missing_required() -> None:
    for key in ("architecture", "os"):
        data = {k: v for k, v in BASE.items() if k != key}
        with pytest.raises(InputError, match=f"missing required field '{key}'"):
            ImageConfig.parse(json.dumps(data).encode())
    with pytest.raises(InputError, match="expected a JSON object"):
        ImageConfig.parse(b"[]")
    with pytest.raises(InputError, match="malformed JSON"):
        ImageConfig.parse(b"{")
