"""GPUs on this machine: discovery through ``nvidia-smi`` and allocation to containers.

``discover()`` asks ``nvidia-smi`` for the GPUs (index, UUID, name, memory) and returns an
empty list, never an error, on a machine without one. A function asks for GPUs by model:
``"H100"``, ``"A100-80GB:2"`` (two of them) or a list of acceptable options, tried in
order. A ``GpuAllocator`` hands whole GPUs to containers (an owner, usually the container
id) and takes them back when the container stops; the container sees only its own GPUs
through ``CUDA_VISIBLE_DEVICES`` (see ``gpu_env``). See docs/gpus.md.
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

_DIGITS = re.compile(r"[0-9]+")

QUERY = "index,uuid,name,memory.total"
"""The fields ``discover`` asks ``nvidia-smi --query-gpu`` for, in this order."""

MEMORY_TOLERANCE = 0.10
"""How far a GPU's memory may be from a size token of the wanted model ("80GB")."""

GpuOption = tuple[str, int]
"""One acceptable way to satisfy a request: a model and how many GPUs of it."""

GpuRequest = str | Sequence[str] | Sequence[GpuOption] | None
"""What the allocator accepts: a ``gpu=`` value as written, or ``parse_request``'s result."""


@dataclass(frozen=True)
class Gpu:
    """One physical GPU, as ``nvidia-smi`` numbers and names it."""

    index: int
    uuid: str
    name: str
    memory_mib: int


# --- discovery ------------------------------------------------------------------------------


