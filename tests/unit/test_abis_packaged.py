"""An installed keeper finds its ABIs: the wheel carries abis/ as keeper/abis/, and the codec loads them.

Built offline from a copy of the sources (no build/ left in the checkout) with ``pip wheel --no-deps
--no-build-isolation`` (setuptools is a dev dependency), then imported from the unpacked wheel in a
fresh interpreter, ahead of the editable install.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from keeper.devnet.abis import SPEC

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_carries_every_abi_and_the_codec_loads_them(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "abis", source / "abis")
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "keeper", source / "keeper", symlinks=True, ignore=skip)
    offline = ["--no-deps", "--no-build-isolation", "-q"]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", *offline, "-w", str(tmp_path / "dist"), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("keeper-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = {n for n in archive.namelist() if n.startswith("keeper/abis/")}
        archive.extractall(tmp_path / "installed")
    assert packaged == {f"keeper/abis/{name}.json" for name in SPEC}

    probe = (
        "import json, keeper, keeper.chain.abi as abi;"
        f"names = {sorted(SPEC)!r};"
        "built = {n: sorted(abi.contract(n).functions) for n in names};"
        "print(json.dumps({'keeper': keeper.__file__, 'built': built}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(tmp_path / "installed"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    loaded = json.loads(result.stdout)
    assert Path(loaded["keeper"]).is_relative_to(tmp_path / "installed")
    assert set(loaded["built"]) == set(SPEC)
    pool = json.loads((ROOT / "abis" / "aave_v3_0" / "IPool.json").read_text())
    assert loaded["built"]["aave_v3_0/IPool"] == sorted(f["name"] for f in pool if f["type"] == "function")
