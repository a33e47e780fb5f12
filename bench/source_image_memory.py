"""``just bench image``: memory a worker spends checking a source image, against decoding it
plainly with Pillow (what happened before the check existed), each in a fresh process.

The attack of issue 10: a ~440 kB PNG declaring 12000 x 12000 pixels. The check refuses it from
its header (``MAX_SOURCE_PIXELS``, default 40 million); a plain decode allocates every pixel.
A legitimate 4000 x 4000 image is decoded either way. Prints the peak RSS growth of each and the
ratio check / plain.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = """
import io, sys
from pathlib import Path
from PIL import Image
from service.core.errors import BadRequest
from service.storage.images import check_decodes
def peak_kib():
    # VmHWM is this process's own peak (exec starts it afresh); ru_maxrss carries the parent's
    # peak across fork and exec, which hid the growth when run after the other benchmarks.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise SystemExit("no VmHWM in /proc/self/status")
data = Path(sys.argv[2]).read_bytes()
before = peak_kib()
if sys.argv[1] == "check":
    try:
        check_decodes(data, 40_000_000)
        outcome = "decoded"
    except BadRequest:
        outcome = "refused"
else:
    Image.MAX_IMAGE_PIXELS = None
    with Image.open(io.BytesIO(data)) as image:
        image.load()
    outcome = "decoded"
print(outcome, (peak_kib() - before) // 1024)
"""


MAKE = """
import sys
from PIL import Image
side = int(sys.argv[1])
Image.new("RGB", (side, side), (200, 120, 40)).save(sys.argv[2], format="PNG", optimize=True)
"""


def _png(side: int, path: Path) -> None:
    # In a child of its own: a child process starts with its parent's peak RSS (Linux keeps
    # ru_maxrss across fork and exec), so the parent must never hold a large image.
    subprocess.run([sys.executable, "-c", MAKE, str(side), str(path)], check=True)


def _peak(mode: str, path: Path) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode, str(path)], capture_output=True, text=True, check=True)
    outcome, mib = out.stdout.split()
    return outcome, int(mib)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'image':>28} {'plain decode':>18} {'checked':>18} {'ratio':>7}")
        for side in (12000, 4000):
            path = Path(tmp) / f"{side}.png"
            _png(side, path)
            plain, plain_mib = _peak("plain", path)
            checked, checked_mib = _peak("check", path)
            label = f"{side}x{side} PNG, {path.stat().st_size // 1024} kB"
            ratio = checked_mib / plain_mib if plain_mib else float("nan")
            print(
                f"{label:>28} {plain + ' ' + str(plain_mib) + ' MiB':>18} "
                f"{checked + ' ' + str(checked_mib) + ' MiB':>18} {ratio:>7.3f}"
            )


if __name__ == "__main__":
    main()