def discover(nvidia_smi: str = "nvidia-smi", timeout: float = 10.0) -> list[Gpu]:
    """The GPUs ``nvidia_smi`` reports, ordered by index; [] if it cannot tell.

    Never raises: a missing binary, a non-zero exit, a timeout or output with no GPU line
    in it all mean "no GPUs" (logged).
    """
    command = [nvidia_smi, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        log.info("GPU discovery: %s not found; no GPUs", nvidia_smi)
        return []
    except subprocess.TimeoutExpired:
        log.warning("GPU discovery: %s took over %gs; no GPUs", nvidia_smi, timeout)
        return []
    except (OSError, ValueError) as exc:
        log.warning("GPU discovery: cannot run %s (%s); no GPUs", nvidia_smi, exc)
        return []
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        log.warning(
            "GPU discovery: %s exited with %d%s; no GPUs",
            nvidia_smi,
            done.returncode,
            f" ({why[-1]})" if why else "",
        )
        return []
    gpus = parse_query_output(done.stdout)
    if not gpus:
        log.warning("GPU discovery: %s printed no GPU line; no GPUs", nvidia_smi)
        return []
    log.info(
        "GPU discovery: %s", ", ".join(f"{g.index}: {g.name} ({g.memory_mib} MiB)" for g in gpus)
    )
    return gpus


def parse_query_output(text: str) -> list[Gpu]:
    """The GPUs in ``nvidia-smi --query-gpu=index,uuid,name,memory.total`` CSV output.

    Tolerant: blank lines, a header line and other unparseable lines are skipped, values
    may carry extra spaces or units ("81559 MiB"), a name containing commas is rejoined,
    and a memory of "[N/A]" becomes 0. Duplicate indices keep the first line.
    """
    gpus: dict[int, Gpu] = {}
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 4:
            if line.strip():
                log.debug("GPU discovery: skipping line %r", line)
            continue
        index_text, uuid, *name_parts, memory_text = fields
        name = ", ".join(p for p in name_parts if p)
        if not _DIGITS.fullmatch(index_text) or not name:
            log.debug("GPU discovery: skipping line %r", line)
            continue
        index = int(index_text)
        memory = re.match(r"[0-9]+", memory_text)
        gpus.setdefault(index, Gpu(index, uuid, name, int(memory.group()) if memory else 0))
    return [gpus[i] for i in sorted(gpus)]


def gpus_from_names(names: Iterable[str]) -> list[Gpu]:
    """GPUs described only by model names (a configured override), numbered from 0.

    Their UUIDs are empty and their memory unknown (0): a size token of a wanted model then
    matches only if the name itself carries it (``"A100-80GB"``).
    """
    return [Gpu(i, "", name.strip(), 0) for i, name in enumerate(names)]


# --- requests and matching ------------------------------------------------------------------


def parse_request(gpu: str | Sequence[str] | None) -> list[GpuOption]:
    """The acceptable (model, count) options of a ``gpu=`` value, in order of preference.

    ``None`` or ``[]``: no GPU, []. ``"H100"``: [("H100", 1)]. ``"A100-80GB:2"``:
    [("A100-80GB", 2)]. A list: one option per entry. Raises ValueError for an empty model
    or a count that is not a positive integer.
    """
    if gpu is None:
        return []
    entries = [gpu] if isinstance(gpu, str) else list(gpu)
    options: list[GpuOption] = []
    for entry in entries:
        if not isinstance(entry, str):
            raise ValueError(f"gpu: expected a model string like 'H100' or 'A100:2', got {entry!r}")
        model, sep, count_text = entry.strip().rpartition(":")
        if not sep:
            model, count_text = count_text, "1"
        model, count_text = model.strip(), count_text.strip()
        if not model or ":" in model:
            raise ValueError(f"gpu {entry!r}: expected one model and a count, e.g. 'A100:2'")
        if not _DIGITS.fullmatch(count_text) or int(count_text) < 1:
            raise ValueError(
                f"gpu {entry!r}: count {count_text!r} must be a positive integer (e.g. 'H100:2')"
            )
        options.append((model, int(count_text)))
    return options


def _tokens(text: str) -> list[str]:
    return re.sub(r"[-_\s/]+", " ", text.upper()).split()


_SIZE = re.compile(r"(\d+(?:\.\d+)?)(?:GB|GIB|G)")


def matches(model: str, gpu: Gpu) -> bool:
    """Whether ``gpu`` is a ``model``: every token of the model appears in the GPU's name.

    Case-insensitive; ``-``, ``_``, ``/`` and spaces all separate tokens, and a token may
    also match adjacent name tokens run together ("RTX4090" matches "RTX 4090"). A size
    token ("80GB", "80G") also matches a GPU whose memory is within 10 % of that many GiB.
    So "H100" matches "NVIDIA H100 80GB HBM3", and "A100-80GB" matches both
    "NVIDIA A100-SXM4-80GB" and "NVIDIA A100 80GB PCIe", but not "NVIDIA A100-SXM4-40GB".
    """
    wanted = _tokens(model)
    if not wanted:
        return False
    have = _tokens(gpu.name)
    runs = {"".join(have[i:j]) for i in range(len(have)) for j in range(i + 1, len(have) + 1)}
    for token in wanted:
        if token in runs:
            continue
        size = _SIZE.fullmatch(token)
        if size is None or gpu.memory_mib <= 0:
            return False
        want_gib = float(size.group(1))
        have_gib = gpu.memory_mib / 1024
        if want_gib <= 0 or abs(have_gib - want_gib) > MEMORY_TOLERANCE * want_gib:
            return False
    return True


def _options(request: GpuRequest) -> list[GpuOption]:
    if request is None or isinstance(request, str):
        return parse_request(request)
    items = list(request)
    if all(isinstance(item, str) for item in items):
        return parse_request([item for item in items if isinstance(item, str)])
    options: list[GpuOption] = []
    for item in items:
        if isinstance(item, str):
            options.extend(parse_request(item))
        elif not isinstance(item, tuple) or len(item) != 2:
            raise ValueError(f"gpu option {item!r}: expected a model string or (model, count)")
        else:
            model, count = item
            if (
                not isinstance(model, str)
                or not model.strip()
                or not isinstance(count, int)
                or isinstance(count, bool)
                or count < 1
            ):
                raise ValueError(f"gpu option {item!r}: needs a model and a positive count")
            options.append((model.strip(), count))
    return options


def cuda_visible_devices(gpus: Sequence[Gpu]) -> str:
    """``CUDA_VISIBLE_DEVICES`` for ``gpus``: their nvidia-smi indices, comma-separated.

    Indices follow nvidia-smi's PCI bus order; CUDA numbers devices the same way only with
    ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, which ``gpu_env`` sets too. [] gives "" (no GPU).
    """
    return ",".join(str(g.index) for g in gpus)


def gpu_env(gpus: Sequence[Gpu]) -> dict[str, str]:
    """The environment a container with ``gpus`` needs: exactly those GPUs visible to CUDA.

    Also for []: ``CUDA_VISIBLE_DEVICES=""`` hides every GPU from a container that asked for
    none (apply it only where discovery found GPUs, so a machine where nvidia-smi is
    missing is left alone).
    """
    return {
        "CUDA_VISIBLE_DEVICES": cuda_visible_devices(gpus),
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }


# --- allocation -----------------------------------------------------------------------------


class GpuAllocator:
    """Whole GPUs of this machine, lent to owners (containers) one request at a time.

    Thread-safe. An owner holds at most one allocation; ``release`` returns all of it.
    """

    def __init__(self, gpus: Iterable[Gpu]) -> None:
        self._gpus = sorted(gpus, key=lambda g: g.index)
        self._owner_of: dict[int, str] = {}
        self._held: dict[str, list[Gpu]] = {}
        self._lock = threading.Lock()

    cuda_visible_devices = staticmethod(cuda_visible_devices)

    @property
    def gpus(self) -> list[Gpu]:
        """Every GPU this allocator manages, by index."""
        return list(self._gpus)

    def satisfiable(self, request: GpuRequest) -> bool:
        """Whether this machine could ever satisfy ``request`` (all its GPUs free).

        True for no GPU at all; raises ValueError for a malformed request.
        """
        options = _options(request)
        if not options:
            return True
        return any(
            sum(1 for g in self._gpus if matches(model, g)) >= count for model, count in options
        )

    def allocate(self, request: GpuRequest, owner: str) -> list[Gpu] | None:
        """GPUs for ``owner`` from the first option with enough free matching ones.

        Lowest indices first. [] for a request of no GPU; None if no option can be met
        right now (check ``satisfiable`` to tell "later" from "never"). Raises ValueError
        for a malformed request or an owner that already holds GPUs.
        """
        options = _options(request)
        if not options:
            return []
        with self._lock:
            if owner in self._held:
                raise ValueError(f"{owner} already holds GPUs {self._indices(owner)}")
            for model, count in options:
                free = [
                    g for g in self._gpus if g.index not in self._owner_of and matches(model, g)
                ]
                if len(free) >= count:
                    chosen = free[:count]
                    for g in chosen:
                        self._owner_of[g.index] = owner
                    self._held[owner] = chosen
                    return list(chosen)
            return None

    def release(self, owner: str) -> None:
        """Return every GPU ``owner`` holds (nothing if it holds none)."""
        with self._lock:
            for g in self._held.pop(owner, []):
                self._owner_of.pop(g.index, None)

    def held_by(self, owner: str) -> list[Gpu]:
        """The GPUs ``owner`` holds now, [] if none."""
        with self._lock:
            return list(self._held.get(owner, []))

    def free(self) -> list[Gpu]:
        """The GPUs no owner holds now, by index."""
        with self._lock:
            return [g for g in self._gpus if g.index not in self._owner_of]

    def in_use(self) -> dict[str, list[int]]:
        """Owner -> indices of the GPUs it holds, for every owner holding some."""
        with self._lock:
            return {owner: [g.index for g in held] for owner, held in self._held.items()}

    def summary(self) -> str:
        """The machine's GPUs for messages: "2 x NVIDIA A100-SXM4-80GB, 1 x NVIDIA L4"."""
        counts: dict[str, int] = {}
        for g in self._gpus:
            counts[g.name] = counts.get(g.name, 0) + 1
        return ", ".join(f"{n} x {name}" for name, n in counts.items()) or "no GPUs"

    def _indices(self, owner: str) -> list[int]:
        return [g.index for g in self._held.get(owner, [])]
