"""What result files record about the machine: the CPU (with its family and model numbers, which
tell apart generations that virtual machines all name "AMD EPYC") and its native bf16 support."""
from __future__ import annotations

from dfad import provenance

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
cpu family\t: 26
model\t\t: 2
flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16
"""


def test_cpu_model_names_family_and_model_and_bf16_flags_are_read(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO)  # "model" comes after "model name": fields match by their whole key
    monkeypatch.setattr(provenance, "CPUINFO", info)
    assert provenance.cpu_model() == "AMD EPYC (family 26, model 2)"
    assert provenance.cpu_bf16_support() == "amx_bf16+avx512_bf16"
    info.write_text("model name\t: Some CPU\nflags\t\t: fpu avx2\n")
    assert provenance.cpu_model() == "Some CPU"
    assert provenance.cpu_bf16_support() == "none"
