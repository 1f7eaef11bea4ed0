"""The server's own guards without Ray: its arguments and token, the body types it takes, and what a
server without a token refuses (server/__main__.py, server/wire.py)."""

import sys

import pytest
from conftest import ROOT, source_module

source_module("options")  # `generation` from this checkout, as the server imports it
sys.path.insert(0, str(ROOT))
from server import wire  # noqa: E402
from server.__main__ import build_parser, check_arguments, token_of  # noqa: E402


def arguments(*argv):
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize(("jobs", "fine"), [(1, True), (64, True), (10000, True), (0, False), (10001, False)])
def test_max_jobs_takes_1_to_10000(jobs, fine):
    problem = check_arguments(arguments("--max-jobs", str(jobs)))
    assert (problem == "") == fine and (fine or "1 to 10000" in problem)


def test_defaults_are_64_jobs_and_an_hour_per_job():
    args = arguments()
    assert (args.max_jobs, args.job_timeout) == (64, 3600.0)
    assert "above 0" in check_arguments(arguments("--job-timeout", "0"))


def test_the_token_comes_from_a_file_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("PROMPTSCAPE_SERVER_TOKEN", raising=False)
    (tmp_path / "token").write_text("s3cret-token\n")
    assert token_of(arguments("--token-file", str(tmp_path / "token"))) == "s3cret-token"
    assert token_of(arguments(), {"PROMPTSCAPE_SERVER_TOKEN": "from-env"}) == "from-env"
    assert token_of(arguments("--token", "given")) == "given"  # still works, no longer recommended
    lan = ("--host", "0.0.0.0")
    assert "PROMPTSCAPE_SERVER_TOKEN" in check_arguments(arguments(*lan))
    assert check_arguments(arguments(*lan, "--token-file", str(tmp_path / "token"))) == ""
    (tmp_path / "empty").write_text("\n")
    assert "is empty" in check_arguments(arguments(*lan, "--token-file", str(tmp_path / "empty")))
    assert "No such file" in check_arguments(arguments("--token-file", str(tmp_path / "missing")))


@pytest.mark.parametrize(
    ("given", "expected", "fine"),
    [("application/json", "application/json", True),
     ("application/json; charset=utf-8", "application/json", True),
     ("text/plain", "application/json", False), ("", "application/json", False),
     ("image/png", "image/png", True), ("application/x-www-form-urlencoded", "image/png", False)],
)  # fmt: skip
def test_bodies_must_say_their_type(given, expected, fine):
    problem = wire.wrong_type({"content-type": given} if given else {}, expected)
    assert (problem == "") == fine and (fine or f"Content-Type: {expected}" in problem)


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765", "127.0.0.1", "LOCALHOST"])
def test_a_server_without_a_token_answers_its_own_computer(host):
    assert wire.tokenless_refusal({"host": host}) is None


@pytest.mark.parametrize(
    "host", ["evil.example:8765", "192.168.1.5:8765", "", "127.0.0.1.evil.example", "[::1"]
)
def test_a_server_without_a_token_refuses_other_host_names(host):
    status, words = wire.tokenless_refusal({"host": host})
    assert status == 421 and "no token" in words and "127.0.0.1 or localhost" in words


def test_a_server_without_a_token_refuses_web_pages():
    status, words = wire.tokenless_refusal({"host": "127.0.0.1:8765", "origin": "https://evil.example"})
    assert status == 403 and "web pages" in words
