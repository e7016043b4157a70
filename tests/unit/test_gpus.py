"""GPU discovery (against a fake nvidia-smi replaying a real H100) and allocation."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cove.runtime.gpus import (
    Gpu,
    GpuAllocator,
    cuda_visible_devices,
    discover,
    gpu_env,
    gpus_from_names,
    matches,
    parse_query_output,
    parse_request,
)

FIXTURES = Path(__file__).parent / "gpu_fixtures"
H100_DATA = FIXTURES / "nvidia-smi-h100.txt"
MIXED_DATA = FIXTURES / "nvidia-smi-mixed4.txt"
FAKE = FIXTURES / "fake_nvidia_smi.py"

H100 = Gpu(0, "GPU-b558e06e-2f1a-face-feef-59d5dfed7084", "NVIDIA H100 80GB HBM3", 81559)
A100_SXM_80 = Gpu(0, "GPU-a", "NVIDIA A100-SXM4-80GB", 81920)
A100_PCIE_80 = Gpu(2, "GPU-c", "NVIDIA A100 80GB PCIe", 81920)
A100_SXM_40 = Gpu(1, "GPU-b", "NVIDIA A100-SXM4-40GB", 40960)
A100_PCIE_40 = Gpu(1, "GPU-b", "NVIDIA A100-PCIE-40GB", 40960)
L4 = Gpu(3, "GPU-d", "NVIDIA L4", 23034)


def executable(path: Path, body: str) -> str:
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def fake_smi(tmp_path: Path, data: Path, name: str = "nvidia-smi") -> str:
    """An executable ``nvidia-smi`` in tmp_path replaying ``data``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    return executable(
        bin_dir / name, f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "{data}" "$@"\n'
    )


def mixed() -> list[Gpu]:
    return parse_query_output(
        "0, GPU-0, NVIDIA A100-SXM4-80GB, 81920\n"
        "1, GPU-1, NVIDIA A100-SXM4-80GB, 81920\n"
        "2, GPU-2, NVIDIA A100 80GB PCIe, 81920\n"
        "3, GPU-3, NVIDIA L4, 23034\n"
    )


# --- discovery ------------------------------------------------------------------------------


