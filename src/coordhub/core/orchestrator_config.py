"""``coordinator.yml``: seed 003's configuration of repos, machines, concurrency and models, validated.

The schema is seed 003's (``repos``, ``machines``, ``concurrency``, ``models``,
``hooks``, ``reviews``, ``smoke_tests``) plus one section of ours,
``workers`` (the tool policy and budgets every worker runs with, which the
seed left to prompt text). Everything is checked by pydantic with unknown
keys refused, then by the cross-references pydantic cannot see (a machine
naming a repo that does not exist, a ``depends_on`` cycle). Every problem
names its key path (``machines[1].repos[0]``) and what was expected, and every
problem of a kind is reported at once (:class:`ConfigError`): first those of
shape and type, then, once the shape is right, the cross-references.

The same model validates the file on the CLI (``coord config``), the JSON the
hub receives (``PUT /api/coord/orchestrator/config``) and what a host gets
back, so every machine and the hub's scheduler agree on one parsed config.

Seed 003 meanings kept: ``stale_threshold`` counts missed heartbeats (the seed
counted failed polls), ``auto_reassign`` re-queues a failed assignment on
another machine, ``models.escalation`` is the ladder ``retry`` and
``resume-stuck`` climb one step at a time, ``models.labels`` maps a GitHub
label to a model (the seed parsed it and never used it; here it decides).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

FILE_NAME = "coordinator.yml"
MAX_FILE_BYTES = 1_048_576
# A repo or machine name: it becomes part of a branch, a lease (`issue:<repo>#<n>`) and a session id.
_NAME = re.compile(r"[A-Za-z0-9_.@+-]{1,64}")
MODEL_NAME = r"[A-Za-z0-9][A-Za-z0-9._:\[\]-]{0,99}"
"""A model's name, wherever one is taken (coordinator.yml, assign and retry, a planner's proposal): an alias
(``sonnet``, ``sonnet[1m]``) or a full id (``claude-sonnet-4-6``, ``us.anthropic.claude-sonnet-4-5-v1:0``). It is
passed to ``claude --model`` as the next argument, so it starts with a letter or digit: never read as an option."""
_MODEL = re.compile(MODEL_NAME)
# A tool rule as `--allowedTools` takes it: `Read`, `Bash(git diff *)`, `mcp__coord__*`.
_TOOL = re.compile(r"[A-Za-z0-9_*-]{1,100}(\([^()\x00-\x1f]{0,200}\))?")
PERMISSION_MODES = ("default", "acceptEdits", "plan", "auto", "dontAsk", "bypassPermissions")


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a name: use 1-64 letters, digits and _ . @ + -")
    return value


def _model(value: str) -> str:
    if not _MODEL.fullmatch(value):
        raise ValueError(f"{value!r} is not a model name (an alias such as sonnet, or a full id)")
    return value


def _permission_mode(value: str) -> str:
    if value not in PERMISSION_MODES:
        raise ValueError(f"{value!r} is not a permission mode: use one of {', '.join(PERMISSION_MODES)}")
    return value


def _tool(value: str) -> str:
    if not _TOOL.fullmatch(value):
        raise ValueError(f"{value!r} is not a tool rule such as Read, Edit or Bash(git diff *)")
    return value


Name = Annotated[str, AfterValidator(_name)]
StageName = Literal["test", "review", "merge"]
Model = Annotated[str, AfterValidator(_model)]
Tool = Annotated[str, AfterValidator(_tool)]
Command = Annotated[str, Field(min_length=1, max_length=2000)]


class Section(BaseModel):
    """Base of every section: unknown keys are errors (a typo such as ``max_worker`` is never silently ignored)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Repo(Section):
    """One repository (seed 003 ``repos[]``)."""

    name: Name
    github: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")] | None = None
    default_branch: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\s~^:?*\[\\]+$")] = "main"
    build_command: Command | None = None
    test_command: Command | None = None
    depends_on: list[Name] = Field(default_factory=list)
    stages: list[StageName] | None = None
    require_approval: bool | None = None


class Machine(Section):
    """One worker machine (seed 003 ``machines[]``); ``host`` is informational: hosts connect out to the hub."""

    name: Name
    host: Annotated[str, Field(min_length=1, max_length=255)] = "localhost"
    capabilities: list[Name] = Field(default_factory=list)
    repos: list[Name] = Field(default_factory=list)
    repo_paths: dict[str, Annotated[str, Field(min_length=1, max_length=4096)]] = Field(default_factory=dict)


