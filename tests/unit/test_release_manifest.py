"""What the django role reads from a release archive before it changes a host (the
release_manifest lookup) and how it judges the host's Python against it (the python_fits
filter)."""

import hashlib
import io
import pathlib
import tarfile

import pytest
import release_manifest
from ansible.errors import AnsibleFilterError, AnsibleLookupError

import python


def archive(tmp_path, files, prefix="./"):
    path = tmp_path / "release.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


PYPROJECT = '[project]\nname = "shop"\nversion = "1"\nrequires-python = ">=3.12"\n'


def test_requirements_file_and_requires_python(tmp_path):
    path = archive(tmp_path, {"requirements.txt": "Django\n", "pyproject.toml": PYPROJECT})
    assert release_manifest.manifest(path) == {
        "requirements_found": True, "pyproject_found": True, "requires_python": ">=3.12"}


def test_the_checksum_names_the_archive(tmp_path):
    path = archive(tmp_path, {"requirements.txt": "Django\n"})
    expected = hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()
    assert release_manifest.manifest(path, checksum=True)["sha256"] == expected
    assert "sha256" not in release_manifest.manifest(path)


def test_a_missing_requirements_file_and_no_pyproject(tmp_path):
    path = archive(tmp_path, {"manage.py": ""})
    assert release_manifest.manifest(path) == {
        "requirements_found": False, "pyproject_found": False, "requires_python": ""}


def test_names_are_read_as_strip_components_leaves_them(tmp_path):
    path = archive(tmp_path, {"requirements/prod.txt": "", "pyproject.toml": PYPROJECT}, prefix="shop-1.0/")
    assert not release_manifest.manifest(path, 0, "requirements/prod.txt")["requirements_found"]
    found = release_manifest.manifest(path, 1, "requirements/prod.txt")
    assert found["requirements_found"] and found["requires_python"] == ">=3.12"


def test_the_pyproject_of_a_subdirectory_is_not_the_release_s(tmp_path):
    path = archive(tmp_path, {"requirements.txt": "", "vendor/lib/pyproject.toml": PYPROJECT})
    assert release_manifest.manifest(path)["requires_python"] == ""


def test_a_pyproject_without_requires_python(tmp_path):
    path = archive(tmp_path, {"requirements.txt": "", "pyproject.toml": '[project]\nname = "shop"\n'})
    assert release_manifest.manifest(path)["requires_python"] == ""


def test_an_archive_that_cannot_be_read(tmp_path):
    path = tmp_path / "broken.tar.gz"
    path.write_bytes(b"not an archive")
    with pytest.raises(AnsibleLookupError, match="cannot read the release archive"):
        release_manifest.manifest(str(path))


@pytest.mark.parametrize(("version", "specifier", "fits"), [
    ("3.13.5", ">=3.12", True),
    ("3.11.2", ">=3.12", False),
    ("3.11.2", ">=3.10,<3.12", True),
    ("3.13.5", "~=3.12", True),
    ("3.13.5", "==3.12.*", False),
    ("3.11.2", "", True),
])
def test_python_fits(version, specifier, fits):
    assert python.python_fits(version, specifier) is fits


def test_python_fits_names_a_bad_specifier():
    with pytest.raises(AnsibleFilterError, match="not a version specifier"):
        python.python_fits("3.13.5", ">= three")
