"""The firmware on a single-core Cortex-M under QEMU (`qemu-system-arm -machine mps2-an500`, a
Cortex-M7; `QemuM55`: `-machine mps3-an547`, a Cortex-M55).

    with QemuArm(transport="pty") as qemu:      # or "tcp"
        client = DeviceClient(qemu.connect)

The RISC-V launcher's life cycle (streamer/link/qemu.py, which this extends): the image is
built with `make -C firmware TARGET=cortex-m7` when missing or stale; the CMSDK UART0 is a
pseudo-terminal or a TCP server on 127.0.0.1; the child dies on close(), on an exception, at
interpreter exit and with this process (PR_SET_PDEATHSIG). Retired instructions come from the
same TCG plugin, counting into the last page of the board's 16 MB PSRAM (the machine's RAM,
made a shared file). See docs/cortex-m.md.

TDN_QEMU_ARM=/path/to/qemu-system-arm runs another QEMU; TDN_QEMU_ACCEL overrides `-accel`.
"""

from __future__ import annotations

import os
from pathlib import Path

from streamer.link.qemu import Qemu, build_qemu_image
from streamer.link.simulator import FIRMWARE_DIR

QEMU_ARM_ENV = "TDN_QEMU_ARM"
M7_TARGET = "cortex-m7"  # make -C firmware TARGET=cortex-m7
M7_DIR = FIRMWARE_DIR / "build" / M7_TARGET
M7_IMAGE = M7_DIR / "tdn-qemu-m7.elf"
M7_HAL = "hal/cortex-m"
PSRAM_MB = 16  # mps2-an500's machine RAM: exactly 16 MB (QEMU refuses another size)
M55_TARGET = "cortex-m55"  # make -C firmware TARGET=cortex-m55
M55_DIR = FIRMWARE_DIR / "build" / M55_TARGET
M55_IMAGE = M55_DIR / "tdn-qemu-m55.elf"
DDR_MB = 2048  # mps3-an547's machine RAM (the DDR): exactly 2 GB; the shared file stays sparse


def build_m7_image(firmware_dir: Path = FIRMWARE_DIR) -> Path:
    """Run `make -C firmware TARGET=cortex-m7` if the image or the plugin is missing or stale."""
    return build_qemu_image(firmware_dir, target=M7_TARGET, image=M7_IMAGE.name, hal=M7_HAL)


def build_m55_image(firmware_dir: Path = FIRMWARE_DIR) -> Path:
    """Run `make -C firmware TARGET=cortex-m55` if the image or the plugin is missing or stale."""
    return build_qemu_image(firmware_dir, target=M55_TARGET, image=M55_IMAGE.name, hal=M7_HAL)


class QemuArm(Qemu):
    """One QEMU mps2-an500 (Cortex-M7 + FPU, one core) with the firmware, UART0 on a pty or TCP."""

    default_image = M7_IMAGE
    plugin = M7_DIR / "libinstret.so"
    ram_mb = PSRAM_MB
    package = "qemu-system-arm"

    def program(self) -> str:
        return os.environ.get(QEMU_ARM_ENV) or "qemu-system-arm"

    def build_image(self) -> Path:
        return build_m7_image()

    def machine_args(self) -> list[str]:
        machine = "mps2-an500,memory-backend=ram" if self.instret else "mps2-an500"
        return ["-machine", machine, "-m", f"{PSRAM_MB}M"]

    def __repr__(self) -> str:
        state = f"pid {self.pid}, {self.url}" if self.alive() else "stopped"
        return f"QemuArm({self.transport}, {state})"


class QemuM55(QemuArm):
    """One QEMU mps3-an547 (Cortex-M55, FPU + MVE, one core) with the same firmware and HAL."""

    default_image = M55_IMAGE
    plugin = M55_DIR / "libinstret.so"
    ram_mb = DDR_MB

    def build_image(self) -> Path:
        return build_m55_image()

    def machine_args(self) -> list[str]:
        machine = "mps3-an547,memory-backend=ram" if self.instret else "mps3-an547"
        return ["-machine", machine, "-m", f"{DDR_MB}M"]

    def __repr__(self) -> str:
        state = f"pid {self.pid}, {self.url}" if self.alive() else "stopped"
        return f"QemuM55({self.transport}, {state})"
