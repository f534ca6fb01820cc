"""The static role: each web host serves a complete copy of the source's live release; --check
previews a new release and changes nothing; a new release is copied once and switched with the
link, and the newest static_keep copies stay; an interrupted copy starts over."""

import pathlib

import pytest

from helpers.stack import file_digests, fleet, playbook

CONVERGE = str(pathlib.Path(__file__).resolve().parents[1] / "converge.yml")
WEB = ("static-web1", "static-web2")


@pytest.fixture(scope="module")
def hosts():
    return fleet()


def release(source, name):
    """A new live release on the source host: a changed file, a new one, one gone."""
    source.run_test(f"""set -e
        cp -a /srv/demo/releases/r1 /srv/demo/releases/{name}
        rm -f /srv/demo/releases/{name}/.djangoprod-static.tar.gz
        printf 'body {{ color: #{name}; }}\\n' > /srv/demo/releases/{name}/staticfiles/admin/css/base.css
        printf '{name}\\n' > /srv/demo/releases/{name}/staticfiles/{name}.txt
        rm /srv/demo/releases/{name}/staticfiles/logo.bin
        ln -sfn /srv/demo/releases/{name} /srv/demo/current.tmp
        mv -T /srv/demo/current.tmp /srv/demo/current""")


def converge(tmp_path, check=False):
    rc, out, changed = playbook(tmp_path, CONVERGE, check=check)
    assert rc == 0, out[-4000:]
    return changed


def listing(host):
    return host.check_output("ls -la --time-style=full-iso /srv/demo/static")


def test_each_web_host_serves_a_copy_of_the_live_release(hosts):
    collected = file_digests(hosts["static-source"], "/srv/demo/releases/r1/staticfiles")
    assert len(collected) == 3, collected
    for name in WEB:
        web = hosts[name]
        assert web.file("/srv/demo/static/current").linked_to == "/srv/demo/static/r1"
        assert file_digests(web, "/srv/demo/static/current") == collected, name
        assert web.file("/srv/demo/static/.r1.complete").content_string == "r1\n"
        copy = web.file("/srv/demo/static/r1/admin/css/base.css")
        assert (copy.user, copy.group, copy.mode) == ("root", "root", 0o644), name
        assert web.file("/srv/demo/static/r1").mode == 0o755


def test_check_mode_previews_a_new_release_and_changes_nothing(hosts, tmp_path):
    release(hosts["static-source"], "r2")
    before = {name: listing(hosts[name]) for name in WEB}
    changed = converge(tmp_path, check=True)
    assert all(changed[name] > 0 for name in WEB), changed
    assert {name: listing(hosts[name]) for name in WEB} == before
    assert not hosts["static-source"].file("/srv/demo/releases/r2/.djangoprod-static.tar.gz").exists


def test_a_new_release_is_copied_once_and_switched(hosts, tmp_path):
    converge(tmp_path)
    collected = file_digests(hosts["static-source"], "/srv/demo/releases/r2/staticfiles")
    for name in WEB:
        web = hosts[name]
        assert web.file("/srv/demo/static/current").linked_to == "/srv/demo/static/r2"
        assert file_digests(web, "/srv/demo/static/current") == collected, name
        # The previous copy stays for pages rendered before an app host switched.
        assert web.file("/srv/demo/static/r1/logo.bin").exists
    assert converge(tmp_path) == {name: 0 for name in WEB}
    assert converge(tmp_path, check=True) == {name: 0 for name in WEB}


def test_the_newest_copies_stay(hosts, tmp_path):
    release(hosts["static-source"], "r3")
    converge(tmp_path)
    for name in WEB:
        names = hosts[name].check_output("ls -A /srv/demo/static").split()
        # static_keep: 2 in converge.yml: r3 (served) and r2; r1 and its marker are gone.
        assert sorted(names) == [".r2.complete", ".r3.complete", "current", "r2", "r3"], (name, names)
        assert hosts[name].file("/srv/demo/static/current").linked_to == "/srv/demo/static/r3"


def test_an_interrupted_copy_starts_over(hosts, tmp_path):
    web = hosts[WEB[0]]
    # A copy cut short: files missing, no marker.
    web.run_test("rm -f /srv/demo/static/.r3.complete /srv/demo/static/r3/r3.txt")
    changed = converge(tmp_path)
    assert changed[WEB[0]] > 0 and changed[WEB[1]] == 0, changed
    assert web.file("/srv/demo/static/r3/r3.txt").content_string == "r3\n"
    assert web.file("/srv/demo/static/.r3.complete").exists


def test_a_source_without_a_release_fails_naming_it(hosts, tmp_path):
    source = hosts["static-source"]
    source.run_test("mv -T /srv/demo/current /srv/demo/current.away")
    try:
        rc, out, changed = playbook(tmp_path, CONVERGE)
    finally:
        source.run_test("mv -T /srv/demo/current.away /srv/demo/current")
    assert rc != 0 and "has no release at" in out and "static_source_host" in out, out[-3000:]
    assert changed == {name: 0 for name in WEB}, changed
