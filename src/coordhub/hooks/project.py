"""Which project a hook is working in, and project-relative paths (standard library only, no ``git`` call).

Lease resources are project-relative (``src/app.py``), while Claude Code gives
absolute paths. The **root** that paths are made relative to is the git
working tree containing ``$CLAUDE_PROJECT_DIR`` (else the hook's ``cwd``),
or that directory itself outside git. The **project key** is, first found:
``COORD_PROJECT``; the ``project`` field of ``.claude/identity.json``; the
name of the repository's *main* working tree. The last rule matters for
fleets that give each agent its own ``git worktree``: every worktree of one
repository gets the same key (the main tree's directory name), so their
leases meet. A key from a project's own identity.json (not ``~/.claude``'s) does not
replace the repository's name but is checked beside it (:attr:`Project.also`; see
:func:`resolve` for why). The key is folded as the hub folds project keys
(:func:`coordhub.core.projects.fold`: ``GuruRMM`` is ``gururmm``), so what a
hook shows and compares is what the hub stores. Git is found by looking for ``.git`` upwards (a directory, or a
file ``gitdir: …`` for worktrees and submodules) rather than by running
``git``, because the edit hook must start fast.

identity.json (and through it the key) is looked for from the same place as
the root (:func:`start_dir`), never from the payload's ``cwd`` alone: an agent
that ``cd``s into another repository holding its own identity.json must not
get the session's files checked under that repository's key. A file the edit
hook sees *outside* the root is checked in its own repository
(:func:`repository_of`): under the session's key when that is a worktree of
the session's repository, else under the key a guard running in that
repository computes (``COORD_PROJECT``, its identity.json ``project``, its
name), with paths relative to it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from coordhub.client.project import git_dir, git_root
from coordhub.core import projects
from coordhub.hooks import settings


class Project:
    """A project: its lease key, the directory its resources are relative to, and the keys checked beside it.

    ``also`` holds the keys whose leases and halts the hooks and the guard check besides ``key`` (empty but for a
    key a project's identity.json named: :func:`resolve`); :attr:`keys` is all of them, ``key`` first.
    """

    __slots__ = ("also", "key", "root")

    def __init__(self, key: str, root: Path, also: tuple[str, ...] = ()) -> None:
        self.key, self.root, self.also = key, root, tuple(k for k in also if k != key)

    def __repr__(self) -> str:
        return f"Project({self.key!r}, {str(self.root)!r}, also={self.also!r})"

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key an edit or commit in this project is checked under: ``key``, then :attr:`also`."""
        return (self.key, *self.also)

    def relative(self, file_path: str, cwd: Path | None = None) -> str | None:
        """``file_path`` relative to the root with ``/`` separators; None when it lies outside the root.

        The first of :meth:`names`: the lexical name when the path lies
        inside lexically, else the resolved one. The root itself gives ``"."``.
        """
        found = self.names(file_path, cwd)
        return found[0] if found else None

    def names(self, file_path: str, cwd: Path | None = None) -> list[str]:
        """Every project-relative name ``file_path`` is edited under: lexical first, then symlinks resolved.

        A relative ``file_path`` is taken from ``cwd`` (default: the root).
        The lexical name (``..`` and ``.`` collapsed, no file system access)
        and the name with every symlink resolved (``os.path.realpath``, so a
        file that does not exist yet is named through its existing parents)
        are both listed when they differ and lie inside the root: an edit of
        ``alias/a.py`` where ``alias -> src`` changes ``src/a.py``, and a
        lease on either name must stop it (issue 7, point 13). A symlinked
        checkout still counts as inside. Empty when neither lies inside.
        """
        path = Path(file_path)
        if not path.is_absolute():
            path = (cwd or self.root) / path
        found: list[str] = []
        for candidate, root in ((Path(os.path.normpath(path)), Path(os.path.normpath(self.root))),
                                (Path(os.path.realpath(path)), Path(os.path.realpath(self.root)))):
            try:
                name = candidate.relative_to(root).as_posix()
            except ValueError:
                continue
            if name not in found:
                found.append(name)
        return found

    def claimed(self, resource: str, cwd: Path) -> str:
        """The lease resource to claim for what a user typed in ``cwd``: paths made project-relative.

        NAMEs (``deploy:staging``), globs and invalid resources are returned
        unchanged (the hub judges them). A PATH, absolute or relative to
        ``cwd``, that lies inside the project becomes the project-relative
        name of what it points at (symlinks resolved while that stays inside,
        so a lease on ``alias/`` is a lease on ``src/``), with a trailing ``/``
        when it is an existing directory or was typed with one (issue 7,
        points 11 and 13), in the ``./`` form of :func:`as_resource`. A path
        outside the project, or a Windows-style path on a POSIX system, is
        returned unchanged. The result carries the ``./`` of :func:`as_resource`
        only where the bare name would mean something else (``deploy:x.md``,
        ``C:x``). Loads :mod:`coordhub.core.paths` (for the CLI and the MCP
        server, never the edit hook).
        """
        from coordhub.core.paths import OutsideProject, ResourceKind, classify, parse

        try:
            if classify(resource) is not ResourceKind.PATH:
                return resource
        except OutsideProject:
            pass  # "../link" typed in a subdirectory may well lie inside the project
        except ValueError:
            return resource
        text = resource.strip()
        if os.sep == "/" and ("\\" in text or _DRIVE.match(text)):
            return resource
        path = Path(os.path.expanduser(text))
        path = path if path.is_absolute() else cwd / path
        found = self.names(str(path), cwd)
        if not found:
            return resource
        rel = found[-1]  # the resolved name when it lies inside, else the lexical one
        directory = text.endswith("/") or os.path.isdir(path)
        if rel == ".":
            return "./" if directory else "."
        rel += "/" if directory else ""
        bare, kept = parse(rel), parse(as_resource(rel))
        return rel if (bare.kind, bare.key) == (kept.kind, kept.key) else as_resource(rel)


_DRIVE = re.compile(r"[A-Za-z]:")


def repository_name(worktree: Path) -> str:
    """The name of the repository ``worktree`` belongs to: its main working tree's directory name.

    A linked worktree has a ``.git`` file pointing at ``<main>/.git/worktrees/<name>``,
    whose ``commondir`` leads back to ``<main>/.git`` (or to ``<repo>.git`` of
    a bare repository, named without ``.git``). A submodule's ``.git`` file
    points into the superproject's ``.git/modules`` and has no ``commondir``:
    it is named after its own directory.
    """
    main = git_dir(worktree)
    if main is None or (main.name != ".git" and not (main / "commondir").exists() and main.parent.name == "modules"):
        return worktree.name  # no git directory, or a submodule's (under the superproject's .git/modules)
    return main.parent.name if main.name == ".git" else main.name.removesuffix(".git")


def resolve(cwd: Path, identity: dict[str, Any] | None = None, *, claude_project_dir: bool = True,
            own_identity: bool = False) -> Project:
    """The project of a hook running for ``cwd`` (see the module docstring for the rules).

    ``claude_project_dir=False`` ignores ``$CLAUDE_PROJECT_DIR``: the git
    guard works on the repository git runs it in, even when an agent's Bash
    tool (which inherits that variable) commits in another one.

    ``own_identity`` says ``identity`` is the user's own (``~/.claude/identity.json``). A project's identity.json
    (untracked in the repository) may have come with it: an archive brings its own ``.git``, so "untracked"
    proves nothing (:meth:`coordhub.client.settings.ClientSettings.url_from_project`). The key such a file names
    is checked, and so is the one the hooks would check without it (the repository's name), in :attr:`Project.also`:
    a file planted with ``"project": "elsewhere"`` then adds a key and never takes the repository's own leases
    and project halt out of the check, while the leases a user's own file names are still found. ``COORD_PROJECT``
    and the user's own file name the one key.
    """
    start = start_dir(cwd, claude_project_dir=claude_project_dir)
    tree = git_root(start)
    root = tree or Path(os.path.abspath(start))
    fallback = (repository_name(tree) if tree else root.name) or "default"
    if (key := settings.get_str("project")) is not None:
        return Project(projects.fold(key), root)
    named = _identity_project(identity)
    if named is None:
        return Project(projects.fold(fallback), root)
    return Project(projects.fold(named), root, () if own_identity else (projects.fold(fallback),))


def start_dir(cwd: Path, *, claude_project_dir: bool = True) -> Path:
    """Where a hook's project and identity are looked for: ``$CLAUDE_PROJECT_DIR`` (unless told not to), else ``cwd``.

    The root and the identity.json that names the project key must come from
    the same place: Claude Code's hook ``cwd`` follows the agent's ``cd``,
    while ``$CLAUDE_PROJECT_DIR`` stays where the session started.
    """
    given = os.environ.get("CLAUDE_PROJECT_DIR") if claude_project_dir else None
    return Path(given) if given and "\x00" not in given else cwd


def repository_of(path: Path) -> Path | None:
    """The git working tree holding the file ``path`` (absolute), lexically, else with symlinks resolved; or None.

    The file itself need not exist: the search starts at its parent.
    """
    for candidate in (Path(os.path.normpath(path)), Path(os.path.realpath(path))):
        tree = git_root(candidate.parent)
        if tree is not None:
            return tree
    return None


def same_repository(a: Path, b: Path) -> bool:
    """Whether the working trees ``a`` and ``b`` belong to one repository (one common git directory)."""
    da, db = git_dir(a), git_dir(b)
    return da is not None and db is not None and os.path.realpath(da) == os.path.realpath(db)


def as_resource(rel: str) -> str:
    """A project-relative path as a lease resource that the hub always reads as a relative PATH.

    A file named ``deploy:notes.md`` would otherwise be read as a NAME and
    ``C:x`` as a Windows drive (see :mod:`coordhub.core.paths`); a leading
    ``./`` keeps both relative paths and changes nothing else. A trailing
    ``/`` (a directory: ``src/`` becomes ``./src/``) is kept.
    """
    return rel if rel.startswith("./") else "./" + rel


def asked_as(rel: str) -> tuple[str | None, bool]:
    """The lease resource the hub is asked about for the file ``rel``, and whether the answer checks it.

    ``rel`` is project-relative with ``/`` separators, as git or :meth:`Project.names` gives it (on POSIX a ``\\``
    is one character of a name). Shared by the edit hook and the git guard, so both ask about one file alike:

    * a valid resource: ``(as_resource(rel), True)``, the file by its name;
    * a name holding a backslash, a bracket or a brace: ``(stand_in(rel), True)``. The rules read ``\\`` as
      ``/`` (Windows names, :mod:`coordhub.core.paths`), so ``src/a\\b.py``, one file in ``src/``, would be asked
      as ``src/a/b.py``, which a lease of ``src/*.py`` does not overlap; they read ``[slug]`` as a class of one
      letter and ``{a,b}`` as two names, so ``app/[slug]/page.tsx`` (a Next.js route) would be asked as
      ``app/s/page.tsx`` and the like, which a lease of ``app/*slug*/`` does not overlap. Its stand-in covers
      it and is answered exactly (a segment with brackets is asked as the name and as the pattern a lease
      spelled like it holds; one with a backslash or a brace becomes ``*``, which may over-report, never
      miss). ``(None, False)`` if no stand-in can be made;
    * a name no resource can hold (a control character, not UTF-8: lone surrogates, over the length limit):
      ``(stand_in(rel), False)`` (None if none can be made): a lease overlapping the stand-in covers the file,
      and if none does the file still counts as unchecked (``COORD_HOOK_FAIL_MODE`` decides), as the guard has
      since 6d00200.

    Loads :mod:`coordhub.core.paths` only for a name outside :data:`_PLAIN` (the edit hook runs per edit).
    """
    if _PLAIN.match(rel):
        return as_resource(rel), True
    if _NARROWING.search(rel):
        cover = stand_in(rel)
        return cover, cover is not None
    try:
        return _valid(as_resource(rel)), True
    except ValueError:
        return stand_in(rel), False


def stand_in(path: str) -> str | None:
    """A glob resource covering every file ``path`` (no valid resource) may be, or None if none can be made.

    Each run of characters no resource holds (control characters, lone surrogates) becomes ``*``, which matches
    any run within a segment; a segment that also holds glob syntax becomes ``*`` whole, so its own text is never
    read as a pattern narrower than the name (as does one holding a backslash, which the rules read as ``/``, or
    a brace, which they read as alternatives and which no class can quote: the brace expander pairs braces
    inside classes too). A segment with brackets becomes its two readings, ``{[[]slug[]],[slug]}``: the name
    itself (each ``[`` and ``]`` a class holding it, which matches that character alone) and the pattern the
    rules read it as, which a lease spelled as the name holds (``*`` whole when it holds a comma, or when the
    alternatives would pass the rules' bounds). ``*`` and ``?`` are left: as a pattern they match the name too.
    Segments past
    the length bound become one ``**``. Sound, never narrower than the path: a lease overlapping the path
    overlaps the glob (it may over-report, never miss). Loads :mod:`coordhub.core.paths`.
    """
    from coordhub.core.paths import MAX_LENGTH

    for exact in (True, False):  # brackets as both readings; failing that (too complex), their segments as *
        kept: list[str] = []
        for seg in path.split("/"):
            seg = _stand_in_segment(seg, exact)
            if len(as_resource("/".join([*kept, seg, "**"]))) > MAX_LENGTH:
                kept.append("**")
                break
            kept.append(seg)
        try:
            return _valid(as_resource("/".join(kept)))
        except ValueError:
            continue
    return None


def _stand_in_segment(seg: str, exact: bool) -> str:
    """One segment of :func:`stand_in`'s glob; ``exact``: a segment with brackets as its two readings, else ``*``."""
    if "\\" in seg or "{" in seg or "}" in seg:
        return "*"
    if _UNNAMEABLE.search(seg):
        return "*" if _GLOB_SYNTAX.search(seg) else _UNNAMEABLE.sub("*", seg)
    if not _BRACKET.search(seg):
        return seg
    if "," in seg or not exact:  # a comma would split the alternatives below
        return "*"
    # the name itself (each bracket a class holding it) or the pattern a lease spelled as the name is read as
    return "{" + _BRACKET.sub(r"[\g<0>]", seg) + "," + seg + "}"


def _valid(resource: str) -> str:
    """``resource`` if the hub takes it (UTF-8 text that ``core.paths.parse`` accepts), else ``ValueError``."""
    from coordhub.core.paths import parse

    resource.encode("utf-8")  # UnicodeEncodeError (a ValueError) for a lone surrogate
    parse(resource)
    return resource


# A name coordhub.core.paths.parse takes as a path (never refuses, never reads as a pattern or a NAME once "./"
# leads it): no backslash, glob syntax, control character or lone surrogate, no ".." (which could climb above the
# root), and short enough that "./" + it stays within MAX_LENGTH (1,024). Spaces, "@", "+", non-ASCII letters and
# the like are in: loading the parser to confirm them cost such an edit ~10 ms. tests/hooks/test_asked_as.py
# checks the agreement on names drawn from this pattern.
_PLAIN = re.compile(r"(?!.*\.\.)[^\x00-\x1f\x7f-\x9f\ud800-\udfff\\*?\[\]{}]{1,1000}\Z", re.DOTALL)
_UNNAMEABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]+")  # in no resource: control, not UTF-8
_GLOB_SYNTAX = re.compile(r"[*?\[\]{}\\]")  # what coordhub.core.paths reads as a pattern (a \\ is a /)
# what would make the rules read a name as fewer files than it is: a \ (a /), a class, alternatives
_NARROWING = re.compile(r"[\\\[\]{}]")
_BRACKET = re.compile(r"[\[\]]")


def _identity_project(identity: dict[str, Any] | None) -> str | None:
    value = (identity or {}).get("project")
    return value.strip() if isinstance(value, str) and value.strip() else None
