"""Writing a turn into a seed-004 inbox folder: ``.asc`` before ``.org``, nothing overwritten, nothing half-written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from coordhub.compat import orgfiles
from coordhub.compat.orgfiles import place, place_all

SIG = "-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n"


def turn(n: int = 1, signed: bool = True, **over: Any) -> dict[str, Any]:
    content = (f"#+TITLE: t\n#+CONVERSATION_ID: conv\n#+MESSAGE_TYPE: request\n#+SEQUENCE: {n}\n"
               f"#+TIMESTAMP: 2026-04-27T09:10:15Z\n#+PROTOCOL_VERSION: 5\n\nbody {n}\n")
    return {"id": n, "file_name": f"20260427T091015Z-from-career-conv-{n}.org", "content": content,
            "signature": SIG.replace("abc", f"abc{n}") if signed else None, "created_at": "2026-04-27T09:10:15Z",
            **over}


def visible(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_a_signed_turn_becomes_its_org_and_asc_with_the_exact_bytes(tmp_path: Path) -> None:
    t = turn()
    placed = place(tmp_path / "inbox", t)
    assert placed == orgfiles.Placed(t["file_name"], True, False)
    org = tmp_path / "inbox" / t["file_name"]
    assert org.read_bytes() == t["content"].encode()
    assert (tmp_path / "inbox" / (t["file_name"] + ".asc")).read_bytes() == t["signature"].encode()
    assert visible(tmp_path / "inbox") == [t["file_name"], t["file_name"] + ".asc"]  # no .tmp. left behind
    assert org.stat().st_mtime == 1777281015.0  # the hub's arrival time, which seed 004's status reads as age


def test_the_asc_is_in_place_before_the_org_appears(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every final name is made by one link(2); when the .org's is made, its complete .asc is already there."""
    seen: list[str] = []
    real_link = os.link

    def link(src: Any, dst: Any, **kw: Any) -> None:
        dst = Path(dst)
        assert Path(src).name.startswith(".tmp."), "final names come only from complete .tmp. files"
        if dst.suffix == ".org":
            asc = dst.with_name(dst.name + ".asc")
            assert asc.read_text() == t["signature"], "a .org became visible without its complete .asc"
        seen.append(dst.name)
        real_link(src, dst, **kw)

    t = turn()
    monkeypatch.setattr(orgfiles.os, "link", link)
    place(tmp_path, t)
    assert seen == [t["file_name"] + ".asc", t["file_name"]]


def test_a_batch_links_every_asc_before_any_org(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    turns = [turn(n, signed=n != 2) for n in range(1, 6)]
    order: list[str] = []
    real_link, real_fsync = os.link, os.fsync

    def link(src: Any, dst: Any, **kw: Any) -> None:
        dst = Path(dst)
        assert Path(src).name.startswith(".tmp.")
        signed = next(t for t in turns if t["file_name"] == dst.name.removesuffix(".asc"))["signature"]
        if dst.suffix == ".org" and signed:
            assert dst.with_name(dst.name + ".asc").read_text() == signed
        order.append(dst.suffix)
        real_link(src, dst, **kw)

    def fsync(fd: int) -> None:
        order.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync")
        real_fsync(fd)

    monkeypatch.setattr(orgfiles.os, "link", link)
    monkeypatch.setattr(orgfiles.os, "fsync", fsync)
    placed = place_all([(tmp_path, t) for t in turns])
    assert [p.name for p in placed] == [t["file_name"] for t in turns] and all(p.written for p in placed)
    links = [o for o in order if o in (".asc", ".org")]
    assert links == [".asc"] * 4 + [".org"] * 5
    # every file's data is fsynced before the first link; the folder after the .asc links and after the .org links
    assert order[:9] == ["fsync"] * 9 and order[9:] == [".asc"] * 4 + ["fsync-dir"] + [".org"] * 5 + ["fsync-dir"]
    for t in turns:
        assert (tmp_path / t["file_name"]).read_bytes() == t["content"].encode()
    assert not [n for n in visible(tmp_path) if n.startswith(".tmp.")]


def test_a_batch_gives_two_turns_wanting_one_name_two_names(tmp_path: Path) -> None:
    a, b = turn(1), turn(2, file_name=turn(1)["file_name"])
    placed = place_all([(tmp_path, a), (tmp_path, b)])
    assert [p.name for p in placed] == [a["file_name"], a["file_name"].removesuffix(".org") + "-t2.org"]
    assert (tmp_path / placed[1].name).read_bytes() == b["content"].encode()
    assert [p.written for p in place_all([(tmp_path, a), (tmp_path, b)])] == [False, False]


def test_a_batch_finishes_half_written_pairs_and_leaves_identical_ones(tmp_path: Path) -> None:
    done, half, fresh = turn(1), turn(2), turn(3)
    place(tmp_path, done)
    (tmp_path / (half["file_name"] + ".asc")).write_text(half["signature"])  # an interrupted earlier run
    placed = place_all([(tmp_path, done), (tmp_path, half), (tmp_path, fresh)])
    assert [(p.written, p.renamed) for p in placed] == [(False, False), (True, False), (True, False)]
    assert (tmp_path / half["file_name"]).read_bytes() == half["content"].encode()


def test_a_batch_on_a_filesystem_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: Any, dst: Any, **kw: Any) -> None:
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(orgfiles.os, "link", no_links)
    turns = [turn(1), turn(2, signed=False)]
    assert all(p.written for p in place_all([(tmp_path, t) for t in turns]))
    assert visible(tmp_path) == sorted([turns[0]["file_name"], turns[0]["file_name"] + ".asc", turns[1]["file_name"]])


