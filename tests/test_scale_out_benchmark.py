"""benchmarks.scale_out end to end on a few rows: every measure runs and is reported, so the
benchmark cannot rot between the runs of `make benchmark`."""

import re
from pathlib import Path

from benchmarks import scale_out


def test_the_scale_out_benchmark_reports_each_measure(tmp_path: Path, capsys) -> None:
    assert scale_out.main(["--rows", "3000", "--repeat", "1", "--files", "3",
                           "--workdir", str(tmp_path)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    ratios = re.findall(r": (\d+\.\d+)x", out)
    assert len(ratios) == 3 and all(float(r) > 0 for r in ratios), out
    assert "one core: Preprocess" in out and "3 files" in out
    assert re.search(r"peak memory, summed: \d+ MB of the \d+ MB setting", out), out
    # the many-files case holds the same rows as the one file, each with the header
    (source,) = (tmp_path / "quality-3000" / "in").glob("*.csv")
    parts = sorted((tmp_path / "scale-out-3-files").glob("*.csv"))
    header = source.read_bytes().split(b"\n", 1)[0] + b"\n"
    assert len(parts) == 3
    assert (
        b"".join(p.read_bytes()[len(header) :] for p in parts) == source.read_bytes()[len(header) :]
    )