def test_fake_replays_the_recorded_query_verbatim(tmp_path: Path) -> None:
    recorded = H100_DATA.read_text().split("---\n")[2].strip()
    out = subprocess.run(
        [
            fake_smi(tmp_path, H100_DATA),
            "--query-gpu=index,name,uuid,memory.total",
            "--format=csv,noheader,nounits",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == recorded


def test_discover_the_real_h100(tmp_path: Path) -> None:
    assert discover(fake_smi(tmp_path, H100_DATA)) == [H100]


def test_discover_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_smi(tmp_path, H100_DATA)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    assert discover() == [H100]


def test_discover_four_mixed_gpus(tmp_path: Path) -> None:
    gpus = discover(fake_smi(tmp_path, MIXED_DATA))
    assert [g.index for g in gpus] == [0, 1, 2, 3]
    assert [g.name for g in gpus] == [
        "NVIDIA A100-SXM4-80GB",
        "NVIDIA A100-SXM4-80GB",
        "NVIDIA A100 80GB PCIe",
        "NVIDIA L4",
    ]
    assert gpus[3] == Gpu(3, "GPU-3d3d3d3d-3333-4333-8333-333333333333", "NVIDIA L4", 23034)
    assert [g.memory_mib for g in gpus] == [81920, 81920, 81920, 23034]


def test_discover_missing_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert discover(str(tmp_path / "no-such-nvidia-smi")) == []
    monkeypatch.setenv("PATH", str(tmp_path))
    assert discover() == []


def test_discover_failing_binary(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    smi = executable(
        tmp_path / "nvidia-smi",
        "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the "
        "NVIDIA driver.' >&2\nexit 9\n",
    )
    with caplog.at_level(logging.WARNING, logger="cove.runtime.gpus"):
        assert discover(smi) == []
    assert "exited with 9" in caplog.text and "could not communicate" in caplog.text


def test_discover_failing_binary_that_prints_gpus(tmp_path: Path) -> None:
    smi = executable(
        tmp_path / "nvidia-smi", "#!/bin/sh\necho '0, GPU-x, NVIDIA L4, 23034'\nexit 1\n"
    )
    assert discover(smi) == []


def test_discover_garbage(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    smi = executable(
        tmp_path / "nvidia-smi", "#!/bin/sh\necho 'No devices were found'\necho '\x01\x02, ,'\n"
    )
    with caplog.at_level(logging.WARNING, logger="cove.runtime.gpus"):
        assert discover(smi) == []
    assert "no GPU line" in caplog.text


def test_discover_empty_output(tmp_path: Path) -> None:
    assert discover(executable(tmp_path / "nvidia-smi", "#!/bin/sh\nexit 0\n")) == []


def test_discover_not_executable(tmp_path: Path) -> None:
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '0, GPU-x, NVIDIA L4, 23034'\n")
    assert discover(str(smi)) == []


def test_discover_timeout(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    smi = executable(tmp_path / "nvidia-smi", "#!/bin/sh\nexec sleep 30\n")
    with caplog.at_level(logging.WARNING, logger="cove.runtime.gpus"):
        assert discover(smi, timeout=0.3) == []
    assert "took over" in caplog.text


def test_parse_query_output_is_tolerant() -> None:
    text = (
        "index, uuid, name, memory.total [MiB]\n"  # a header line
        "\n"
        "  1 ,  GPU-1 ,   NVIDIA   L4  ,   23034 MiB  \n"
        "0,GPU-0,NVIDIA A100, odd, name,81920\n"  # commas inside the name
        "2, GPU-2, NVIDIA H100 80GB HBM3, [N/A]\n"
        "x, GPU-9, NVIDIA L4, 1\n"
        "1, GPU-dup, NVIDIA L4, 1\n"
        "too, short\n"
    )
    assert parse_query_output(text) == [
        Gpu(0, "GPU-0", "NVIDIA A100, odd, name", 81920),
        Gpu(1, "GPU-1", "NVIDIA   L4", 23034),
        Gpu(2, "GPU-2", "NVIDIA H100 80GB HBM3", 0),
    ]


def test_gpus_from_names() -> None:
    gpus = gpus_from_names(["H100", " A100-80GB "])
    assert gpus == [Gpu(0, "", "H100", 0), Gpu(1, "", "A100-80GB", 0)]
    assert GpuAllocator(gpus).satisfiable("A100-80GB")
    assert not GpuAllocator(gpus).satisfiable("A100-40GB")


# --- requests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gpu", "options"),
    [
        (None, []),
        ([], []),
        ("H100", [("H100", 1)]),
        ("A100-80GB:2", [("A100-80GB", 2)]),
        (" h100 : 8 ", [("h100", 8)]),
        (["H100", "A100-80GB:2", "L4:1"], [("H100", 1), ("A100-80GB", 2), ("L4", 1)]),
        ("NVIDIA H100 80GB HBM3", [("NVIDIA H100 80GB HBM3", 1)]),
    ],
)
def test_parse_request(gpu: str | list[str] | None, options: list[tuple[str, int]]) -> None:
    assert parse_request(gpu) == options


@pytest.mark.parametrize(
    ("gpu", "message"),
    [
        ("H100:0", "positive integer"),
        ("H100:x", "positive integer"),
        ("H100:-1", "positive integer"),
        ("H100:", "positive integer"),
        ("H100:1.5", "positive integer"),
        ("H100:²", "positive integer"),
        ("", "e.g."),
        (":2", "e.g."),
        ("H100:2:3", "e.g."),
        (["H100", "A100:0"], "A100:0"),
        (["H100", 2], "model string"),
    ],
)
def test_parse_request_errors(gpu: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_request(gpu)  # type: ignore[arg-type]


# --- matching -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "gpu", "expected"),
    [
        ("H100", H100, True),
        ("h100", H100, True),
        ("H100-80GB", H100, True),
        ("h100_80gb", H100, True),
        ("H100 80G", H100, True),
        ("NVIDIA H100 80GB HBM3", H100, True),
        ("H100-PCIE", H100, False),
        ("H10", H100, False),
        ("H100-40GB", H100, False),
        ("A100", H100, False),
        ("A100", A100_SXM_80, True),
        ("A100-80GB", A100_SXM_80, True),
        ("A100-80GB", A100_PCIE_80, True),
        ("a100 80gb", A100_PCIE_80, True),
        ("A100-SXM4", A100_SXM_80, True),
        ("A100-SXM4", A100_PCIE_80, False),
        ("A100-80GB", A100_SXM_40, False),
        ("A100-40GB", A100_SXM_40, True),
        ("A100-40GB", A100_PCIE_40, True),
        ("A100-40GB", A100_PCIE_80, False),
        ("A100", L4, False),
        ("A100-80GB", L4, False),
        ("H100", L4, False),
        ("L4", L4, True),
        ("L4-24GB", L4, True),  # 23034 MiB is 22.5 GiB, within 10 % of 24
        ("L40", L4, False),
        ("", L4, False),
        ("RTX4090", Gpu(0, "", "NVIDIA GeForce RTX 4090", 24564), True),
        ("RTX-4090", Gpu(0, "", "NVIDIA GeForce RTX 4090", 24564), True),
        ("RTX-4090", Gpu(0, "", "NVIDIA GeForce RTX 4080", 16376), False),
        ("A100-80GB", Gpu(0, "", "A100", 0), False),  # memory unknown, not in the name
    ],
)
def test_matches(model: str, gpu: Gpu, expected: bool) -> None:
    assert matches(model, gpu) is expected


# --- allocation -----------------------------------------------------------------------------


def test_allocate_and_release_the_h100() -> None:
    alloc = GpuAllocator([H100])
    assert alloc.satisfiable("H100")
    got = alloc.allocate("H100", "c1")
    assert got == [H100]
    assert alloc.in_use() == {"c1": [0]}
    assert alloc.held_by("c1") == [H100]
    assert alloc.free() == []
    assert alloc.allocate("H100", "c2") is None  # busy now...
    assert alloc.satisfiable("H100")  # ...but not impossible
    alloc.release("c1")
    assert alloc.in_use() == {}
    assert alloc.allocate("h100:1", "c2") == [H100]
    alloc.release("c2")
    alloc.release("c2")  # idempotent
    alloc.release("never-held")
    assert alloc.free() == [H100]


def test_counts_with_four_gpus() -> None:
    alloc = GpuAllocator(mixed())
    assert alloc.summary() == "2 x NVIDIA A100-SXM4-80GB, 1 x NVIDIA A100 80GB PCIe, 1 x NVIDIA L4"
    assert alloc.satisfiable("A100-80GB:3")
    assert not alloc.satisfiable("A100-80GB:4")
    assert not alloc.satisfiable("A100-SXM4:3")
    first = alloc.allocate("A100-80GB:2", "a")
    assert first is not None and [g.index for g in first] == [0, 1]
    assert alloc.allocate("A100-80GB:2", "b") is None  # only one A100 left
    assert alloc.satisfiable("A100-80GB:2")
    second = alloc.allocate("A100-80GB", "b")
    assert second is not None and [g.index for g in second] == [2]
    assert cuda_visible_devices(first) == "0,1"
    assert alloc.cuda_visible_devices(second) == "2"
    assert alloc.in_use() == {"a": [0, 1], "b": [2]}
    alloc.release("a")
    third = alloc.allocate("A100:2", "c")
    assert third is not None and [g.index for g in third] == [0, 1]


def test_list_of_acceptable_models() -> None:
    alloc = GpuAllocator(mixed())
    # H100 is never here, A100-80GB:2 is: the list is satisfiable.
    assert alloc.satisfiable(["H100", "A100-80GB:2"])
    assert not alloc.satisfiable(["H100", "A100-80GB:4", "L4:2"])
    got = alloc.allocate(["H100", "A100-80GB:2"], "a")
    assert got is not None and [g.index for g in got] == [0, 1]
    # The first option cannot be met now, the second can.
    got = alloc.allocate(["A100-80GB:2", "L4"], "b")
    assert got is not None and [g.name for g in got] == ["NVIDIA L4"]
    assert alloc.allocate(["A100-80GB:2", "L4"], "c") is None
    assert alloc.satisfiable(["A100-80GB:2", "L4"])
    # Parsed options work as well as gpu= strings.
    got = alloc.allocate([("A100", 1)], "d")
    assert got is not None and [g.index for g in got] == [2]


def test_unsatisfiable() -> None:
    alloc = GpuAllocator([H100])
    assert not alloc.satisfiable("A100")
    assert not alloc.satisfiable("H100:2")
    assert not alloc.satisfiable(["A100-80GB", "L4"])
    assert alloc.allocate("A100", "x") is None
    assert alloc.in_use() == {}
    none = GpuAllocator([])
    assert not none.satisfiable("H100")
    assert none.summary() == "no GPUs"


def test_no_gpu_requested() -> None:
    alloc = GpuAllocator([])
    assert alloc.satisfiable(None)
    assert alloc.satisfiable([])
    assert alloc.allocate(None, "x") == []
    assert alloc.in_use() == {}


def test_bad_requests_raise() -> None:
    alloc = GpuAllocator([H100])
    with pytest.raises(ValueError, match="positive integer"):
        alloc.satisfiable("H100:0")
    with pytest.raises(ValueError, match="positive integer"):
        alloc.allocate("H100:x", "a")
    with pytest.raises(ValueError, match="positive count"):
        alloc.allocate([("H100", 0)], "a")
    with pytest.raises(ValueError, match="positive count"):
        alloc.allocate([("H100", True)], "a")
    with pytest.raises(ValueError, match="expected a model string"):
        alloc.satisfiable(("H100", 2))  # type: ignore[arg-type]
    assert alloc.in_use() == {}


def test_an_owner_holds_one_allocation() -> None:
    alloc = GpuAllocator(mixed())
    assert alloc.allocate("L4", "a") is not None
    with pytest.raises(ValueError, match="already holds"):
        alloc.allocate("A100", "a")
    assert alloc.in_use() == {"a": [3]}


def test_env() -> None:
    gpus = mixed()
    assert gpu_env([gpus[1], gpus[3]]) == {
        "CUDA_VISIBLE_DEVICES": "1,3",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }
    assert gpu_env([])["CUDA_VISIBLE_DEVICES"] == ""


def test_threads_never_share_a_gpu() -> None:
    gpus = [Gpu(i, f"GPU-{i}", "NVIDIA H100 80GB HBM3", 81559) for i in range(8)]
    alloc = GpuAllocator(gpus)
    start = threading.Barrier(32)
    holders: dict[int, str] = {}  # what the threads themselves believe they hold
    lock = threading.Lock()
    errors: list[str] = []
    granted = 0

    def worker(n: int) -> None:
        nonlocal granted
        start.wait()
        for round_ in range(200):
            owner = f"t{n}-{round_}"
            got = alloc.allocate("H100", owner)
            if got is None:
                continue
            with lock:
                granted += 1
                if len(got) != 1:
                    errors.append(f"{owner} got {got}")
                for g in got:
                    if g.index in holders:
                        errors.append(f"GPU {g.index} given to {owner} and {holders[g.index]}")
                    holders[g.index] = owner
            if round_ % 3 == 0:
                continue  # keep it: the pool runs dry
            with lock:
                for g in got:
                    del holders[g.index]
            alloc.release(owner)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert granted >= 8
    held = alloc.in_use()
    assert sorted(i for idx in held.values() for i in idx) == sorted(holders) == list(range(8))
    assert {o: [i] for i, o in holders.items()} == held
    assert alloc.free() == []


def test_threads_first_come_first_served() -> None:
    alloc = GpuAllocator(mixed())
    start = threading.Barrier(16)
    got: list[list[Gpu] | None] = [None] * 16

    def worker(n: int) -> None:
        start.wait()
        got[n] = alloc.allocate(["A100-80GB", "L4"], f"o{n}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [g for g in got if g is not None]
    assert sorted(g[0].index for g in winners) == [0, 1, 2, 3]