def test_a_crash_between_the_two_files_leaves_no_org_and_the_next_run_completes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t = turn()
    real_link = os.link

    def dies_at_org(src: Any, dst: Any, **kw: Any) -> None:
        if str(dst).endswith(".org"):
            raise OSError(5, "Input/output error")
        real_link(src, dst, **kw)

    monkeypatch.setattr(orgfiles.os, "link", dies_at_org)
    with pytest.raises(OSError):
        place(tmp_path, t)
    assert visible(tmp_path) == [t["file_name"] + ".asc"]  # a signature alone: receivers act only on .org
    monkeypatch.setattr(orgfiles.os, "link", real_link)
    assert place(tmp_path, t).written
    assert visible(tmp_path) == [t["file_name"], t["file_name"] + ".asc"]


def test_an_identical_file_already_there_is_left_alone(tmp_path: Path) -> None:
    t = turn()
    place(tmp_path, t)
    org = tmp_path / t["file_name"]
    before = (org.stat().st_ino, org.stat().st_mtime_ns)
    again = place(tmp_path, t)
    assert again == orgfiles.Placed(t["file_name"], False, False)
    assert (org.stat().st_ino, org.stat().st_mtime_ns) == before


def test_a_different_file_under_the_name_is_never_overwritten(tmp_path: Path) -> None:
    t = turn()
    (tmp_path / t["file_name"]).write_text("someone else's message\n")
    placed = place(tmp_path, t)
    assert placed.written and placed.renamed
    assert placed.name == t["file_name"].removesuffix(".org") + "-t1.org"
    assert (tmp_path / t["file_name"]).read_text() == "someone else's message\n"
    assert (tmp_path / placed.name).read_bytes() == t["content"].encode()
    assert (tmp_path / (placed.name + ".asc")).read_bytes() == t["signature"].encode()
    assert place(tmp_path, t) == orgfiles.Placed(placed.name, False, True)  # found again under the same name


def test_a_different_signature_under_the_name_is_never_overwritten(tmp_path: Path) -> None:
    t = turn()
    (tmp_path / (t["file_name"] + ".asc")).write_text(SIG)
    placed = place(tmp_path, t)
    assert placed.renamed and (tmp_path / (t["file_name"] + ".asc")).read_text() == SIG
    assert not (tmp_path / t["file_name"]).exists()


def test_an_unsigned_turn_never_takes_a_name_whose_asc_exists(tmp_path: Path) -> None:
    """A receiver would verify the unsigned file against a stranger's signature and reject it."""
    t = turn(signed=False)
    (tmp_path / (t["file_name"] + ".asc")).write_text(SIG)
    placed = place(tmp_path, t)
    assert placed.renamed and not (tmp_path / t["file_name"]).exists()
    assert not (tmp_path / (placed.name + ".asc")).exists()


def test_an_org_whose_asc_is_missing_gets_its_asc(tmp_path: Path) -> None:
    t = turn()
    (tmp_path / t["file_name"]).write_bytes(t["content"].encode())
    assert place(tmp_path, t) == orgfiles.Placed(t["file_name"], True, False)
    assert (tmp_path / (t["file_name"] + ".asc")).read_bytes() == t["signature"].encode()


@pytest.mark.parametrize("name", ["../escape.org", ".hidden.org", "sub/dir.org", ".tmp.x.org", "no-suffix", ""])
def test_a_file_name_that_is_not_a_plain_org_name_is_replaced(tmp_path: Path, name: str) -> None:
    placed = place(tmp_path / "in", turn(7, file_name=name))
    assert placed.name == "turn-7.org"
    assert visible(tmp_path) == ["in"] and visible(tmp_path / "in") == ["turn-7.org", "turn-7.org.asc"]


def test_without_hard_links_the_file_still_lands_complete_and_unique(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: Any, dst: Any, **kw: Any) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(orgfiles.os, "link", no_links)
    t = turn()
    (tmp_path / t["file_name"]).write_text("other\n")
    placed = place(tmp_path, t)
    assert placed.renamed and (tmp_path / t["file_name"]).read_text() == "other\n"
    assert (tmp_path / placed.name).read_bytes() == t["content"].encode()
    assert not [n for n in visible(tmp_path) if n.startswith(".tmp.")]