class Concurrency(Section):
    """How much runs at once and how failures are retried (seed 003 ``concurrency``; ``heartbeat_seconds`` is ours)."""

    max_workers: Annotated[int, Field(ge=1, le=1000)] = 3
    stagger_seconds: Annotated[float, Field(ge=0, le=3600)] = 30.0
    backoff_base: Annotated[float, Field(ge=0, le=86_400)] = 60.0
    max_retries: Annotated[int, Field(ge=0, le=100)] = 3
    auto_reassign: bool = False
    stale_threshold: Annotated[int, Field(ge=1, le=1000)] = 3
    heartbeat_seconds: Annotated[float, Field(ge=0.2, le=300)] = 5.0

    @property
    def stale_after_seconds(self) -> float:
        """Seconds without a heartbeat after which a host is stale: ``stale_threshold`` missed heartbeats."""
        return self.stale_threshold * self.heartbeat_seconds


class Models(Section):
    """Model choice (seed 003 ``models``): the default, the escalation ladder, and labels that pick a model."""

    default: Model = "sonnet"
    escalation: Annotated[list[Model], Field(min_length=1, max_length=20)] = Field(
        default_factory=lambda: ["haiku", "sonnet", "opus"])
    labels: dict[str, Model] = Field(default_factory=dict)


class Hooks(Section):
    """Seed 003 ``hooks`` (built-in hook names run by the pipeline; parsed now, used by the next issue)."""

    on_round_complete: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list)
    on_session_end: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list)


class Reviews(Section):
    """Seed 003 ``reviews``, plus ``model`` (ours: the seed's reviewer ran with the worker's default model).

    ``model`` is the reviewer's ``claude --model`` (None: ``models.default``).
    A review that runs again after a fix keeps it: the seed escalates the
    model of fix workers (``coord fix``), never of reviewers, and a reviewer
    that grew with each round would judge the rounds by different standards.
    """

    enabled: bool = False
    auto_dispatch: bool = True
    require_approval: bool = False
    model: Model | None = None
    checklist: list[Annotated[str, Field(min_length=1, max_length=2000)]] = Field(default_factory=list)
    repo_overrides: dict[str, list[Annotated[str, Field(min_length=1, max_length=2000)]]] = Field(
        default_factory=dict)


class CapabilityRule(Section):
    """A smoke-test routing rule: changes under ``files`` need a machine with ``requires``."""

    files: Annotated[list[Annotated[str, Field(min_length=1, max_length=1024)]], Field(min_length=1)]
    requires: Annotated[list[Name], Field(min_length=1)]


class SmokeTests(Section):
    """Seed 003 ``smoke_tests`` (parsed now, used by the next issue)."""

    auto_queue: bool = False
    default_command: Command | None = None
    timeout_seconds: Annotated[int, Field(ge=1, le=86_400)] = 600
    capability_rules: list[CapabilityRule] = Field(default_factory=list)


MERGE_METHODS = ("rebase", "squash", "merge")


def _method(value: str) -> str:
    if value not in MERGE_METHODS:
        raise ValueError(f"{value!r} is not a merge method: use one of {', '.join(MERGE_METHODS)}")
    return value


class Merge(Section):
    """The merge queue (ours; seed 003 merged by hand, smallest first, with no gate): how branches land.

    ``gate_command`` runs at the rebased tip (default: the repo's
    ``build_command`` then ``test_command``; none of them: no gate).
    ``batch`` > 1 tests that many queued branches stacked at the tip and
    bisects when red (Bors); on GitHub the gate runs once for the batch and
    each PR then lands alone, in order, only if its code is what the gate
    passed. At most
    ``max_per_tick`` merges land per ``tick_seconds`` (code-coordinator turned
    auto-drain off after a tick merged three PRs at once).
    """

    method: Annotated[str, AfterValidator(_method)] = "rebase"
    gate_command: Command | None = None
    gate_timeout_seconds: Annotated[int, Field(ge=1, le=86_400)] = 1800
    batch: Annotated[int, Field(ge=1, le=64)] = 1
    max_per_tick: Annotated[int, Field(ge=1, le=10_000)] = 10
    tick_seconds: Annotated[float, Field(ge=0, le=86_400)] = 60.0
    conflict_fixes: Annotated[int, Field(ge=0, le=20)] = 2
    red_fixes: Annotated[int, Field(ge=0, le=20)] = 2
    require_checks: bool = True
    checks_timeout_seconds: Annotated[int, Field(ge=1, le=86_400)] = 3600
    delete_branch: bool = False
    close_issues: bool = True
    auto_queue: bool = False


