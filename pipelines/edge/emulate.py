"""Instructions per inference on ARM cores: the real aarch64 TFLite runtime under QEMU user-mode
emulation, counted by a TCG plugin.

Wall time under emulation means nothing; the count of aarch64 instructions that the kernels the
runtime picks for a core execute per `invoke()` is exact and repeatable. The runtime (XNNPACK)
picks kernels from the core named in `/proc/cpuinfo` (fp32: by core type) and from the CPU's
features (int8: dot-product instructions), so each core runs with a `/proc/cpuinfo` of its own
under QEMU's `-L` prefix, and QEMU's `-cpu` pinned to a core with the same instruction set.

The harness is built by `make arm-setup` (pipelines/edge/arm/setup.sh) into `.arm/`
(`EDGESMITH_ARM_HOME` elsewhere). Without it, `harness()` raises `HarnessMissing` with one line.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.common.errors import UserError
from pipelines.edge import runtime

log = logging.getLogger(__name__)

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds `pipelines/`
PYTHON = "usr/bin/python3.11"
TIMEOUT_S = 1800.0
_ARMV8_0 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"
_ARMV8_2_DOT = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"


@dataclass(frozen=True)
class Core:
    """An emulated core: QEMU's `-cpu` model, and the `/proc/cpuinfo` the runtime reads."""

    qemu_cpu: str
    part: str  # the cpuinfo `CPU part` (Arm's MIDR part number)
    variant: str
    revision: int
    features: str
    note: str = ""

    def cpuinfo(self) -> str:
        return (
            "processor\t: 0\nBogoMIPS\t: 38.40\n"
            f"Features\t: {self.features}\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
            f"CPU variant\t: {self.variant}\nCPU part\t: {self.part}\nCPU revision\t: {self.revision}\n\n"
        )


# What `devices.profiles.<name>.emulate` may name. QEMU 7.2 has no Cortex-A55: it has the same
# Armv8.2-A + dot-product instruction set as the A76, so it runs as `-cpu cortex-a76` with the
# A55's part number, and the runtime picks its A55 kernels.
CORES = {
    "cortex-a53": Core("cortex-a53", "0xd03", "0x0", 4, _ARMV8_0),
    "cortex-a55": Core("cortex-a76", "0xd05", "0x1", 0, _ARMV8_2_DOT,
                       note="emulated as cortex-a76 (same Armv8.2-A + dot-product ISA) with the A55's cpuinfo"),
    "cortex-a72": Core("cortex-a72", "0xd08", "0x0", 3, _ARMV8_0),
    "cortex-a76": Core("cortex-a76", "0xd0b", "0x4", 1, _ARMV8_2_DOT),
}  # fmt: skip


class HarnessMissing(UserError):
    """The emulation harness is not built (or cannot run) here."""


@dataclass(frozen=True)
class Harness:
    home: Path
    qemu: str
    plugin: Path
    rootfs: Path
    site: Path

    def prefix(self, core: str) -> Path:
        """QEMU's -L folder for `core`: the arm64 root (hard links) with that core's /proc/cpuinfo."""
        spec = core_spec(core)
        folder = self.home / "cores" / core
        cpuinfo = folder / "proc" / "cpuinfo"
        if cpuinfo.is_file() and cpuinfo.read_text() == spec.cpuinfo():
            return folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{core}-", dir=folder.parent))
        shutil.rmtree(building)
        subprocess.run(["cp", "-al", str(self.rootfs), str(building)], check=True)
        (building / "proc").mkdir(exist_ok=True)
        (building / "proc" / "cpuinfo").write_text(spec.cpuinfo())
        shutil.rmtree(folder, ignore_errors=True)
        building.rename(folder)
        return folder


def core_spec(core: str) -> Core:
    if core not in CORES:
        raise UserError(f"unknown emulated core {core!r}: one of {', '.join(CORES)}")
    return CORES[core]


def arm_home() -> Path:
    return Path(os.environ.get("EDGESMITH_ARM_HOME") or SOURCE_ROOT / ".arm")


def harness(home: Path | None = None) -> Harness:
    """The built harness, or HarnessMissing saying what is missing and how to build it."""
    home = Path(home) if home else arm_home()
    qemu = shutil.which("qemu-aarch64")
    parts = {"libicount.so": home / "libicount.so", "rootfs": home / "rootfs" / ".complete",
             "site": home / "site" / ".complete"}  # fmt: skip
    missing = [name for name, p in parts.items() if not p.exists()]
    if qemu is None:
        missing.insert(0, "qemu-aarch64")
    if missing:
        raise HarnessMissing(f"no emulated-ARM harness in {home} ({', '.join(missing)} missing): run make arm-setup")
    return Harness(home, qemu, home / "libicount.so", home / "rootfs", home / "site")


