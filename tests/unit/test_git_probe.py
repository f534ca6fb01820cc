"""What the django role reads of a git commit on the host before it changes anything
(__django_git_probe_script in roles/django/vars/main.yml), run with sh against local
repositories: the commit a branch, an annotated tag or a commit id names, read from the role's
clone when it has that commit and from a shallow fetch otherwise; a version or repository that
cannot be fetched; a host without git."""

import functools
import http.server
import os
import pathlib
import shutil
import subprocess
import threading

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = yaml.safe_load((ROOT / "roles" / "django" / "vars" / "main.yml").read_text(encoding="utf-8"))[
    "__django_git_probe_script"]
PYPROJECT = '[project]\nname = "shop"\nversion = "1"\nrequires-python = ">=3.12"\n'

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(*args, cwd):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.test",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.test")
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A repository whose main holds requirements.txt and a pyproject.toml asking for >=3.12, with
    an annotated tag v1 on it, and a branch "bare" without the requirements file."""
    work = tmp_path_factory.mktemp("work")
    git("init", "-q", "-b", "main", cwd=work)
    (work / "requirements.txt").write_text("Django\n")
    (work / "pyproject.toml").write_text(PYPROJECT)
    git("add", ".", cwd=work)
    git("commit", "-qm", "one", cwd=work)
    git("tag", "-a", "v1", "-m", "v1", cwd=work)
    git("checkout", "-q", "-b", "bare", cwd=work)
    git("rm", "-q", "requirements.txt", cwd=work)
    git("commit", "-qm", "two", cwd=work)
    git("checkout", "-q", "main", cwd=work)
    return work


def probe(repo_url, version, clone, requirements="requirements.txt", path=None):
    env = dict(os.environ, PATH=path) if path is not None else None
    result = subprocess.run(["sh", "-c", SCRIPT, "probe", repo_url, version, str(clone), requirements],
                            env=env, check=True, capture_output=True, text=True)
    return result.stdout.splitlines()


@pytest.mark.parametrize("version", ["main", "v1", "commit"])
def test_the_commit_is_read_by_its_branch_tag_or_id(repo, tmp_path, version):
    version = git("rev-parse", "main", cwd=repo) if version == "commit" else version
    assert probe(f"file://{repo}", version, tmp_path / "none") == ["requirements yes", "requires_python >=3.12"]


def test_a_commit_without_the_requirements_file(repo, tmp_path):
    assert probe(f"file://{repo}", "bare", tmp_path / "none") == ["requirements no", "requires_python >=3.12"]
    assert probe(f"file://{repo}", "main", tmp_path / "none", "pyproject.toml")[0] == "requirements yes"


def test_the_clone_of_an_earlier_run_answers_without_a_fetch(repo, tmp_path):
    clone = tmp_path / "clone"
    git("clone", "-q", f"file://{repo}", str(clone), cwd=tmp_path)
    out = subprocess.run(["sh", "-xc", SCRIPT, "probe", f"file://{repo}", "main", str(clone), "requirements.txt"],
                         check=True, capture_output=True, text=True)
    assert out.stdout.splitlines() == ["requirements yes", "requires_python >=3.12"]
    assert f"src={clone}" in out.stderr


def test_a_version_or_repository_that_cannot_be_fetched(repo, tmp_path):
    missing = probe(f"file://{repo}", "nope", tmp_path / "none")
    assert len(missing) == 1 and missing[0].startswith("unreachable ") and "nope" in missing[0]
    gone = probe(f"file://{tmp_path}/gone.git", "main", tmp_path / "none")
    assert len(gone) == 1 and gone[0].startswith("unreachable ")


def test_a_host_without_git(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "mktemp", "rm", "tr", "awk", "sed", "head"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    assert probe("file:///nowhere.git", "main", tmp_path / "none", path=str(bin_dir)) == ["nogit"]


def test_a_server_that_cannot_fetch_shallowly_sends_the_whole_history(repo, tmp_path):
    """git's dumb HTTP (a bare repository behind a plain web server) has no shallow fetch."""
    bare = tmp_path / "served" / "shop.git"
    git("clone", "-q", "--bare", str(repo), str(bare), cwd=tmp_path)
    git("update-server-info", cwd=bare)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "served"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/shop.git"
        assert probe(url, "main", tmp_path / "none") == ["requirements yes", "requires_python >=3.12"]
        assert probe(url, "bare", tmp_path / "none") == ["requirements no", "requires_python >=3.12"]
    finally:
        server.shutdown()
