"""A new release's virtualenv builds as a background job while PostgreSQL and Redis are set up
(playbooks/site.yml enters the django role in two halves): a failure of that job stops the run
where the application's play waits for it, with pip's own message, before the release goes live."""

import io
import os
import pathlib
import tarfile

from helpers.stack import Site, playbook

HOME = "/srv/demo"
MISSING = "djangoprod-no-such-distribution"
WAIT = "TASK [djangoprod.stack.django : Wait for the requirements to be installed]"


LEFT_BEHIND = ("releases", "venvs", ".ansible_async")


def _entries(host, directory):
    return set(host.check_output(f"ls -1A {HOME}/{directory} 2>/dev/null || true").split())


def _release_with_a_missing_requirement(path):
    """The demo's archive with a requirements file pip cannot satisfy, without asking an index."""
    demo = pathlib.Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / ".cache" / "demo-app.tar.gz"
    requirements = f"--no-index\n{MISSING}==1.0\n".encode()
    with tarfile.open(demo) as source, tarfile.open(path, "w:gz") as broken:
        for member in source:
            if member.name.lstrip("./") == "requirements.txt":
                member.size = len(requirements)
                broken.addfile(member, io.BytesIO(requirements))
            else:
                data = source.extractfile(member) if member.isfile() else None
                broken.addfile(member, data)


def test_a_virtualenv_that_fails_in_the_background_stops_the_release_before_it_goes_live(host, tmp_path):
    archive = tmp_path / "missing-requirement.tar.gz"
    _release_with_a_missing_requirement(archive)
    site = Site(host, "demo.example.test")
    assert site.request("GET", "/ready/")[0] == 200
    listing = f"ls -1 {HOME}/releases {HOME}/venvs"
    before = {d: _entries(host, d) for d in LEFT_BEHIND}
    venvs = before["venvs"]
    # The converge's own background install left no status file behind.
    assert not before[".ansible_async"], before
    current = host.file(f"{HOME}/current").linked_to
    env = host.check_output("sha256sum /etc/demo/env")

    rc, out, _changed = playbook(tmp_path, "small.yml", {"stack_app_archive": str(archive)})
    try:
        assert rc != 0, out[-3000:]
        # The job was started in the early play and failed at the wait, after PostgreSQL and Redis.
        started = out.index("TASK [djangoprod.stack.django : Install the requirements into the virtualenv]")
        assert started < out.index("PLAY [PostgreSQL]") < out.index("PLAY [Redis]") < out.index(WAIT), out[-3000:]
        # The run stopped at the wait: the last task it reached (the failure itself, with pip's
        # message, is on stderr, after the recap).
        log = out[:out.index("PLAY RECAP")]
        assert log.rindex("TASK [") == log.rindex(WAIT), log[-3000:]
        assert "fatal: [" in out and f"No matching distribution found for {MISSING}" in out, out[-3000:]
        assert "Apply database migrations" not in out and "PLAY [Web]" not in out, out[-3000:]
        # Nothing went live: the same release, environment and answers.
        assert host.file(f"{HOME}/current").linked_to == current
        assert host.check_output("sha256sum /etc/demo/env") == env
        assert site.request("GET", "/ready/")[0] == 200
        # The failed virtualenv is not marked complete: the next run with it builds it again.
        new_venvs = set(host.check_output(f"ls -1 {HOME}/venvs").split()) - venvs
        assert len(new_venvs) == 1, host.check_output(listing)
        assert not host.file(f"{HOME}/venvs/{new_venvs.pop()}/.djangoprod-requirements.txt").exists
    finally:
        # The host as it was for the tests that follow: the unpacked release, its virtualenv and
        # the failed job's status file (kept, with pip's output, as a job's record) go.
        for directory in LEFT_BEHIND:
            for name in _entries(host, directory) - before[directory]:
                host.run_expect([0], f"rm -rf {HOME}/{directory}/{name}")