class Workers(Section):
    """What every worker runs with (ours: the seed put its deny-list in prompt text, which binds nothing).

    ``allowed_tools``/``disallowed_tools`` become ``--allowedTools``/``--disallowedTools``
    (``AskUserQuestion`` is always disallowed: it errors out in ``-p`` mode);
    ``max_budget_usd`` becomes ``--max-budget-usd`` and the host's own ceiling,
    ``max_turns`` ``--max-turns``;
    the three ``*_seconds`` are the host's watchdogs (wall clock, first output,
    output silence); ``stdout_log_mib``/``stderr_log_mib`` bound what claude's
    stdout (the raw log, and the human log made from it) and its stderr may
    take on the host's disk (past one the attempt fails ``output_limit``).
    Before a worker starts, the repos its repo ``depends_on``
    are compared with their origin on that machine (seed 003's freshness
    check): stale ones are named in the worker's log, or, with ``auto_pull``,
    pulled first (``--ff-only``).
    """

    permission_mode: Annotated[str, AfterValidator(_permission_mode)] = "acceptEdits"
    allowed_tools: list[Tool] = Field(default_factory=lambda: ["Read", "Edit", "Write", "Glob", "Grep", "Bash"])
    disallowed_tools: list[Tool] = Field(default_factory=lambda: ["AskUserQuestion"])
    max_budget_usd: Annotated[float, Field(gt=0, le=10_000)] | None = None
    max_turns: Annotated[int, Field(ge=1, le=10_000)] | None = None
    wall_clock_seconds: Annotated[int, Field(ge=10, le=7 * 86_400)] = 3600
    first_output_seconds: Annotated[int, Field(ge=5, le=86_400)] = 600
    silence_seconds: Annotated[int, Field(ge=5, le=86_400)] = 900
    stdout_log_mib: Annotated[int, Field(ge=1, le=1 << 20)] = 512
    stderr_log_mib: Annotated[int, Field(ge=1, le=1 << 20)] = 64
    auto_pull: bool = False


def _default_stages() -> list[StageName]:
    # merge is opt-in: with no test command and reviews off, the default would land a worker's branch on the
    # target with no gate at all. A passed branch waits (stage passed) for `coord merge ID` unless listed.
    return ["test", "review"]


class Pipeline(Section):
    """What happens after a worker's ``done`` (ours; issue 12): the stages, the fix loop and who hears of a stop.

    ``stages`` (each repo may override it with ``repos[].stages``) lists the
    gates a branch passes in order, then ``merge`` hands it to the merge
    queue; a stage left out is skipped (``test`` is skipped too when the repo
    has no command to run, ``review`` unless ``reviews.enabled``). A failed
    gate dispatches a fix worker at most ``max_fix_rounds`` times, then the
    assignment stops at ``needs_input`` and ``escalation_session`` gets a
    message.
    """

    stages: list[StageName] = Field(default_factory=_default_stages)
    max_fix_rounds: Annotated[int, Field(ge=0, le=20)] = 2
    escalation_session: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class Config(Section):
    """The whole ``coordinator.yml``."""

    repos: Annotated[list[Repo], Field(min_length=1)]
    machines: Annotated[list[Machine], Field(min_length=1)]
    concurrency: Concurrency = Field(default_factory=Concurrency)
    models: Models = Field(default_factory=Models)
    hooks: Hooks = Field(default_factory=Hooks)
    reviews: Reviews = Field(default_factory=Reviews)
    smoke_tests: SmokeTests = Field(default_factory=SmokeTests)
    workers: Workers = Field(default_factory=Workers)
    pipeline: Pipeline = Field(default_factory=Pipeline)
    merge: Merge = Field(default_factory=Merge)

    def repo(self, name: str) -> Repo | None:
        """The repo called ``name`` (exact), or None."""
        return next((r for r in self.repos if r.name == name), None)

    def machine(self, name: str) -> Machine | None:
        """The machine called ``name``, compared case-insensitively (machine names are host names), or None."""
        key = name.lower()
        return next((m for m in self.machines if m.name.lower() == key), None)

    def as_json(self) -> dict[str, Any]:
        """The config as plain JSON (every default filled in): what the hub stores and hosts receive."""
        return self.model_dump(mode="json")


