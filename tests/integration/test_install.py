"""make install: PREFIX and DESTDIR honoured, every file in place, the man
pages render without a warning and document every configuration keyword,
and the systemd unit passes systemd-analyze verify."""
import os
import re
import shutil
import stat
import subprocess

import pytest

from conftest import BUILD, ROOT


def make_install(destdir, prefix=None):
    args = ["make", "--no-print-directory", "-C", ROOT, "install",
            "DESTDIR=" + str(destdir)]
    if prefix is not None:
        args.append("PREFIX=" + prefix)
    if os.path.basename(BUILD.rstrip("/")) == "san":
        args.append("SANITIZE=1")
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def conf_keywords():
    """The keywords of store/conf.c's table."""
    with open(os.path.join(ROOT, "store", "conf.c")) as f:
        src = f.read()
    table = src[src.index("conf_keywords[] = {"):]
    table = table[:table.index("};")]
    kws = re.findall(r'(?:STR|INT|BOOL|CHECKED)\("(\w+)"|\{ "(\w+)", K_', table)
    kws = [a or b for a, b in kws]
    assert len(kws) > 30
    return kws


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    dest = tmp_path_factory.mktemp("destdir")
    make_install(dest, "/opt/assetd")
    return dest


EXPECTED = {
    "opt/assetd/sbin/assetd": 0o755,
    "opt/assetd/bin/assetctl": 0o755,
    "opt/assetd/share/man/man8/assetd.8": 0o644,
    "opt/assetd/share/man/man8/assetctl.8": 0o644,
    "opt/assetd/share/man/man5/assetd.conf.5": 0o644,
    "etc/assetd/assetd.conf.sample": 0o644,
    "lib/systemd/system/assetd.service": 0o644,
}


def test_install_puts_every_file_under_destdir_and_prefix(installed):
    for rel, mode in EXPECTED.items():
        path = os.path.join(installed, rel)
        assert os.path.isfile(path), rel
        assert stat.S_IMODE(os.stat(path).st_mode) == mode, rel
    found = set()
    for dirpath, _, files in os.walk(installed):
        for fn in files:
            found.add(os.path.relpath(os.path.join(dirpath, fn), installed))
    assert found == set(EXPECTED)


def test_installed_programs_run(installed):
    with open(os.path.join(ROOT, "VERSION")) as f:
        version = f.read().strip()
    r = subprocess.run([os.path.join(installed, "opt/assetd/sbin/assetd"),
                        "-V"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    assert r.stdout.strip() == "assetd " + version
    sample = os.path.join(installed, "etc/assetd/assetd.conf.sample")
    r = subprocess.run([os.path.join(installed, "opt/assetd/sbin/assetd"),
                        "-t", "-f", sample], capture_output=True, text=True,
                       timeout=30, cwd=str(installed))
    assert r.returncode == 0, r.stderr


def test_unit_names_the_installed_daemon(installed):
    with open(os.path.join(installed, "lib/systemd/system/assetd.service")) as f:
        unit = f.read()
    assert "@SBINDIR@" not in unit
    assert re.search(r"^ExecStart=/opt/assetd/sbin/assetd$", unit, re.M)
    for directive in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID",
                      "ProtectSystem=strict", "NoNewPrivileges=yes",
                      "PrivateTmp=yes", "User=assetd"):
        assert re.search("^" + re.escape(directive) + "$", unit, re.M), \
            directive


def test_unit_passes_systemd_analyze_verify(installed, tmp_path):
    # verify checks that ExecStart exists and that the Documentation= man
    # pages open: point both at the DESTDIR copy.
    src = os.path.join(installed, "lib/systemd/system/assetd.service")
    with open(src) as f:
        unit = f.read().replace(
            "ExecStart=/opt/assetd/sbin/assetd",
            "ExecStart=%s/opt/assetd/sbin/assetd" % installed)
    path = tmp_path / "assetd.service"
    path.write_text(unit)
    env = dict(os.environ,
               MANPATH=os.path.join(installed, "opt/assetd/share/man"))
    r = subprocess.run(["systemd-analyze", "verify", str(path)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "assetd.service" not in r.stdout + r.stderr


@pytest.mark.parametrize("page", ["man8/assetd.8", "man8/assetctl.8",
                                  "man5/assetd.conf.5"])
def test_man_pages_render_without_warnings(installed, page):
    path = os.path.join(installed, "opt/assetd/share/man", page)
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", path],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    assert r.stderr == ""
    r = subprocess.run(["man", "-l", path], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, MANWIDTH="80",
                                            MAN_KEEP_FORMATTING="0"))
    assert r.returncode == 0
    text = re.sub(".\b", "", r.stdout)  # overstrike bold and underline
    assert "NAME" in text and "SYNOPSIS" in text


def test_conf_manual_documents_every_keyword():
    with open(os.path.join(ROOT, "man", "assetd.conf.5")) as f:
        page = f.read()
    documented = set(re.findall(r"^\.BI? (\w+)", page, re.M))
    missing = [k for k in conf_keywords() if k not in documented]
    assert missing == []


def test_default_prefix_is_usr_local(tmp_path):
    make_install(tmp_path)
    assert os.path.isfile(tmp_path / "usr/local/sbin/assetd")
    assert os.path.isfile(tmp_path / "usr/local/share/man/man5/assetd.conf.5")
    assert os.path.isfile(tmp_path / "etc/assetd/assetd.conf.sample")
    shutil.rmtree(tmp_path)
