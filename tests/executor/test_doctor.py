from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from xarch.executor.doctor import DOCTOR_PLATFORMS, doctor
from xarch.executor.runtime import RuntimeProber

from .helpers import entry_text, hybrid_cgroups, write_fake


def test_doctor_report(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    write_fake(bindir, "crun", version="1.8.1", hybrid_fail=True)
    write_fake(bindir, "runc", version="1.1.5", hybrid_fail=False)
    prober = RuntimeProber(
        search_path=str(bindir), trial=True, cgroup_root=hybrid_cgroups(tmp_path)
    )
    binfmt = tmp_path / "binfmt"
    binfmt.mkdir()
    (binfmt / "register").write_text("")
    # s390x has no tiny test binary, so its status comes from the entry alone
    (binfmt / "qemu-s390x").write_text(entry_text("s390x", "/usr/bin/qemu-s390x-static", "OCF"))
    report = doctor(prober=prober, binfmt_dir=binfmt, work_dir=tmp_path)
    data = report.to_json()
    json.dumps(data)  # serialisable
    assert [p["platform"] for p in data["platforms"]] == list(DOCTOR_PLATFORMS)
    status = {p["platform"]: p["status"] for p in data["platforms"]}
    assert status["linux/s390x"] == "emulated"
    assert data["runtime"] == "runc"
    crun = next(r for r in data["runtimes"] if r["name"] == "crun")
    assert crun["usable"] is False and "hybrid" in crun["reason"]
    names = {c["name"] for c in data["checks"]}
    assert {"overlayfs", "binfmt_misc", "user namespaces", "root"} <= names
    assert data["cgroups"] in ("v1", "v2", "hybrid", "none")
    assert report.ok
    out = io.StringIO()
    Console(file=out, width=200).print(report.render())
    text = out.getvalue()
    assert "linux/s390x" in text and "emulated" in text and "(selected)" in text
    assert json.loads(report.to_json_text()) == data