def count(
    models: Sequence[str | Path],
    core: str,
    invokes: int = 3,
    outputs: str | Path | None = None,
    home: Path | None = None,
) -> list[dict]:
    """Instructions per invoke() of each model on `core`, in one emulated process.

    Per model: `instructions` (the median of invokes after the first, the steady state),
    `first_invoke`, every invoke's count, all net of the marker pair's own cost; or `error`.
    With `outputs`, the first output of each model's last invoke is saved as `<index>.npy`.
    """
    if invokes < 1:
        raise UserError(f"invokes must be >= 1, got {invokes}")
    h = harness(home)
    spec = core_spec(core)
    paths = [runtime.check_tflite(m).resolve() for m in models]
    prefix = h.prefix(core)
    with tempfile.TemporaryDirectory(prefix="edgesmith-emulate-") as tmp:
        marks_file = Path(tmp) / "marks.log"
        cmd = [h.qemu, "-cpu", spec.qemu_cpu, "-L", str(prefix), "-plugin", str(h.plugin), "-d", "plugin",
               "-D", str(marks_file), str(prefix / PYTHON), "-m", "pipelines.edge.emulate_guest",
               "--invokes", str(invokes), *map(str, paths)]  # fmt: skip
        if outputs:
            cmd += ["--outputs", str(Path(outputs).resolve())]
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{h.site}:{SOURCE_ROOT}", "PYTHONDONTWRITEBYTECODE": "1",
               "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "LC_ALL": "C"}  # fmt: skip
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise UserError(f"emulation on {core} took over {TIMEOUT_S:.0f} s") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            raise UserError(f"the emulated runtime failed on {core}: {last}")
        marks = [int(line.split()[1]) for line in marks_file.read_text().splitlines() if line.startswith("mark ")]
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return _per_model(reports, marks, invokes, core)


def _per_model(reports: list[dict], marks: list[int], invokes: int, core: str) -> list[dict]:
    """Split the marker totals into each loaded model's empty pair and invoke pairs."""
    results, at = [], 0
    for rep in reports:
        if "error" in rep:
            results.append({"file": rep["model"], "core": core, "error": rep["error"]})
            continue
        own = marks[at : at + 2 * (invokes + 1)]
        at += 2 * (invokes + 1)
        if len(own) != 2 * (invokes + 1):
            raise UserError(f"the counting plugin gave {len(marks)} marks, fewer than the guest made")
        overhead = own[1] - own[0]
        counts = [own[2 * i + 3] - own[2 * i + 2] - overhead for i in range(invokes)]
        steady = counts[1:] or counts
        results.append({
            "file": rep["model"], "core": core, "instructions": int(statistics.median(steady)),
            "first_invoke": counts[0], "invokes": counts, "marker_overhead": overhead,
        })  # fmt: skip
    return results


def emulated_profiles(profiles: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The device profiles that name a core to emulate."""
    return {name: p for name, p in profiles.items() if p.get("emulate")}


def estimated_ms(instructions: int, profile: Mapping[str, Any]) -> float:
    """Instructions as a latency on the profile's core: instructions / (ipc x clock)."""
    return instructions / (profile["ipc"] * profile["clock_ghz"] * 1e6)


def profile_costs(
    files: Sequence[Path], profiles: Mapping[str, Mapping[str, Any]], invokes: int = 3, home: Path | None = None
) -> dict[str, Any]:
    """Every file counted on every emulated profile's core (one emulated process per core).

    {'profiles': {name: {core, qemu_cpu, note, clock_ghz, ipc}}, 'models': {stem: {profile:
    {instructions, estimated_latency_ms, first_invoke, invokes}}}}.
    """
    emulated = emulated_profiles(profiles)
    models: dict[str, dict[str, Any]] = {f.stem: {} for f in files}
    for name, prof in emulated.items():
        for f, r in zip(files, count(files, prof["emulate"], invokes=invokes, home=home), strict=True):
            if "error" in r:
                raise UserError(f"{f.name}: the emulated runtime on {prof['emulate']} cannot load it ({r['error']})")
            models[f.stem][name] = {
                "instructions": r["instructions"], "estimated_latency_ms": round(estimated_ms(r["instructions"], prof), 5),
                "first_invoke": r["first_invoke"], "invokes": r["invokes"],
            }  # fmt: skip
        log.info("arm_cost: %d files counted on %s (%s)", len(files), name, prof["emulate"])
    return {
        "profiles": {
            name: {"core": p["emulate"], "qemu_cpu": core_spec(p["emulate"]).qemu_cpu, "note": core_spec(p["emulate"]).note,
                   "clock_ghz": p["clock_ghz"], "ipc": p["ipc"]}  # fmt: skip
            for name, p in emulated.items()
        },
        "models": models,
    }


def describe(home: Path | None = None) -> dict[str, Any]:
    """What the counts were made with: QEMU's version and the guest's Python and runtime wheels."""
    h = harness(home)
    qemu = subprocess.run([h.qemu, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    wheels = (h.site / ".complete").read_text().split()
    return {"qemu": qemu[0] if qemu else "unknown", "guest_python": "3.11 (Debian bookworm arm64)", "wheels": wheels,
            "home": str(h.home)}  # fmt: skip
