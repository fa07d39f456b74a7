"""The object a unit of work receives: every table's query object on one connection."""

from __future__ import annotations

from coordhub.store.base import Executor, Row
from coordhub.store.tables.archive import Archive
from coordhub.store.tables.conversations import Conversations, SigningKeys
from coordhub.store.tables.imports import Imported
from coordhub.store.tables.leases import Leases
from coordhub.store.tables.merging import GithubPosts, MergeEntries
from coordhub.store.tables.messages import Messages
from coordhub.store.tables.orchestrator import AssignmentLogs, Assignments, Attempts, Hosts, OrchestratorState
from coordhub.store.tables.pipeline import StageRuns
from coordhub.store.tables.proposals import Proposals
from coordhub.store.tables.quota import DailyQuota, MessageQuota
from coordhub.store.tables.records import Components, Todos, Workflows, WorkItems
from coordhub.store.tables.retention import Retention
from coordhub.store.tables.sessions import Sessions
from coordhub.store.tables.system import Events, Halts, Idempotency, Meta
from coordhub.store.tables.tokens import Tokens
from coordhub.store.tables.web_sessions import WebSessions


class Tx:
    """Query objects bound to the connection of the running transaction.

    Built once per connection and reused; it holds no transaction state of
    its own, so the same object serves every unit of work on that connection.
    """

    def __init__(self, ex: Executor) -> None:
        self.ex = ex
        self.sessions = Sessions(ex)
        self.tokens = Tokens(ex)
        self.leases = Leases(ex)
        self.messages = Messages(ex)
        self.todos = Todos(ex)
        self.workflows = Workflows(ex)
        self.work_items = WorkItems(ex)
        self.components = Components(ex)
        self.halts = Halts(ex)
        self.events = Events(ex)
        self.idempotency = Idempotency(ex)
        self.meta = Meta(ex)
        self.conversations = Conversations(ex)
        self.signing_keys = SigningKeys(ex)
        self.orchestrator = OrchestratorState(ex)
        self.hosts = Hosts(ex)
        self.assignments = Assignments(ex)
        self.attempts = Attempts(ex)
        self.assignment_logs = AssignmentLogs(ex)
        self.imported = Imported(ex)
        self.web_sessions = WebSessions(ex)
        self.stage_runs = StageRuns(ex)
        self.retention = Retention(ex)
        self.merge_entries = MergeEntries(ex)
        self.github_posts = GithubPosts(ex)
        self.proposals = Proposals(ex)
        self.archive = Archive(ex)
        self.write_quota = DailyQuota(ex, "write_quota", "writes")
        self.turn_quota = DailyQuota(ex, "turn_quota", "turns")
        self.message_quota = MessageQuota(ex)

    def ping(self) -> bool:
        """True when a trivial query succeeds (used by /health)."""
        row: Row | None = self.ex.one("SELECT 1 AS ok")
        return row is not None
