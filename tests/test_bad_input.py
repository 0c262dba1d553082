"""Every bad-input case of the foundation, through the real `nas` command: exit 2, one line, no traceback."""

import pytest
from conftest import ROOT

GOOD = (ROOT / "examples/densenet_small.yaml").read_text()


def assert_one_line_error(out, *needles):
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


CASES = {
    "not yaml": ("blocks: [unclosed", "not valid YAML"),
    "empty": ("", "empty"),
    "a list": ("- 1\n- 2\n", "mapping"),
    "wrong format tag": (GOOD.replace("nas-architecture/1", "nas-architecture/9"), "format"),
    "short shortcut string": (GOOD.replace('"111111"', '"11111"'), "blocks[0].shortcuts", "needs 6"),
    "other characters": (GOOD.replace('"000000"', '"0000x0"'), "blocks[1].shortcuts"),
    "layers zero": (
        GOOD.replace(
            '{layers: 3, growth_rate: 12, shortcuts: "111111"}', '{layers: 0, growth_rate: 12, shortcuts: ""}'
        ),
        "blocks[0].layers",
    ),
    "growth zero": (
        GOOD.replace('growth_rate: 12, shortcuts: "000000"', 'growth_rate: 0, shortcuts: "000000"'),
        "blocks[1].growth_rate",
    ),
    "compression zero": (GOOD.replace("compression: 0.5", "compression: 0"), "compression"),
    "compression above one": (GOOD.replace("compression: 0.5", "compression: 1.5"), "compression"),
    "unknown key": (GOOD + "extra: 1\n", "extra"),
    "python tag": ("!!python/object/apply:os.system ['echo pwned']\n", "not valid YAML"),
    "binary": ("\x00\x01\x02\xff", ""),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_architecture_file_exits_2_with_one_line(nas, tmp_path, name):
    text, *needles = CASES[name]
    path = tmp_path / "arch.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape") if name != "binary" else path.write_bytes(
        b"\x00\x01\x02\xff"
    )
    assert_one_line_error(nas("inspect", str(path)), *needles)


def test_missing_file(nas, tmp_path):
    assert_one_line_error(nas("inspect", str(tmp_path / "nope.yaml")), "not found")


def test_directory_instead_of_file(nas, tmp_path):
    assert_one_line_error(nas("inspect", str(tmp_path)), "not a file")


def test_unknown_flag_is_one_line(nas):
    assert_one_line_error(nas("inspect", "x.yaml", "--bogus"), "--bogus")


def test_bad_search_space(nas, tmp_path):
    text = (ROOT / "encodings/densenet_small.yaml").read_text().replace("[1, 6]", "[6, 1]", 1)
    (tmp_path / "s.yaml").write_text(text)
    assert_one_line_error(nas("inspect", str(tmp_path / "s.yaml")), "blocks[0].layers", "above")


@pytest.mark.parametrize("command", ["export", "report"])
def test_a_file_given_as_a_run_directory_is_called_a_file(nas, tmp_path, command):
    path = tmp_path / "evaluations.jsonl"
    path.write_text("{}\n")
    assert_one_line_error(nas(command, str(path)), str(path), "is a file, not a run directory")
    assert_one_line_error(nas(command, str(tmp_path / "absent")), "(no such folder)")
