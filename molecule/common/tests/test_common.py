"""Behaviour of the common role on a converged host."""

import pathlib

from helpers.stack import journal, playbook


def test_base_packages_are_usable(host):
    # curl fetches, git commits and clones (what deploys do), not just `--version`.
    assert host.check_output("curl -sS file:///etc/hostname") == host.check_output("cat /etc/hostname")
    host.check_output(
        "rm -rf /tmp/git-probe /tmp/git-probe-clone && git init -q -b main /tmp/git-probe && "
        "echo probe > /tmp/git-probe/f && git -C /tmp/git-probe add f && "
        "git -C /tmp/git-probe -c user.name=t -c user.email=t@example.test commit -q -m probe && "
        "git clone -q /tmp/git-probe /tmp/git-probe-clone")
    assert host.check_output("cat /tmp/git-probe-clone/f") == "probe"
    # acl: setfacl works, which become_user to an unprivileged user relies on
    host.check_output("touch /tmp/acl-probe && setfacl -m u:demo:r /tmp/acl-probe")
    assert "user:demo:r--" in host.check_output("getfacl -p /tmp/acl-probe")


def test_timezone_is_applied(host):
    tz = host.run("timedatectl show -p Timezone --value")
    if tz.rc == 0:  # timedated needs D-Bus, which these containers do not run
        assert tz.stdout.strip() == "Europe/Berlin"
    assert host.check_output("readlink /etc/localtime") == "/usr/share/zoneinfo/Europe/Berlin"
    assert host.check_output("date +%Z") in ("CET", "CEST")
    assert host.check_output("python3 -c 'import time; print(time.tzname[0])'") == "CET"


def test_locale_is_generated_and_default(host):
    assert "en_US.utf8" in host.check_output("locale -a").split()
    host.check_output("python3 -c 'import locale; locale.setlocale(locale.LC_ALL, \"en_US.UTF-8\")'")
    assert "LANG=en_US.UTF-8" in host.file("/etc/default/locale").content_string.splitlines()
    # pam_env reads /etc/default/locale for su sessions
    assert host.check_output("env -u LANG su -s /bin/sh demo -c 'echo $LANG'") == "en_US.UTF-8"


def test_app_user_is_a_system_account(host):
    user = host.user("demo")
    assert user.exists
    assert user.uid < 1000 and user.gid < 1000
    assert user.group == "demo"
    assert user.shell == "/usr/sbin/nologin"
    assert user.home == "/srv/demo"
    home = host.file("/srv/demo")
    assert home.is_directory
    assert (home.user, home.group, home.mode) == ("demo", "demo", 0o755)


def test_app_user_runs_commands_but_cannot_log_in(host):
    assert host.run("sudo -u demo true").rc == 0
    ident = host.check_output("su -s /bin/sh demo -c id")
    assert "(demo)" in ident.split()[1]  # gid=NNN(demo)
    login = host.run("su demo -c true")
    assert login.rc != 0
    assert "not available" in login.stdout + login.stderr


def test_sysctl_drop_in_holds_the_values(host):
    lines = host.file("/etc/sysctl.d/60-djangoprod.conf").content_string.splitlines()
    for line in ("net.core.somaxconn = 4096", "net.ipv4.tcp_max_syn_backlog = 4096",
                 "vm.swappiness = 10", "vm.overcommit_memory = 1",
                 "net.ipv4.ip_local_port_range = 10240 65000"):
        assert line in lines
    # systemd-sysctl reads the drop-in from its own search path
    assert "vm.swappiness = 10" in host.check_output("/usr/lib/systemd/systemd-sysctl --cat-config")


def test_systemd_sysctl_skipped_in_container_not_failed(host):
    failed = host.run("systemctl is-failed systemd-sysctl.service").stdout.strip()
    assert failed != "failed", journal(host, "systemd-sysctl.service")
    if host.run("test -w /proc/sys/vm/swappiness").rc == 0:  # a VM or bare metal applies it
        assert host.check_output("sysctl -n vm.swappiness") == "10"
    else:  # a container: ConditionPathIsReadWrite=/proc/sys skips the unit
        result = host.check_output("systemctl show -p ConditionResult --value systemd-sysctl.service")
        assert result == "no", journal(host, "systemd-sysctl.service")


def test_journald_keeps_logs_persistently_with_a_cap(host):
    config = host.check_output("systemd-analyze cat-config systemd/journald.conf")
    assert "Storage=persistent" in config and "SystemMaxUse=256M" in config
    assert host.service("systemd-journald").is_running, journal(host, "systemd-journald")
    host.check_output("systemd-cat -t common-probe echo persisted")
    host.run("journalctl --flush")
    out = host.check_output("journalctl -D /var/log/journal -t common-probe --no-pager -o cat")
    assert "persisted" in out


def test_a_rerun_puts_back_what_was_changed_by_hand(host, tmp_path):
    """The role's probe lets a run skip what is already as wanted; what was changed by hand is
    not, and the next converge puts each of them back (and the one after changes nothing)."""
    host.check_output(
        "ln -sfn /usr/share/zoneinfo/Asia/Tokyo /etc/localtime && usermod -s /bin/bash -c changed demo "
        "&& chmod 0700 /srv/demo && chown root /srv/demo && echo LANG=C > /etc/default/locale "
        "&& echo '# changed' >> /etc/sysctl.d/60-djangoprod.conf "
        "&& echo '# changed' >> /etc/systemd/journald.conf.d/60-djangoprod.conf")
    converge = str(pathlib.Path(__file__).parents[1] / "converge.yml")
    rc, out, changed = playbook(tmp_path, converge)
    assert rc == 0 and changed["common"] >= 5, (changed, out[-3000:])
    assert host.check_output("readlink /etc/localtime") == "/usr/share/zoneinfo/Europe/Berlin"
    user = host.user("demo")
    assert (user.shell, user.gecos) == ("/usr/sbin/nologin", "demo application")
    home = host.file("/srv/demo")
    assert (home.user, home.group, home.mode) == ("demo", "demo", 0o755)
    assert "LANG=en_US.UTF-8" in host.file("/etc/default/locale").content_string.splitlines()
    for path in ("/etc/sysctl.d/60-djangoprod.conf", "/etc/systemd/journald.conf.d/60-djangoprod.conf"):
        assert "# changed" not in host.file(path).content_string
    # Each handler ran for its own file: journald restarted after its drop-in was put back.
    assert "Restart journald" in out and "Apply kernel settings" in out, out[-3000:]
    rc, out, changed = playbook(tmp_path, converge)
    assert rc == 0 and changed["common"] == 0, (changed, out[-3000:])


def test_a_kernel_setting_the_host_lacks_is_refused_before_the_file_is_written(host, tmp_path):
    """systemd-sysctl would skip it with a line in the journal, and the setting would silently do
    nothing: the candidate file is refused, naming the key, and the live one stays."""
    before = host.file("/etc/sysctl.d/60-djangoprod.conf").sha256sum
    converge = str(pathlib.Path(__file__).parents[1] / "converge.yml")
    rc, out, _changed = playbook(tmp_path, converge, {"common_sysctl_extra": {"net.core.no_such_setting": 1}})
    assert rc != 0, out[-3000:]
    assert "the kernel of this host has no setting net.core.no_such_setting" in " ".join(out.split()), out[-3000:]
    assert host.file("/etc/sysctl.d/60-djangoprod.conf").sha256sum == before
