"""``coord todo``: add, list, done (seed 000)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from coordhub.cli.common import JSON_OPT, call, read_text_arg, show
from coordhub.cli.output import console, table
from coordhub.cli.views import shown_time
from coordhub.core.vocab import TodoFilter

app = typer.Typer(help="Fleet todos: durable reminders until marked done.", no_args_is_help=True)


@app.command()
def add(
    ctx: typer.Context,
    text: str | None = typer.Argument(None, help="What needs doing (or use --text-file)."),
    user: str | None = typer.Option(None, "--user", help="Who it is for."),
    project: str | None = typer.Option(None, "--project", help="Project key."),
    parent: str | None = typer.Option(None, "--parent", help="Id of a parent todo."),
    source: str | None = typer.Option(None, "--source", help="Where it came from (free text)."),
    auto: bool = typer.Option(False, "--auto", help="Mark as created automatically."),
    text_file: Path | None = typer.Option(None, "--text-file", help="Read the text from a file ('-' = stdin)."),
    as_json: bool = JSON_OPT,
) -> None:
    """Create a todo (created_by_user from identity.json; the hub attributes the machine from your session)."""
    body = read_text_arg(text, text_file, "text")

    def create(c: Any) -> Any:
        fields = {"user": user, "project_key": project, "parent_id": parent, "source": source, "auto": auto,
                  "created_by_user": c.settings.user}
        return c.add_todo(body, **{k: v for k, v in fields.items() if v is not None})

    todo = call(ctx, create)
    show(todo, as_json, lambda t: console.print(f"added todo {t['id']}"))


@app.command("list")
def list_(
    ctx: typer.Context,
    user: str | None = typer.Option(None, "--user", help="Only this user's."),
    project: str | None = typer.Option(None, "--project", help="Only this project's."),
    status: TodoFilter = typer.Option("pending", "--status", help="Which todos."),
    as_json: bool = JSON_OPT,
) -> None:
    """List todos (pending by default)."""
    rows = call(ctx, lambda c: c.todos(user=user, project_key=project, status=status))
    if rows.more:
        typer.echo(f"coord: more todos follow these {len(rows)}: narrow the list with --user, --project or "
                   "--status", err=True)
    show(rows, as_json, lambda r: table(r, [("id", "id"), ("status", "status"), ("project_key", "project"),
                                            ("user", "user"), ("text", "text"), ("created_by", "by")],
                                        "no todos"))


@app.command()
def done(ctx: typer.Context, todo_id: str = typer.Argument(..., help="Todo id, as `coord todo list` shows it."),
         as_json: bool = JSON_OPT) -> None:
    """Mark a todo done (sets completed_by to you).

    One already done is left as it is and said so ("already done", --json "already": true; exit 0).
    """
    todo = call(ctx, lambda c: c.todo_done(todo_id))
    show(todo, as_json, lambda t: console.print(
        f"already done {t['id']} (by {t['completed_by']} at {shown_time(t['completed_at'])}); nothing changed"
        if t.get("already") else f"done {t['id']}"))
