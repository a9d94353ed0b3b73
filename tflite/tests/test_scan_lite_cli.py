"""`scan-lite run` and `scan-lite bench` on the conformance vectors."""

import gzip
import json
import struct

import numpy as np
import pytest
from conftest import EXPORT
from scan_lite import cli
from scan_lite.images import read_image, read_pnm, write_pnm


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def test_run_npy_pgm_ppm(tmp_path, images, expected, capsys):
    paths = []
    for i, image in enumerate(images[:6]):
        kind = i % 3
        if kind == 0:
            path = tmp_path / f"im{i}.npy"
            np.save(path, image)
        else:
            path = tmp_path / f"im{i}.{'ppm' if kind == 1 else 'pnm'}"
            write_pnm(path, image)
        paths.append(str(path))
    assert cli.main(["run", str(EXPORT), *paths, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    cases = expected["variants"]["int8"]["cases"][:6]
    assert [r["label"] for r in lines] == [c["label"] for c in cases]
    assert [r["exit_index"] for r in lines] == [c["exit_index"] for c in cases]
    assert all(len(r["stage_latency_ms"]) == r["exit_index"] + 1 for r in lines)

    assert cli.main(["run", str(EXPORT), paths[0], "--variant", "float32"]) == 0
    out = capsys.readouterr().out
    label = expected["variants"]["float32"]["cases"][0]["label"]
    assert f"(class {label})" in out and "exit " in out and " ms" in out


def test_pgm_ascii_and_grey_round_trip(tmp_path):
    grey = (np.arange(28 * 28) % 256).astype(np.uint8).reshape(28, 28)
    write_pnm(tmp_path / "g.pgm", grey)
    assert np.array_equal(read_image(tmp_path / "g.pgm")[..., 0], grey)
    text = "P2\n# comment\n3 2\n15\n0 15 5\n10 0 15\n"
    (tmp_path / "a.pgm").write_text(text)
    got = read_pnm(tmp_path / "a.pgm")[..., 0]
    np.testing.assert_allclose(got, np.array([[0, 255, 85], [170, 0, 255]]), atol=1e-4)


def test_run_png_with_pillow(tmp_path, images, expected, capsys):
    image_module = pytest.importorskip("PIL.Image")
    path = tmp_path / "shirt.png"
    image_module.fromarray(images[1]).save(path)
    assert cli.main(["run", str(EXPORT), str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["label"] == expected["variants"]["int8"]["cases"][1]["label"]


def test_run_refuses_wrong_size_unless_fit(tmp_path, images, expected, capsys):
    path = tmp_path / "raw28.npy"
    np.save(path, images[0, 2:30, 2:30, :1])
    good = tmp_path / "good.npy"
    np.save(good, images[0])
    assert cli.main(["run", str(EXPORT), str(good), str(path)]) == 2
    captured = capsys.readouterr()
    assert "(28, 28, 1)" in captured.err and "32x32x3" in captured.err
    assert "--fit" in captured.err
    assert captured.out == ""  # a bad image fails before any output
    assert cli.main(["run", str(EXPORT), str(path), "--fit", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["label"] == expected["variants"]["int8"]["cases"][0]["label"]


def test_run_errors(tmp_path, capsys):
    assert cli.main(["run", str(tmp_path), "x.npy"]) == 2
    assert "manifest.json" in capsys.readouterr().err
    assert cli.main(["run", str(EXPORT), str(tmp_path / "missing.npy")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    assert cli.main(["run", str(EXPORT), str(tmp_path / "x.gif")]) == 2
    assert "x.gif" in capsys.readouterr().err


@pytest.mark.parametrize("source", ["npz", "idx"])
def test_bench(source, tmp_path, images, expected, capsys):
    labels = np.asarray(expected["labels"])
    if source == "npz":
        np.savez(tmp_path / "d.npz", x=images, y=labels)
        args = ["--npz", str(tmp_path / "d.npz")]
    else:
        # IDX holds 28x28 grey images: bench fits them (pads back to 32x32x3).
        _write_idx(tmp_path / "i.gz", images[:, 2:30, 2:30, 0])
        _write_idx(tmp_path / "l.gz", labels.astype(np.uint8))
        args = ["--idx", str(tmp_path / "i.gz"), str(tmp_path / "l.gz")]
    report_path = tmp_path / "bench.json"
    code = cli.main(
        ["bench", str(EXPORT), *args, "--json", str(report_path), "--warmup", "2"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "cascade: accuracy" in out and "speedup" in out
    report = json.loads(report_path.read_text())
    cases = expected["variants"]["int8"]["cases"]
    predicted = np.asarray([c["label"] for c in cases])
    assert report["num_samples"] == len(images)
    assert report["cascade"]["accuracy"] == pytest.approx(np.mean(predicted == labels))
    assert report["cascade"]["exit_shares"] == pytest.approx([4 / 12] * 3)
    assert report["cascade"]["stage_runs"] == [12, 8, 4]
    assert len(report["exit_models"]) == 3
    assert report["full"]["mean_latency_ms"] > 0
    assert report["speedup_vs_full"] > 0
    assert report["naive_exit_models"]["exit_shares"] == pytest.approx([4 / 12] * 3)


def test_bench_bad_input(tmp_path, capsys):
    np.savez(tmp_path / "d.npz", images=np.zeros((3, 32, 32, 3)), labels=[0, 1])
    assert cli.main(["bench", str(EXPORT), "--npz", str(tmp_path / "d.npz")]) == 2
    assert "one label per image" in capsys.readouterr().err
    np.savez(tmp_path / "e.npz", a=np.zeros(3))
    assert cli.main(["bench", str(EXPORT), "--npz", str(tmp_path / "e.npz")]) == 2
    assert "'x'" in capsys.readouterr().err