class Problem(BaseModel):
    """One thing wrong with a config: where (a key path such as ``machines[1].repos[0]``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(ValueError):
    """A config that cannot be used; ``problems`` lists every problem found, each with its key path."""

    def __init__(self, problems: list[Problem], source: str = FILE_NAME) -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source} is invalid: " + "; ".join(str(p) for p in problems))


def key_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a key path: ``("machines", 1, "repos", 0)`` → ``machines[1].repos[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "constrained-str") or str(part).startswith("function-"):
            continue  # pydantic's names for validators, not keys of the document
        else:
            out += ("." if out else "") + str(part)
    return out


def _expected(err: Any) -> str:
    """Pydantic's message in the words of this file's reader."""
    kind, msg = err.get("type", ""), err.get("msg", "invalid")
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key (check the spelling against docs/orchestrator.md)"
    if kind == "value_error":
        return str(msg).removeprefix("Value error, ")
    return str(msg)


def validate(data: Any, source: str = FILE_NAME) -> Config:
    """Validate parsed YAML/JSON ``data`` as a config; raise :class:`ConfigError` listing every problem."""
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ConfigError([Problem(path="", message=f"expected a mapping with repos and machines, got {got}")],
                          source)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = [Problem(path=key_path(tuple(e["loc"])), message=_expected(e)) for e in exc.errors()]
        raise ConfigError(problems, source) from None
    problems = cross_references(config)
    if problems:
        raise ConfigError(problems, source)
    return config


def cross_references(config: Config) -> list[Problem]:
    """What pydantic cannot see: names unique, every repo a machine or rule names exists, no dependency cycle."""
    problems: list[Problem] = []
    repos = [r.name for r in config.repos]
    known = ", ".join(repos)
    _unique(problems, "repos", repos, case_insensitive=False)
    _unique(problems, "machines", [m.name for m in config.machines], case_insensitive=True)
    for i, repo in enumerate(config.repos):
        for j, dep in enumerate(repo.depends_on):
            if dep not in repos:
                problems.append(Problem(path=f"repos[{i}].depends_on[{j}]", message=f"unknown repo {dep!r} "
                                        f"(known: {known})"))
            elif dep == repo.name:
                problems.append(Problem(path=f"repos[{i}].depends_on[{j}]", message="a repo cannot depend on itself"))
    graph: dict[str, list[str]] = {}
    for repo in config.repos:
        graph.setdefault(repo.name, []).extend(d for d in repo.depends_on if d in repos and d != repo.name)
    cycle = _cycle(graph)
    if cycle:
        problems.append(Problem(path="repos", message="depends_on has a cycle: " + " -> ".join(cycle)))
    for i, machine in enumerate(config.machines):
        for j, name in enumerate(machine.repos):
            if name not in repos:
                problems.append(Problem(path=f"machines[{i}].repos[{j}]", message=f"unknown repo {name!r} "
                                        f"(known: {known})"))
        for name in machine.repo_paths:
            if name not in machine.repos:
                problems.append(Problem(path=f"machines[{i}].repo_paths.{name}", message=f"repo {name!r} is not "
                                        f"in this machine's repos ({', '.join(machine.repos) or 'none'})"))
    for name in config.reviews.repo_overrides:
        if name not in repos:
            problems.append(Problem(path=f"reviews.repo_overrides.{name}", message=f"unknown repo (known: {known})"))
    return problems


def _unique(problems: list[Problem], section: str, names: list[str], *, case_insensitive: bool) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        key = name.lower() if case_insensitive else name
        if key in seen:
            problems.append(Problem(path=f"{section}[{i}].name", message=f"{name!r} is already the name of "
                                    f"{section}[{seen[key]}]"))
        else:
            seen[key] = i


def _cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One dependency cycle as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, trail: list[str]) -> list[str] | None:
        if state.get(node) == 1:
            return [*trail[trail.index(node):], node]
        if state.get(node) == 2:
            return None
        state[node] = 1
        for nxt in graph.get(node, []):
            found = visit(nxt, [*trail, node])
            if found:
                return found
        state[node] = 2
        return None

    for start in graph:
        found = visit(start, [])
        if found:
            return found
    return None


def parse_yaml(text: str, source: str = FILE_NAME) -> Config:
    """Parse and validate YAML text; :class:`ConfigError` for YAML syntax (with line and column), nesting too deep
    to parse, or content."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem(path=where, message=f"not valid YAML: {problem}")], source) from None
    except RecursionError:  # '[' x 5,000: PyYAML composes nested nodes recursively (a repository's file)
        raise ConfigError([Problem(path="", message="not valid YAML: nested too deep")], source) from None
    try:
        return validate(data, source)
    except RecursionError:  # nested a little less deep: parsed, but too deep to walk
        raise ConfigError([Problem(path="", message="not valid YAML: nested too deep")], source) from None


