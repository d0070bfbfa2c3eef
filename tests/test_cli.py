"""The flowrec command line: exit codes, messages and the printed table."""

import pytest

from flowrec.cli import main

pytest.importorskip("surprise")


def test_help_exits_zero(capsys):
    assert main(["compare", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--epochs N" in text
    assert "full-batch optimizer steps" in text
    assert "surprise-svdpp" in text  # the preset list


def test_no_command_is_usage_error(capsys):
    assert main([]) == 2
    assert "required" in capsys.readouterr().err


def test_compare_prints_table_and_files(tmp_path, capsys):
    code = main(
        ["compare", "--models", "adam,surprise-baseline", "--epochs", "5", "--output", str(tmp_path),
         "--quiet"]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "| model | optimizer | RMSE |" in captured.out
    assert "| adam | adam |" in captured.out
    assert f"to {tmp_path}" in captured.out
    assert (tmp_path / "summary.md").is_file()
    assert (tmp_path / "comparison.png").is_file()
    assert captured.err == ""


def test_compare_n_seeds_and_ranking(tmp_path, capsys):
    code = main(
        ["compare", "--models", "surprise-baseline", "--n-seeds", "2", "--ranking", "--k", "5",
         "--output", str(tmp_path), "--quiet"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "seeds 0 1" in out
    assert "| implicit-als |" in out
    assert "NDCG@5" in out


def test_unknown_model_exit_two(capsys):
    assert main(["compare", "--models", "adam,svd", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flowrec: error: unknown model preset 'svd'")
    assert err.count("\n") == 1


def test_missing_data_exit_two(tmp_path, capsys):
    code = main(["compare", "--dataset", "movielens-100k", "--data-home", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert str(tmp_path) in err
    assert err.count("\n") == 2
    assert "point --data-home (or FLOWREC_DATA) at the folder that holds it" in err


def test_threads_option_sets_torch_threads(tmp_path, capsys):
    import torch

    before = torch.get_num_threads()
    try:
        code = main(["compare", "--threads", "1", "--models", "adam", "--epochs", "2",
                     "--output", str(tmp_path), "--quiet"])
        assert code == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_unknown_split_exit_two(capsys):
    assert main(["compare", "--dataset", "movielens-100k", "--split", "u9", "--quiet"]) == 2
    assert "split 'u9' is not available" in capsys.readouterr().err


def test_unknown_dataset_exit_two(capsys):
    assert main(["compare", "--dataset", "netflix"]) == 2
    assert "invalid choice: 'netflix'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [["--epochs", "0"], ["--n-seeds", "x"], ["--seeds", "-1"], ["--validation-fraction", "1"]],
)
def test_invalid_numbers_exit_two(argv, capsys):
    assert main(["compare", *argv]) == 2
    assert "expected a" in capsys.readouterr().err


def test_seeds_and_n_seeds_exclusive(capsys):
    assert main(["compare", "--seeds", "0", "--n-seeds", "2"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_datasets_lists_every_dataset(tmp_path, capsys):
    assert main(["datasets", "--data-home", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("synthetic", "movielens-100k", "movielens-latest-small", "jester-1"):
        assert f"{name}:" in out
    assert "not found" in out
    assert str(tmp_path) in out


def test_datasets_finds_real_files(data_home, capsys):
    assert main(["datasets", "--data-home", str(data_home)]) == 0
    assert f"found {data_home / 'ml-100k'}" in capsys.readouterr().out


def test_closed_stdout_pipe_is_quiet():
    import subprocess
    import sys

    # `head -c 1` exits after one byte, so later writes hit a closed pipe
    command = f"'{sys.executable}' -m flowrec.cli datasets | head -c 1"
    finished = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True,
                              text=True, timeout=120)
    assert "Broken pipe" not in finished.stderr
    assert finished.stderr == ""