def load(path: str | Path) -> Config:
    """Read and validate a ``coordinator.yml``; :class:`ConfigError` when it is unreadable, not a regular file (after
    following a symlink), over :data:`MAX_FILE_BYTES` or invalid.

    A repository can ship it as a symlink to ``/dev/zero`` or as a FIFO: the
    file is opened without waiting for a writer (``O_NONBLOCK``), its type
    taken from the open descriptor, and at most one byte over the limit read.
    """
    path = Path(path)
    raw = _read_bounded(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError([Problem(path="", message="not UTF-8 text")], str(path)) from None
    return parse_yaml(text, str(path))


def _read_bounded(path: Path) -> bytes:
    """The bytes of the regular file ``path`` (up to one over :data:`MAX_FILE_BYTES`); :class:`ConfigError` if not."""
    def refused(message: str) -> ConfigError:
        return ConfigError([Problem(path="", message=message)], str(path))

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise refused(f"cannot read it: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise refused("not a regular file (a FIFO, a device such as /dev/zero, a directory); not read")
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise refused(f"cannot read it: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_FILE_BYTES:
        raise refused(f"{max(st.st_size, len(raw))} bytes; the limit is {MAX_FILE_BYTES}")
    return raw


def next_model(models: Models, current: str) -> str:
    """One step up ``models.escalation`` from ``current``; the top stays the top (seed 003's ladder).

    A full model id is placed on the ladder by the alias it contains
    (``claude-sonnet-4-6`` is ``sonnet``); a model the ladder does not know
    is not escalated.
    """
    ladder = models.escalation
    if current in ladder:
        index = ladder.index(current)
    else:
        found = [i for i, step in enumerate(ladder) if step.lower() in current.lower()]
        if not found:
            return current
        index = found[-1]
    return ladder[min(index + 1, len(ladder) - 1)]


CLAUDE_ALIASES = frozenset({"default", "haiku", "sonnet", "opus", "opusplan"})
"""The model aliases Claude Code's ``--model`` takes (research orchestrator.md §1: ``sonnet``, ``opus``,
``haiku``; ``default`` and ``opusplan`` too), each also with a context suffix such as ``[1m]``."""


def unknown_model(config: Config, model: str) -> str | None:
    """Why ``--model`` ``model`` would not run (a sentence naming what would), or None when it may.

    A model is taken when ``coordinator.yml`` names it (``models.default``, ``models.escalation``,
    ``models.labels``, ``reviews.model``), when it is one of Claude Code's aliases
    (:data:`CLAUDE_ALIASES`, with or without a ``[…]`` suffix), or when it is a full model id (it contains
    ``claude``: ``claude-sonnet-4-5-20250929``, a Bedrock or Vertex id). Anything else (``sonet``, ``gpt-4``)
    was queued, dispatched, and failed only when the worker's CLI refused it.
    """
    m = config.models
    named = {m.default, *m.escalation, *m.labels.values(), *([config.reviews.model] if config.reviews.model else [])}
    base = model.split("[", 1)[0]
    if model in named or base.lower() in CLAUDE_ALIASES or "claude" in model.lower():
        return None
    return (f"unknown model {model!r}: give an alias ({', '.join(sorted(CLAUDE_ALIASES - {'default'}))}), a full "
            f"model id (claude-…), or a model coordinator.yml names ({', '.join(sorted(named))})")


def escalate(models: Models, current: str) -> tuple[str, str]:
    """:func:`next_model` and the ``model_source`` to record: ``escalation`` when the model went up a step,
    ``kept`` when it could not (already the top of the ladder, or a model the ladder does not know). A retry at
    the top said ``opus (escalated)`` when nothing changed."""
    model = next_model(models, current)
    return model, "escalation" if model != current else "kept"


def model_for(models: Models, flag: str | None, labels: list[str]) -> tuple[str, str]:
    """The model an assignment runs with and why: ``--model`` > ``models.labels`` > ``models.default``.

    Returns ``(model, source)`` with source ``flag``, ``label:<name>`` (the
    first of the issue's labels, in their order, that the config maps) or
    ``default``.
    """
    if flag:
        return flag, "flag"
    for label in labels:
        if label in models.labels:
            return models.labels[label], f"label:{label}"
    return models.default, "default"
